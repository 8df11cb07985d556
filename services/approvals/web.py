"""The approver's inbox page: sign in with a token, see what waits for you, decide.

Server-rendered HTML with plain forms and no JavaScript, so an approver needs
nothing but a browser. It reads the same read models as the JSON API
(`inbox`) and decides through the same `api.submit_decision`, so the page and
the API refuse the same decisions, and a decision from either takes effect the
same way: on the `approvals.decisions` topic.

The session is the approver token itself, kept in an HttpOnly, SameSite=Strict
cookie scoped to `/inbox` (and `Secure` when the page is served over TLS):
nothing is stored server side, and the token's expiry ends the session.

Every form (sign in, sign out, decide) is refused with 403 unless it comes from
the page itself, checked twice over: the browser's `Origin` (or, without one,
`Referer`) must be this server's own host, and a signed-in approver's forms
carry a token derived from their session (an HMAC of it under the token
secret) that another site cannot read or compute. SameSite=Strict would keep
the cookie off most cross-site requests anyway; these checks do not depend on
the browser honouring it.

The `render_*` functions are pure (data in, HTML out) so they can be read and
tested without a server; the views only authenticate, load and answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from faust.web import Request, Response, View
from pydantic import ValidationError

from services.approvals import api, inbox
from shared.consume import describe_validation_error
from shared.service import Service
from shared.tokens import TokenError

COOKIE = "tradelane_approver"
INBOX = "/inbox"
FORM_TOKEN = "csrf_token"
"""The hidden field that carries the session's form token in every form of a signed-in page."""
DECISION_WORDS = {"approve": "approval", "reject": "rejection"}

PAGE_HEADERS = {
    # Pages show orders and carry the approver's session: never cache them, never frame them.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{background:#1d3557;color:#fff;padding:.6rem 1.5rem;display:flex;
  justify-content:space-between;align-items:center;gap:1rem}
