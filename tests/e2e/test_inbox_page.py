"""The approver's inbox page in a real browser, against the real services and broker.

An approver signs in with their token, finds the order that waits for them,
reads it and decides with a comment; the decision takes effect on the order's
status exactly as one sent over the API or the topic. Debian's chromium, driven
by Playwright, stands in for the approver's browser; CI installs it (.ci/run).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

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


def submit_large_order(pipeline: Pipeline) -> str:
    """700 x 7.95 = 5565 EUR: over ACME's 5000 EUR, so the manager, then finance, must sign."""
    order = b2b_order(pipeline.order_id("inbox"), [("BOLT-M8-100", 700)])
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
    order_id = submit_large_order(pipeline)

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
