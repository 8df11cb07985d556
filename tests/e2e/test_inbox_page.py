"""The approver's inbox page in a real browser, against the real services and broker.

An approver signs in with their token, finds the order that waits for them,
reads it (lines, and the payment plan it commits the account to) and decides with a
comment; the decision takes effect on the order's status exactly as one sent over the
API or the topic. Debian's chromium, driven
by Playwright, stands in for the approver's browser; CI installs it (.ci/run).
"""

from __future__ import annotations

import http.client
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from shared.contract import OrderState, OrderStatusChanged, ReasonCode
from shared.topics import ORDERS_SUBMITTED
from tests.e2e.conftest import Pipeline, approver_token
from tools.seed import b2b_order

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless. Missing, it is a failure: CI installs it, so must you."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "chromium is not installed: the inbox page test drives Debian's chromium "
            "(`apt-get install chromium`, as .ci/run does)",
            pytrace=False,
        )
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: no cookie carries over from another approver."""
    fresh = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield fresh
    finally:
        fresh.close()


def inbox_url(pipeline: Pipeline, path: str = "") -> str:
    return pipeline.fleet.running["approvals"].url(f"/inbox{path}")


def token_for(pipeline: Pipeline, approver_id: str) -> str:
    """A token as `tradelane approvals token` issues it, with the secret approvals runs with."""
    return approver_token(approver_id)


def sign_in(pipeline: Pipeline, context: BrowserContext, approver_id: str) -> Page:
    """Paste the approver's token into the sign-in form; land on their inbox."""
    page = context.new_page()
    page.goto(inbox_url(pipeline))
    page.get_by_label("Approver token").fill(token_for(pipeline, approver_id))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(inbox_url(pipeline))
    expect(page.get_by_role("heading", name=f"Inbox of {approver_id}")).to_be_visible()
    return page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def submit_large_order(pipeline: Pipeline, terms: str = "NET30") -> str:
    """700 x 7.95 = 5565 EUR: over ACME's 5000 EUR, so the manager, then finance, must sign."""
    order = b2b_order(pipeline.order_id("inbox"), [("BOLT-M8-100", 700)], terms=terms)
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(order.order_id, OrderState.AWAITING_APPROVAL)
    return order.order_id


def step_satisfied(status: OrderStatusChanged, step_id: str) -> bool:
    return (
        status.status is OrderState.AWAITING_APPROVAL
        and status.approval is not None
        and any(s.step_id == step_id and s.state == "satisfied" for s in status.approval.steps)
    )


def test_manager_approves_then_finance_rejects_in_the_browser(
    pipeline: Pipeline, browser: Browser, context: BrowserContext
) -> None:
    order_id = submit_large_order(pipeline, terms="DEPOSIT30_NET30")

    manager = sign_in(pipeline, context, "acme-manager")
    listed = manager.get_by_role("link", name=order_id)
    expect(listed).to_be_visible()
    row = manager.get_by_role("row").filter(has=listed)
    expect(row).to_contain_text("5565.00 EUR")
    expect(row).to_contain_text("acme-buyer")
    expect(row).to_contain_text(f"PO-{order_id}")
    expect(row).to_contain_text("manager")
    screenshot(manager, "inbox.png")

    listed.click()
    manager.wait_for_url(inbox_url(pipeline, f"/{order_id}"))
    expect(manager.get_by_role("heading", name=re.compile(f"Order {order_id}"))).to_be_visible()
    expect(manager.get_by_role("cell", name="BOLT-M8-100")).to_be_visible()
    expect(manager.get_by_role("cell", name="large-order", exact=True)).to_be_visible()
    expect(manager.get_by_text("Your signature counts for: manager.")).to_be_visible()
    expect(manager.get_by_text("On invoice, terms DEPOSIT30_NET30")).to_be_visible()
    expect(manager.get_by_role("row").filter(has_text="Deposit")).to_contain_text("1669.50 EUR")
    expect(manager.get_by_role("row").filter(has_text="Remainder")).to_contain_text("3895.50 EUR")
    screenshot(manager, "request-manager.png")

    manager.get_by_label("Comment").fill("Needed for the Hamburg site, go ahead")
    manager.get_by_role("button", name="Approve").click()
    manager.wait_for_url(re.compile(rf"/inbox\?sent={re.escape(order_id)}&decision=approve$"))
    expect(manager.get_by_role("status")).to_contain_text(f"Your approval of {order_id} was sent")

    pipeline.watch.wait_until(
        f"the manager's signature on {order_id} to count",
        lambda: any(step_satisfied(s, "manager") for s in pipeline.watch.statuses[order_id]),
    )
    manager.goto(inbox_url(pipeline))
    expect(manager.get_by_role("heading", name="Inbox of acme-manager")).to_be_visible()
    expect(manager.get_by_role("link", name=order_id)).to_have_count(0)

    # Deciding again from the request page is refused, with the reason and its status.
    manager.goto(inbox_url(pipeline, f"/{order_id}"))
    with manager.expect_response(inbox_url(pipeline, f"/{order_id}")) as again:
        manager.get_by_role("button", name="Approve").click()
    assert again.value.status == 409
    expect(manager.get_by_role("alert")).to_contain_text("a signature counts once")

    finance_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        finance = sign_in(pipeline, finance_context, "acme-finance")
        finance.get_by_role("link", name=order_id).click()
        finance.wait_for_url(inbox_url(pipeline, f"/{order_id}"))
        history = finance.get_by_role("table").filter(has_text="Needed for the Hamburg site")
        expect(history).to_contain_text("acme-manager")
        expect(finance.get_by_text("Your signature counts for: finance.")).to_be_visible()
        screenshot(finance, "request-finance.png")

        finance.get_by_label("Comment").fill("Over the site budget <this quarter>")
        finance.get_by_role("button", name="Reject").click()
        finance.wait_for_url(re.compile(rf"/inbox\?sent={re.escape(order_id)}&decision=reject$"))
        expect(finance.get_by_role("status")).to_contain_text(
            f"Your rejection of {order_id} was sent"
        )
    finally:
        finance_context.close()

    rejected = pipeline.watch.wait_for_status(order_id, OrderState.REJECTED)
    assert rejected.reason is not None
    assert rejected.reason.code is ReasonCode.APPROVAL_REJECTED
    assert "Over the site budget <this quarter>" in rejected.reason.message
    assert "acme-finance" in rejected.reason.message


