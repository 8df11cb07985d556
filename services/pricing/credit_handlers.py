"""Pricing's credit handlers: hold exposure when an order is priced, follow its fate, take payments.

- `hold_credit`: called while pricing an order (B2B only): lock the account,
  check the order against its limit, hold the order's total.
- `order_status_changed` (`orders.status.holds`): approved commits the order's holds,
  rejected or cancelled (an expired approval is a rejection) releases them;
  what was already paid for a released order becomes credit on account.
- `payment_received` (`payments.received`): pays off the order's open amount;
  an over-payment is credit on account. A payment that cannot be set against an
  order pricing holds — unknown order, another account's, another currency, or a
  `payment_id` reused for a different payment — is refused to the DLQ.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from services.pricing import credit, credit_ledger, holds
from services.pricing.credit import CreditCheck, CreditOutcome
from services.pricing.holds import HoldKind, HoldRow, HoldState
from services.pricing.metrics import CREDIT_CHECKS, CREDIT_PAYMENTS, CREDIT_UTILISATION
from shared.contract import Account, Channel, Order, OrderStatusChanged, PaymentReceived
from shared.db import Transaction
from shared.rejection import Refused, Rejected

log = logging.getLogger(__name__)


async def credit_terms_changed(account: Account, tx: Transaction) -> None:
    """Business accounts' credit lines; consumers never buy on credit."""
    if account.channel is Channel.B2B:
        await credit_ledger.save_terms(tx.session, account)


async def hold_credit(tx: Transaction, order: Order, total: Decimal) -> CreditCheck:
    """Check the order against the account's limit and hold its total; `Rejected` over it."""
    if order.channel is not Channel.B2B:
        return CreditCheck(CreditOutcome.UNLIMITED)
    account = await credit_ledger.locked_account(tx.session, order.account_id, order.currency)
    exposure = (await credit_ledger.position(tx.session, account)).exposure
    try:
        check = credit.check_credit(account.line(), exposure, total, order.currency)
    except Rejected:
        tx.on_commit(CREDIT_CHECKS.labels(CreditOutcome.REJECTED.value).inc)
        raise
    await holds.hold(
        tx.session, HoldKind.CREDIT, order.order_id, order.account_id, total, order.currency
    )
    tx.on_commit(CREDIT_CHECKS.labels(check.outcome.value).inc)
    if check.utilisation is not None:
        tx.on_commit(lambda: CREDIT_UTILISATION.observe(float(check.utilisation or 0)))
    return check


async def order_status_changed(event: OrderStatusChanged, tx: Transaction) -> None:
    """Commit or release the order's holds as its fate says; other transitions change nothing.

    A release changes the account's exposure and may give back what was paid,
    so a credit hold's account is locked before its holds are released, and
    they are read again under that lock. A commit moves no money: the hold
    counts before and after, and only this order's reports, one at a time on
    one topic, move its holds' state (a payment changes what is settled, not
    the state). So approving an order locks no account, and the business
    orders being priced meanwhile, which must, do not queue behind it.
    """
    wanted = holds.fate_of(event.status)
    if wanted is None:
        return
    held = await holds.all_holds_of_order(tx.session, event.order_id)
    releasing = wanted is HoldState.RELEASED
    credit = [row for row in held if row.kind == HoldKind.CREDIT and releasing]
    accounts = {
        row.subject: await credit_ledger.locked_account(tx.session, row.subject, row.currency or "")
        for row in credit
    }
    if credit:
        held = await holds.all_holds_of_order(tx.session, event.order_id, again=True)
    for row in holds.move_holds(held, wanted):
        if row.kind == HoldKind.CREDIT and releasing:
            accounts[row.subject].credit_on_account += row.settled


async def payment_received(payment: PaymentReceived, tx: Transaction) -> None:
    """Pay off the order's open amount; the surplus is credit on account."""
    known = await credit_ledger.find_payment(tx.session, payment.payment_id)
    if known is not None:
        same = (known.account_id, known.order_id, known.amount, known.currency)
        if same != (payment.account_id, payment.order_id, payment.amount, payment.currency):
            raise Refused(
                "payment_id_reused",
                f"payment {payment.payment_id} was applied before with other details",
            )
        log.info("payment %s was applied before; it stands", payment.payment_id)
        return
    account = await credit_ledger.locked_account(tx.session, payment.account_id, payment.currency)
    found = await holds.holds_of_order(tx.session, HoldKind.CREDIT, payment.order_id)
    row = payable_hold(payment, found)
    split = credit.split_payment(row.open, payment.amount)
    row.settled += split.applied
    account.credit_on_account += split.surplus
    credit_ledger.record_payment(tx.session, payment, split.applied, split.surplus)
    outcome = "overpaid" if split.surplus else ("settled" if row.open == 0 else "partial")
    tx.on_commit(CREDIT_PAYMENTS.labels(outcome).inc)


def payable_hold(payment: PaymentReceived, found: list[HoldRow]) -> HoldRow:
    """The order's credit hold, if this payment may be set against it; `Refused` otherwise."""
    if not found:
        raise Refused(
            "unknown_order",
            f"payment {payment.payment_id}: order {payment.order_id} is no invoiced order "
            "pricing priced on credit",
        )
    [row] = found
    if row.subject != payment.account_id:
        raise Refused(
            "another_account",
            f"payment {payment.payment_id} of account {payment.account_id} names order "
            f"{payment.order_id} of another account",
        )
    if row.currency != payment.currency:
        raise Refused(
            "currency_mismatch",
            f"payment {payment.payment_id} is in {payment.currency}; order "
            f"{payment.order_id} is in {row.currency}",
        )
    return row
