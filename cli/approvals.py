"""`tradelane approvals token|delegate`: approver tokens and out-of-office delegations."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from cli.arguments import contract_id
from cli.publish import send_one
from shared.contract import Delegation
from shared.settings import load_settings

DELEGATION_OPTIONS = {
    "account_id": "--account",
    "delegator_id": "--from",
    "delegate_id": "--to",
    "starts_at": "--starts",
    "ends_at": "--until",
    "reason": "--reason",
}
"""Delegation fields and the `approvals delegate` options that fill them, for error messages."""


member_id = contract_id("acme-manager")
"""argparse type: a member id, e.g. acme-manager."""


def positive_hours(text: str) -> timedelta:
    """argparse type: `--ttl 8` or `--ttl 0.5` hours, at most a token's longest life (24)."""
    from shared.tokens import MAX_TTL

    most = MAX_TTL.total_seconds() / 3600
    try:
        hours = float(text)
    except ValueError:
        hours = float("nan")
    if not 0 < hours <= most:
        raise argparse.ArgumentTypeError(
            f"expected a number of hours greater than 0 (at most {most:g}), e.g. 8 or 0.5; "
            f"got {text!r}"
        )
    return timedelta(hours=hours)


def rfc3339(text: str) -> datetime:
    """argparse type: an RFC 3339 time with its zone, e.g. 2026-12-24T17:00:00Z."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            "expected an RFC 3339 time with a zone, e.g. 2026-12-24T17:00:00Z or "
            f"2026-12-24T18:00:00+01:00; got {text!r}"
        )
    return moment.astimezone(UTC)


def cmd_approvals_token(args: argparse.Namespace) -> int:
    from shared.tokens import DEFAULT_TTL, issue_token

    settings = load_settings()
    print(issue_token(settings.token_secret(), args.approver_id, args.ttl or DEFAULT_TTL))
    return 0


def delegation_error(error: ValidationError) -> str:
    """A `Delegation` validation error in the words of the command line (its options)."""
    parts = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        if field in DELEGATION_OPTIONS:
            parts.append(f"{DELEGATION_OPTIONS[field]}: {message}")
        elif "ends_at must be after starts_at" in message:
            parts.append(
                "--until must be after --starts (default: now); to end a delegation early, "
                "send one whose --starts and --until are both in the past"
            )
        elif "delegate_id" in message:
            parts.append("--to: an approver cannot delegate to themselves")
        else:
            parts.append(message)
    return "; ".join(parts)


def cmd_approvals_delegate(args: argparse.Namespace) -> int:
    from shared.topics import DELEGATIONS

    starts = args.starts if args.starts is not None else datetime.now(UTC)
    return send_one(
        "approvals delegate",
        DELEGATIONS,
        lambda: Delegation.new(
            account_id=args.account,
            delegator_id=args.delegator,
            delegate_id=args.delegate,
            starts_at=starts,
            ends_at=args.until,
            reason=args.reason,
        ),
        delegation_error,
        delegation_said,
    )


def delegation_said(delegation: Delegation) -> str:
    who = f"{delegation.delegate_id} for {delegation.delegator_id} in {delegation.account_id}"
    if delegation.ends_at <= datetime.now(UTC):
        return f"delegation ended: {who} no longer decides"
    return (
        f"{who}: decides from {delegation.starts_at.isoformat()} "
        f"until {delegation.ends_at.isoformat()}"
    )


def add_approvals_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = commands.add_parser(
        "approvals", help="approver tokens and delegations (docs/approvals.md)"
    )
    actions = approvals.add_subparsers(dest="action", required=True)
    token = actions.add_parser(
        "token",
        help="print a bearer token for the approvals API and inbox page",
        description="Print a token whose subject is APPROVER, signed with APPROVALS_TOKEN_SECRET "
        "(use the same environment as the approvals service). Use it as "
        "'Authorization: Bearer <token>' or paste it into the inbox page.",
    )
    token.add_argument("approver_id", type=member_id, help="the approver's member id")
    token.add_argument(
        "--ttl",
        type=positive_hours,
        default=None,
        metavar="HOURS",
        help="how long the token is valid, in hours (default: 8, at most 24)",
    )
    token.set_defaults(run=cmd_approvals_token)
    delegate = actions.add_parser(
        "delegate",
        help="let one member decide in another's name for a while (out of office)",
        description="Publish a delegation on approvals.delegations: while STARTS <= now < UNTIL, "
        "DELEGATE may decide in DELEGATOR's name. A delegator's latest delegation replaces "
        "the previous one.",
    )
    delegate.add_argument("--account", required=True, type=member_id, metavar="ACCOUNT")
    delegate.add_argument(
        "--from", dest="delegator", required=True, type=member_id, metavar="DELEGATOR"
    )
    delegate.add_argument(
        "--to", dest="delegate", required=True, type=member_id, metavar="DELEGATE"
    )
    delegate.add_argument(
        "--until", required=True, type=rfc3339, metavar="TIME", help="RFC 3339 end (exclusive)"
    )
    delegate.add_argument(
        "--starts", type=rfc3339, default=None, metavar="TIME", help="RFC 3339 start (default: now)"
    )
    delegate.add_argument("--reason", default=None, help="e.g. 'holiday' (at most 200 characters)")
    delegate.set_defaults(run=cmd_approvals_delegate)