def test_the_buyer_sees_an_empty_inbox(pipeline: Pipeline, context: BrowserContext) -> None:
    submit_large_order(pipeline)  # the buyer's own order: never theirs to approve

    buyer = sign_in(pipeline, context, "acme-buyer")

    expect(buyer.get_by_text("Nothing is waiting for your decision.")).to_be_visible()
    expect(buyer.get_by_role("table")).to_have_count(0)

    buyer.get_by_role("button", name="Sign out").click()
    expect(buyer.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "tradelane_approver"]


def test_a_bad_token_gets_the_sign_in_form_again_with_401(
    pipeline: Pipeline, context: BrowserContext
) -> None:
    page = context.new_page()
    page.goto(inbox_url(pipeline))
    page.get_by_label("Approver token").fill("not-a-token")
    with page.expect_response(inbox_url(pipeline, "/sign-in")) as answer:
        page.get_by_role("button", name="Sign in").click()

    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("the token is not valid")
    expect(page.get_by_label("Approver token")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "tradelane_approver"]
    page.goto(inbox_url(pipeline, "/some-order"))  # no session: back to signing in
    page.wait_for_url(inbox_url(pipeline))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


# --- cross-site requests: what a browser on another site could send ---------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def cookie(self) -> str | None:
        return self.headers.get("Set-Cookie")