header a{color:#fff;text-decoration:none;font-weight:600}
header form{display:inline;margin-left:.6rem}
main{max-width:76rem;margin:1.5rem auto;padding:0 1.5rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .4rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.4rem 0 1rem}
th,td{border-bottom:1px solid #dde1e6;padding:.4rem .6rem;text-align:left;vertical-align:top}
time{white-space:nowrap}
th{background:#eef1f5;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.flash,.error,.note,.warning{padding:.6rem 1rem;border-radius:4px;margin:0 0 1rem}
.warning{background:#fff4e0;border:1px solid #e8b45a}
.flash{background:#e3f4e8;border:1px solid #9bd3ad}
.error{background:#fdecea;border:1px solid #f1a9a0}
.note{background:#fff;border:1px solid #dde1e6}
.muted{color:#5c6670}
.state{display:inline-block;padding:0 .5rem;border-radius:.7rem;background:#e4e8ee;
  font-size:.85rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1.2rem;background:#fff;
  padding:.8rem 1rem;border:1px solid #dde1e6}
dt{font-weight:600}dd{margin:0}
form.panel{background:#fff;border:1px solid #dde1e6;padding:1rem;max-width:40rem}
textarea,input[type=password]{width:100%;box-sizing:border-box;font:inherit;padding:.4rem}
button{font:inherit;padding:.35rem 1.1rem;border-radius:4px;border:1px solid #8a94a0;
  background:#fff;cursor:pointer;margin:.6rem .4rem 0 0}
button.approve{background:#2a7a3b;border-color:#2a7a3b;color:#fff}
button.reject{background:#b3261e;border-color:#b3261e;color:#fff}
header button{margin:0;padding:.15rem .7rem}
"""


# --- rendering: pure functions, data in, HTML out ---------------------------------------------


def esc(value: object) -> str:
    """Text for HTML, quotes included; None (a field not set) shows as a dash."""
    return "—" if value is None or value == "" else html.escape(str(value))


def when(value: str | None, *, seconds: bool = False) -> str:
    """An ISO timestamp as UTC wall time: approvers compare deadlines, not offsets."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return esc(value)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    return f'<time datetime="{esc(moment.isoformat())}">{esc(shown)}</time>'


def age(seconds: int) -> str:
    """How long a request has waited, to the unit that matters."""
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def money(amount: object, currency: object) -> str:
    return f"{esc(amount)} {esc(currency)}"


def request_path(order_id: str) -> str:
    return f"{INBOX}/{quote(order_id, safe='')}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: set[int]) -> str:
    """A table of already escaped cells; columns in `numeric` are right-aligned."""

    def cell(tag: str, index: int, content: str) -> str:
        return (
            f'<{tag} class="num">{content}</{tag}>'
            if index in numeric
            else f"<{tag}>{content}</{tag}>"
        )

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class Session:
    """Who is signed in, and the token their forms must carry back."""

    approver_id: str
    form_token: str


def form_token_field(session: Session) -> str:
    return f'<input type="hidden" name="{FORM_TOKEN}" value="{esc(session.form_token)}">'


def layout(body: str, *, session: Session | None = None) -> str:
    """Every page: the title, the style, and who is signed in with a way to sign out."""
    who = ""
    if session is not None:
        who = (
            f"<span>Signed in as <strong>{esc(session.approver_id)}</strong>"
            f'<form method="post" action="{INBOX}/sign-out">{form_token_field(session)}'
            '<button type="submit">Sign out</button></form></span>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Tradelane approvals</title><style>{STYLE}</style></head><body>"
        f'<header><a href="{INBOX}">Tradelane approvals</a>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def render_sign_in(error: str | None = None) -> str:
    """Ask for the approver token (from `tradelane approvals token` or an identity provider)."""
    problem = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return layout(
        "<h1>Sign in</h1>"
        f"{problem}"
        f'<form class="panel" method="post" action="{INBOX}/sign-in">'
        '<label for="token">Approver token</label>'
        '<input type="password" id="token" name="token" autocomplete="off" required>'
        '<p class="muted">Paste the token you were given; it names you as the approver.</p>'
        '<button type="submit">Sign in</button></form>'
    )


def render_flash(sent: str | None, decision: str | None) -> str:
    """'Your approval of X was sent': the decision is queued, the service applies it shortly."""
    word = DECISION_WORDS.get(decision or "")
    if not sent or word is None:
        return ""
    return (
        f'<p class="flash" role="status">Your {word} of {esc(sent)} was sent. '
        "It counts as soon as the approvals service has applied it.</p>"
    )


def render_inbox(session: Session, items: Sequence[Mapping[str, Any]], flash: str = "") -> str:
    """What waits for this approver (`InboxItem.summary` dicts), oldest first."""
    heading = f"<h1>Inbox of {esc(session.approver_id)}</h1>{flash}"
    if not items:
        return layout(
            f'{heading}<p class="note">Nothing is waiting for your decision.</p>',
            session=session,
        )
    rows = [
        [
            f'<a href="{esc(request_path(item["order_id"]))}">{esc(item["order_id"])}</a>',
            esc(item["account_id"]),
            esc(item["buyer_id"]),
            esc(item.get("reference")),
            money(item["totals"]["total"], item["totals"]["currency"]),
            esc(age(int(item["age_seconds"]))),
            when(item["deadline"]),
            esc(", ".join(item["your_steps"])),
            esc(", ".join(item["acting_for"])),
        ]
        for item in items
    ]
    headers = ["Order", "Account", "Buyer", "Reference", "Total", "Waiting", "Deadline"]
    waiting = "1 request waits" if len(items) == 1 else f"{len(items)} requests wait"
    return layout(
        heading
        + f"<p>{waiting} for your signature.</p>"
        + table([*headers, "Your steps", "Acting for"], rows, numeric={4, 5}),
        session=session,
    )


def render_signature(signature: Mapping[str, Any]) -> str:
    behalf = signature.get("on_behalf_of")
    return esc(signature["approver_id"]) + (f" for {esc(behalf)}" if behalf else "")


def discount(amount: object) -> str:
    """What a promotion took off, as a minus; a dash when nothing was."""
    return "—" if Decimal(str(amount or 0)) == 0 else f"&minus;{esc(amount)}"


def render_lines(order: Mapping[str, Any]) -> str:
    """The priced order lines, where each price came from and what promotions took off, with
    subtotal and total: what the approver is paying for."""
    totals = order["totals"]
    currency = totals["currency"]
    rows = [
        [
            esc(x["sku"]),
            esc(x["quantity"]),
            esc(x["unit_price"]),
            esc(x.get("price_source")),
            discount(x.get("discount")),
            esc(x["line_total"]),
        ]
        for x in order["lines"]
    ]
    rows.append(["Subtotal", "", "", "", "", money(totals["subtotal"], currency)])
    if Decimal(str(totals.get("discount") or 0)) != 0:
        applied = [p for p in totals.get("promotions", []) if p.get("applied")]
        why = ", ".join(f"{esc(p['name'])} ({esc(p['promotion_id'])})" for p in applied)
        rows.append(
            ["Order discount", "", "", why, "", f"{discount(totals['discount'])} {esc(currency)}"]
        )
    total = money(totals["total"], currency)
    rows.append(["<strong>Total</strong>", "", "", "", "", f"<strong>{total}</strong>"])
    headers = ["SKU", "Quantity", "Unit price", "Price from", "Discount", "Line total"]
    return table(headers, rows, numeric={1, 2, 4, 5})


DUE_PARTS = {
    "full": "Full amount",
    "deposit": "Deposit",
    "remainder": "Remainder",
    "instalment": "Instalment",
}
PAYMENT_METHODS = {
    "invoice": "On invoice",
    "installments": "In instalments",
    "card": "By card",
    "prepaid": "Prepaid",
}


def render_payment(order: Mapping[str, Any]) -> str:
    """How and by when the total is paid, as pricing planned it: the amounts and due dates an
    approval commits the account to."""
    plan = order.get("payment")
    if not plan:
        return '<p class="note">The order came without a payment plan.</p>'
    how = [esc(PAYMENT_METHODS.get(plan["method"], plan["method"]))]
    if plan.get("terms"):
        how.append(f"terms {esc(plan['terms'])}")
    if plan.get("installments"):
        how.append(f"{esc(plan['installments'])} monthly instalments")
    rows = []
    for number, due in enumerate(plan["schedule"], start=1):
        part = esc(DUE_PARTS.get(due["kind"], due["kind"]))
        if due["kind"] == "instalment":
            part += f" {number}"
        by = f"by {esc(due['due_on'])}" if due["due"] == "on_date" else "on fulfillment"
        rows.append([part, money(due["amount"], due["currency"]), by])
    return (
        f"<p>{', '.join(how)}; due dates count from {esc(plan['priced_on'])}, "
        "the day the order was priced.</p>" + table(["Part", "Amount", "Due"], rows, numeric={1})
    )


def render_credit(order: Mapping[str, Any]) -> str:
    """Pricing's word on the account's credit, shown before anything else on the request."""
    said = []
    if order.get("credit_limit_override"):
        said.append(
            "This order takes the account over its credit limit; pricing passed it on "
            "for approval to decide."
        )
    if order.get("credit_warning"):
        said.append(f"Credit: {esc(order['credit_warning'])}")
    return "".join(f'<p class="warning">{text}</p>' for text in said)


def render_steps(steps: Sequence[Mapping[str, Any]]) -> str:
    """Each step: who must sign, how many, who has, and who could now."""
    rows = []
    for step in steps:
        after = step.get("after")
        rows.append(
            [
                esc(step["step_id"])
                + (f' <span class="muted">after {esc(", ".join(after))}</span>' if after else ""),
                esc(step["role"]) + (" (escalated)" if step.get("escalated") else ""),
                esc(step["quorum"]),
                f'<span class="state">{esc(step["state"])}</span>',
                ", ".join(render_signature(sig) for sig in step["signed_by"]) or "—",
                esc(", ".join(step["eligible"])),
            ]
        )
    headers = ["Step", "Role", "Quorum", "State", "Signed by", "May sign now"]
    return table(headers, rows, numeric={2})


HISTORY_FIELDS = (
    ("Kind", "kind"),
    ("Approver", "approver_id"),
    ("On behalf of", "on_behalf_of"),
    ("Role", "role"),
    ("Step", "step_id"),
    ("Decision", "decision"),
    ("Comment", "comment"),
    ("Outcome", "outcome"),
    ("Why", "why"),
)


def render_history(history: Sequence[Mapping[str, Any]]) -> str:
    """The audit trail, refused decisions included: why the request is where it is."""
    rows = [
        [when(entry["at"], seconds=True)] + [esc(entry.get(key)) for _, key in HISTORY_FIELDS]
        for entry in history
    ]
    return table(["At", *(label for label, _ in HISTORY_FIELDS)], rows, numeric=set())


def render_request(session: Session, detail: Mapping[str, Any], decision_id: uuid.UUID) -> str:
    """One request in full (`inbox.request_detail`), with the decision form while it is open.

    `decision_id` goes into the form as the idempotency key, so submitting the
    same page twice is applied once.
    """
    order = detail["order"]
    facts = [
        ("Account", esc(detail["account_id"])),
        ("Buyer", esc(detail["buyer_id"])),
        ("Reference", esc(order.get("reference"))),
        ("Cost centre", esc(order.get("cost_centre"))),
        ("Payment terms", esc(order.get("payment_terms"))),
        ("Total", money(order["totals"]["total"], order["totals"]["currency"])),
        ("Opened", when(detail.get("opened_at"))),
        ("Deadline", when(detail.get("deadline"))),
        ("Policy version", esc(detail.get("policy_version"))),
    ]
    rules = table(
        ["Rule", "Version", "Why"],
        [[esc(r["rule_id"]), esc(r["version"]), esc(r["why"])] for r in detail.get("rules", [])],
        numeric={1},
    )
    facts_list = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    state = f'<span class="state">{esc(detail["state"])}</span>'
    body = (
        f'<p><a href="{INBOX}">← Inbox</a></p>'
        f"<h1>Order {esc(detail['order_id'])} {state}</h1>"
        f"{render_credit(order)}"
        f"<dl>{facts_list}</dl>"
        f"<h2>Order lines</h2>{render_lines(order)}"
        f"<h2>Payment</h2>{render_payment(order)}"
        f"<h2>Rules matched</h2>{rules}"
        f"<h2>Steps</h2>{render_steps(detail.get('steps', []))}"
        f"{render_decision_form(session, detail, decision_id)}"
        f"<h2>History</h2>{render_history(detail.get('history', []))}"
    )
    return layout(body, session=session)


def render_decision_form(
    session: Session, detail: Mapping[str, Any], decision_id: uuid.UUID
) -> str:
    """Approve or reject, with a comment; only while the request is open."""
    if detail["state"] != "open":
        return (
            f'<p class="note">This request is {esc(detail["state"])}: '
            "it takes no more decisions.</p>"
        )
    approver_id = session.approver_id
    mine = [s["step_id"] for s in detail.get("steps", []) if approver_id in s["eligible"]]
    who = (
        f"Your signature counts for: {esc(', '.join(mine))}."
        if mine
        else "You are not among those who may sign an open step now; "
        "the service will tell you why if you decide."
    )
    return (
        "<h2>Your decision</h2>"
        f'<form class="panel" method="post" action="{esc(request_path(detail["order_id"]))}">'
        f'<p class="muted">{who}</p>'
        '<label for="comment">Comment</label>'
        '<textarea id="comment" name="comment" maxlength="1000" rows="3"></textarea>'
        f'<input type="hidden" name="decision_id" value="{esc(decision_id)}">'
        f"{form_token_field(session)}"
        '<button class="approve" type="submit" name="decision" value="approve">Approve</button>'
        '<button class="reject" type="submit" name="decision" value="reject">Reject</button>'
        "</form>"
    )


def render_message(
    heading: str, message: str, *, session: Session | None = None, order_id: str | None = None
) -> str:
    """A refusal or an error, with the way back."""
    back = f'<a href="{INBOX}">Back to the inbox</a>'
    if order_id is not None:
        back = f'<a href="{esc(request_path(order_id))}">Back to order {esc(order_id)}</a> · {back}'
    return layout(
        f'<h1>{esc(heading)}</h1><p class="error" role="alert">{esc(message)}</p><p>{back}</p>',
        session=session,
    )


# --- the session and its defences: pure rules -----------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


def same_origin(origin: str | None, referer: str | None, host: str | None, *, tls: bool) -> bool:
    """Whether a form was sent from a page of this server (`host` is the request's Host).

    The browser's `Origin` decides; only without one, its `Referer` (our pages
    send it to themselves: `Referrer-Policy: same-origin`). Neither, or `null`
    (a sandboxed frame, a privacy redirect), is refused: nothing vouches for the
    form. Scheme is compared only one way: a page served over TLS takes no form
    from plain http, but an https origin is accepted on a plain request, since a
    proxy in front may end TLS without saying so.
    """
    source = origin if origin is not None else referer
    if not source or not host:
        return False
    sent_from = _origin_of(source)
    if sent_from is None or (tls and sent_from[0] != "https"):
        return False
    # our own origin in the scheme the browser used (which only fills in a default port)
    return sent_from == _origin_of(f"{sent_from[0]}://{host}")


def form_token(secret: str, session_token: str) -> str:
    """The token a session's forms carry: an HMAC of the session under the token secret.

    Another site can neither read it from our pages nor compute it, and it ends
    with the session. Labelled, so it is never mistaken for any other MAC of the
    same secret.
    """
    digest = hmac.new(
        secret.encode(), b"tradelane-inbox-form\x00" + session_token.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def form_token_ok(secret: str, session_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(
        form_token(secret, session_token).encode(), str(given).encode()
    )


def served_over_tls(scheme: str, forwarded_proto: str | None) -> bool:
    """Whether the browser reached us over TLS: directly, or through a proxy that says so
    (`X-Forwarded-Proto`, first hop first)."""
    if scheme.lower() == "https":
        return True
    first = (forwarded_proto or "").split(",", 1)[0].strip().lower()
    return first == "https"


def session_cookie(token: str, *, secure: bool) -> str:
    """HttpOnly: no script reads it. SameSite=Strict: the browser leaves it off every request
    another site starts, even a link followed from a mail. Secure over TLS: never sent in clear."""
    return f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path={INBOX}" + (
        "; Secure" if secure else ""
    )


def cleared_cookie(*, secure: bool) -> str:
    return f"{COOKIE}=; HttpOnly; SameSite=Strict; Path={INBOX}; Max-Age=0" + (
        "; Secure" if secure else ""
    )


# --- the session: from the request ------------------------------------------------------------


def over_tls(request: Request) -> bool:
    return served_over_tls(request.url.scheme, request.headers.get("X-Forwarded-Proto"))


def from_this_page(request: Request) -> bool:
    """The Origin check of every form: sent by a page of this server, not another site."""
    return same_origin(
        request.headers.get("Origin"),
        request.headers.get("Referer"),
        request.headers.get("Host"),
        tls=over_tls(request),
    )


def signed_in(service: Service, request: Request) -> Session:
    """The approver whose token is in the session cookie; `TokenError` if none or a bad one."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise TokenError("you are not signed in")
    approver = api.approver_signed_in(service, str(token))
    return Session(approver, form_token(service.settings.token_secret(), str(token)))


def form_token_matches(service: Service, request: Request, form: Mapping[str, str]) -> bool:
    """Whether the form carries the token of the session it is sent in."""
    token = request.cookies.get(COOKIE)
    return bool(token) and form_token_ok(
        service.settings.token_secret(), str(token), form.get(FORM_TOKEN)
    )


async def form_of(request: Request) -> dict[str, str]:
    """The form's text fields (an uploaded file is not a field this page asks for)."""
    return {k: v.strip() for k, v in (await request.post()).items() if isinstance(v, str)}


# --- the views -------------------------------------------------------------------------------


def register(service: Service) -> None:
    """Add the inbox page's views to the service's web server."""
    app = service.app

    def page(view: View, body: str, status: int = 200, cookie: str | None = None) -> Response:
        headers = dict(PAGE_HEADERS)
        if cookie is not None:
            headers["Set-Cookie"] = cookie
        return view.html(body, status=status, headers=headers)

    def redirect(view: View, location: str, cookie: str | None = None) -> Response:
        headers = {"Location": location, "Cache-Control": "no-store"}
        if cookie is not None:
            headers["Set-Cookie"] = cookie
        return view.bytes(b"", status=303, headers=headers)

    def cross_site(view: View) -> Response:
        """403 for a form that did not come from the page itself: nothing is done."""
        return page(
            view,
            render_message(
                "Refused",
                "This form was not sent from the approvals inbox page itself, so nothing was "
                "done. Open the inbox and try again from there.",
            ),
            status=403,
        )

    # The fixed paths first, so `/inbox/sign-in` is never taken for an order id.
    @app.page(f"{INBOX}/sign-in")
    class InboxSignIn(View):
        async def get(self, request: Request) -> Response:
            return redirect(self, INBOX)

        async def post(self, request: Request) -> Response:
            """A valid token becomes the session cookie; a bad one is shown why, with the form.

            Only from the page itself: another site must not sign a browser in as
            someone else (whose inbox the victim would then fill in)."""
            if not from_this_page(request):
                return cross_site(self)
            token = (await form_of(request)).get("token", "")
            try:
                api.approver_signed_in(service, token)
            except TokenError as error:
                return page(self, render_sign_in(str(error)), status=401)
            return redirect(self, INBOX, cookie=session_cookie(token, secure=over_tls(request)))

    @app.page(f"{INBOX}/sign-out")
    class InboxSignOut(View):
        async def post(self, request: Request) -> Response:
            if not from_this_page(request):
                return cross_site(self)
            if not request.cookies.get(COOKIE):
                return redirect(self, INBOX)
            if not form_token_matches(service, request, await form_of(request)):
                return cross_site(self)
            return redirect(self, INBOX, cookie=cleared_cookie(secure=over_tls(request)))

    @app.page(INBOX)
    class InboxPage(View):
        async def get(self, request: Request) -> Response:
            """The sign-in form, or what waits for the signed-in approver."""
            if not request.cookies.get(COOKIE):
                return page(self, render_sign_in())
            try:
                session = signed_in(service, request)
            except TokenError as error:
                cleared = cleared_cookie(secure=over_tls(request))
                return page(self, render_sign_in(str(error)), status=401, cookie=cleared)
            now = datetime.now(UTC)
            async with service.db.sessions() as db:
                items = await inbox.pending_for(db, session.approver_id, now)
            flash = render_flash(request.query.get("sent"), request.query.get("decision"))
            summaries = [item.summary(now) for item in items]
            return page(self, render_inbox(session, summaries, flash))

    @app.page(INBOX + "/{order_id}")
    class InboxRequest(View):
        async def get(self, request: Request, order_id: str) -> Response:
            """The request in full, for members of its account; others get the 404 strangers get."""
            try:
                session = signed_in(service, request)
            except TokenError:
                return redirect(self, INBOX)
            async with service.db.sessions() as db:
                try:
                    detail = await inbox.request_detail(
                        db, order_id, session.approver_id, datetime.now(UTC)
                    )
                except LookupError:
                    detail = None
            if detail is None:
                return page(
                    self,
                    render_message(
                        "Not found",
                        f"There is no approval request for order {order_id} in your accounts.",
                        session=session,
                    ),
                    status=404,
                )
            return page(self, render_request(session, detail, uuid.uuid4()))

        async def post(self, request: Request, order_id: str) -> Response:
            """Decide in the signed-in approver's name; queued → back to the inbox with a flash.

            Only a form from the page itself, carrying the session's form token."""
            if not from_this_page(request):
                return cross_site(self)
            try:
                session = signed_in(service, request)
            except TokenError as error:
                return page(
                    self,
                    render_message("Sign in to decide", f"{error}; sign in and try again."),
                    status=401,
                )
            form = await form_of(request)
            if not form_token_matches(service, request, form):
                return cross_site(self)
            fields = {"approver_id": session.approver_id} | {
                name: form[name]
                for name in ("decision", "comment", "decision_id")
                if form.get(name)
            }
            try:
                body = api.DecisionBody.model_validate(fields)
            except ValidationError as invalid:
                return page(
                    self,
                    render_message(
                        "The decision is not valid",
                        describe_validation_error(invalid),
                        session=session,
                        order_id=order_id,
                    ),
                    status=400,
                )
            status, answer = await api.submit_decision(service, order_id, body)
            if status == 202:
                query = urlencode({"sent": order_id, "decision": body.decision.value})
                return redirect(self, f"{INBOX}?{query}")
            return page(
                self,
                render_message(
                    "Your decision was not taken",
                    str(answer.get("error", "refused")),
                    session=session,
                    order_id=order_id if status != 404 else None,
                ),
                status=status,
            )
