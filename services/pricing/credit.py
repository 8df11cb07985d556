"""Credit limit and exposure (B2B): may this account owe us this order too?

Pure rules over plain data; `credit_ledger` loads and locks, these decide.

- An account's **open exposure** is what its live orders still owe: the sum of
  the open amounts of its credit holds (priced, awaiting approval, approved,
  shipped, delivered — until paid) less the **credit on account** (money paid
  beyond what an order owed, or paid for an order that was then cancelled).
  It may go below 0: a customer who paid ahead may buy that much more.
- An order that would take exposure over the limit is rejected
  (`credit_limit_exceeded`) or, if the account's policy says
  `finance_approval`, priced with `credit_limit_override` for finance to decide.
  Reaching the limit exactly still fits.
- From `warning_percent` of the limit on, the priced order carries a warning.
- No limit means no limit: the order is held (exposure is still tracked, so a
  limit set later starts from the truth) but never checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from shared.contract import CreditPolicy, ReasonCode
from shared.contract.money import minor_unit
from shared.rejection import Rejected

HUNDRED = Decimal(100)


def shown(amount: Decimal, currency: str) -> str:
    """Money for people and the API: at least the currency's minor unit (`0.00` EUR, `12` JPY,
    `1.250` BHD), never fewer digits shown than it has (a payment of 0.005 EUR stays 0.005)."""
    unit = minor_unit(currency)
    if amount.as_tuple().exponent > unit.as_tuple().exponent:  # type: ignore[operator]
        amount = amount.quantize(unit)
    return format(amount, "f")


class CreditOutcome(StrEnum):
    """How the credit check ended: a closed list, the `outcome` label of the metric."""

    UNLIMITED = "unlimited"
    WITHIN = "within_limit"
    WARNED = "warned"
    OVERRIDE = "finance_override"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CreditLine:
    """An account's credit terms as pricing keeps them; `limit` None is no limit."""

    account_id: str
    currency: str
    limit: Decimal | None
    policy: CreditPolicy = CreditPolicy.REJECT
    warning_percent: int = 80

    def money(self, amount: Decimal) -> str:
        """An amount in the account's currency, for messages: `1250.00 EUR`."""
        return f"{shown(amount, self.currency)} {self.currency}"


@dataclass(frozen=True)
class CreditCheck:
    """The verdict on an order that fits (or goes to finance); a rejection raises instead."""

    outcome: CreditOutcome
    warning: str | None = None
    utilisation: Decimal | None = None
    """Exposure after the order over the limit (1 = at the limit); None without a limit > 0."""

    @property
    def override(self) -> bool:
        return self.outcome is CreditOutcome.OVERRIDE


def exposure_of(open_amounts: list[Decimal], credit_on_account: Decimal) -> Decimal:
    """What the account owes on its live orders, less what it paid ahead."""
    return sum(open_amounts, Decimal(0)) - credit_on_account


def utilisation(exposure: Decimal, limit: Decimal | None) -> Decimal | None:
    if limit is None or limit <= 0:
        return None
    return exposure / limit


def check_credit(
    line: CreditLine | None, exposure: Decimal, amount: Decimal, currency: str
) -> CreditCheck:
    """Decide whether `amount` more fits the account's limit; `Rejected` if it must not."""
    if line is None or line.limit is None:
        return CreditCheck(CreditOutcome.UNLIMITED)
    if currency != line.currency:
        raise Rejected(
            ReasonCode.CURRENCY_NOT_SUPPORTED,
            f"account {line.account_id!r} buys on credit in {line.currency}; "
            f"an order in {currency} cannot be set against its limit",
        )
    after = exposure + amount
    ratio = utilisation(after, line.limit)
    if after > line.limit:
        return over_the_limit(line, exposure, amount, ratio)
    if after > 0 and after * HUNDRED >= line.limit * line.warning_percent:
        return CreditCheck(CreditOutcome.WARNED, warning_text(line, after), ratio)
    return CreditCheck(CreditOutcome.WITHIN, None, ratio)


def over_the_limit(
    line: CreditLine, exposure: Decimal, amount: Decimal, ratio: Decimal | None
) -> CreditCheck:
    """Over the limit: the account's policy says reject, or let finance decide."""
    assert line.limit is not None
    said = (
        f"order total {line.money(amount)} would take the open exposure of account "
        f"{line.account_id!r} from {line.money(exposure)} to {line.money(exposure + amount)}, "
        f"over its credit limit of {line.money(line.limit)} "
        f"(available {line.money(max(line.limit - exposure, Decimal(0)))})"
    )
    if line.policy is CreditPolicy.FINANCE_APPROVAL:
        return CreditCheck(CreditOutcome.OVERRIDE, f"{said}; finance must approve", ratio)
    raise Rejected(ReasonCode.CREDIT_LIMIT_EXCEEDED, said)


def warning_text(line: CreditLine, after: Decimal) -> str:
    assert line.limit is not None
    percent = (after * HUNDRED / line.limit).quantize(Decimal(1))
    return (
        f"open exposure of {line.money(after)} after this order is {percent} % of "
        f"the credit limit of {line.money(line.limit)} (warning from {line.warning_percent} %)"
    )


@dataclass(frozen=True)
class PaymentSplit:
    """A payment set against one order: what paid it off, what is left as credit on account."""

    applied: Decimal
    surplus: Decimal


def split_payment(open_amount: Decimal, paid: Decimal) -> PaymentSplit:
    """Pay the order's open amount first; the rest is credit on account (over-payment)."""
    applied = min(max(open_amount, Decimal(0)), paid)
    return PaymentSplit(applied, paid - applied)