@dataclass
class RawClient:
    """HTTP to the inbox page with exactly the headers a test gives: no browser adds an
    Origin, follows a redirect or keeps a cookie here unless the test says so."""

    pipeline: Pipeline
    cookie: str | None = None
    sent: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """The page's own origin, as a browser on the page would send it."""
        url = urlsplit(inbox_url(self.pipeline))
        return f"{url.scheme}://{url.netloc}"

    def request(
        self,
        method: str,
        path: str,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        url = urlsplit(inbox_url(self.pipeline, path))
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
        sent = dict(headers or {})
        if self.cookie is not None:
            sent["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, url.path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read().decode())
        finally:
            connection.close()

    def sign_in(self, approver_id: str) -> None:
        answer = self.request(
            "POST",
            "/sign-in",
            {"token": token_for(self.pipeline, approver_id)},
            {"Origin": self.origin},
        )
        assert answer.status == 303 and answer.cookie, answer
        self.cookie = answer.cookie.split(";", 1)[0]

    def form_token(self, path: str = "") -> str:
        """The hidden form token of a page the signed-in approver is shown."""
        page = self.request("GET", path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)


def history_of(pipeline: Pipeline, order_id: str) -> list[tuple[str | None, str | None]]:
    status, body = pipeline.http(
        "approvals", "GET", f"/approvals/{order_id}", as_approver="acme-buyer"
    )
    assert status == 200, body
    return [(h["approver_id"], h["comment"]) for h in body["history"] if h["kind"] == "decision"]


def test_a_cross_site_post_is_refused_and_changes_nothing(pipeline: Pipeline) -> None:
    order_id = submit_large_order(pipeline)
    manager = RawClient(pipeline)
    manager.sign_in("acme-manager")
    token = manager.form_token(f"/{order_id}")

    def decide(comment: str, headers: Mapping[str, str], **form: str) -> Answer:
        fields = {"decision": "approve", "comment": comment, "decision_id": str(uuid.uuid4())}
        return manager.request("POST", f"/{order_id}", fields | form, headers)

    evil = "https://evil.example"
    refused = [
        decide("forged: other origin", {"Origin": evil}, csrf_token=token),
        decide("forged: null origin", {"Origin": "null"}, csrf_token=token),
        decide("forged: other referer", {"Referer": f"{evil}/page"}, csrf_token=token),
        decide("forged: no origin at all", {}, csrf_token=token),
        decide("forged: no form token", {"Origin": manager.origin}),
        decide("forged: wrong form token", {"Origin": manager.origin}, csrf_token="x" + token),
    ]
    assert [answer.status for answer in refused] == [403] * len(refused)
    assert all(answer.cookie is None for answer in refused)

    accepted = decide(
        "the real one", {"Referer": inbox_url(pipeline, f"/{order_id}")}, csrf_token=token
    )
    assert accepted.status == 303, accepted.text
    pipeline.watch.wait_until(
        f"the manager's signature on {order_id} to count",
        lambda: any(step_satisfied(s, "manager") for s in pipeline.watch.statuses[order_id]),
    )
    # decisions on one order are applied in the order they were sent: a forged one would be first
    assert history_of(pipeline, order_id) == [("acme-manager", "the real one")]


def test_cross_site_sign_in_and_sign_out_are_refused(pipeline: Pipeline) -> None:
    client = RawClient(pipeline)
    forged = client.request(
        "POST",
        "/sign-in",
        {"token": token_for(pipeline, "acme-manager")},
        {"Origin": "https://evil.example"},
    )
    assert forged.status == 403 and forged.cookie is None

    client.sign_in("acme-manager")
    token = client.form_token()
    for headers, form in (
        ({"Origin": "https://evil.example"}, {"csrf_token": token}),
        ({"Origin": client.origin}, {}),
    ):
        answer = client.request("POST", "/sign-out", form, headers)
        assert answer.status == 403 and answer.cookie is None
    assert client.request("GET", "").status == 200  # still signed in
    signed_out = client.request(
        "POST", "/sign-out", {"csrf_token": token}, {"Origin": client.origin}
    )
    assert signed_out.status == 303 and signed_out.cookie and "Max-Age=0" in signed_out.cookie


def test_the_session_cookie_is_secure_over_tls(pipeline: Pipeline) -> None:
    client = RawClient(pipeline)
    form = {"token": token_for(pipeline, "acme-manager")}
    plain = client.request("POST", "/sign-in", form, {"Origin": client.origin})
    host = urlsplit(client.origin).netloc
    behind_tls = client.request(
        "POST",
        "/sign-in",
        form,
        {"Origin": f"https://{host}", "X-Forwarded-Proto": "https"},
    )
    for answer in (plain, behind_tls):
        assert answer.status == 303 and answer.cookie
        attributes = [a.strip() for a in answer.cookie.split(";")]
        assert "HttpOnly" in attributes and "SameSite=Strict" in attributes
    assert "Secure" not in [a.strip() for a in (plain.cookie or "").split(";")]
    assert "Secure" in [a.strip() for a in (behind_tls.cookie or "").split(";")]
    # and an https page accepts no form from plain http, even of its own host
    downgraded = client.request(
        "POST", "/sign-in", form, {"Origin": f"http://{host}", "X-Forwarded-Proto": "https"}
    )
    assert downgraded.status == 403


def test_a_stranger_deciding_on_the_page_gets_not_found(pipeline: Pipeline) -> None:
    order_id = submit_large_order(pipeline)
    stranger = RawClient(pipeline)
    stranger.sign_in("globex-boss")
    answer = stranger.request(
        "POST",
        f"/{order_id}",
        {
            "decision": "approve",
            "decision_id": str(uuid.uuid4()),
            "csrf_token": stranger.form_token(),
        },
        {"Origin": stranger.origin},
    )
    assert answer.status == 404
    assert "acme" not in answer.text
