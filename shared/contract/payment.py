"""How an order is paid: its terms, the plan a priced order carries, and the payments finance
receives against it (`payments.received`): docs/pricing.md.

Terms travel as a short string, as they always have (`NET30`), so older
events stay valid; this module reads that string into a `PaymentTerms` value
by one grammar, shared by the contract (an account whose terms do not parse is
refused at the edge, to the dead-letter topic) and by the services that reason
about them (pricing's due dates, approvals' "longer than usual" rule):

    terms    := PREPAY | ON_FULFILLMENT | NET<days> | DOM<day> | DEPOSIT<pct>_<rest>
    rest     := ON_FULFILLMENT | NET<days> | DOM<day>
    days     := 0..999          (NET30: due 30 days after the order is priced)
    day      := 1..31           (DOM15: due on the 15th of the following month; a month
                                 without that day uses its last day, DOM31 in February → 28/29)
    pct      := 1..99           (DEPOSIT30_NET30: 30 % due now, the rest on NET30)

The plan is what a shop shows and an auditor checks: every amount with its
currency, and the amounts sum exactly to the order's total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, model_validator

from shared.contract.envelope import ContractModel, Event, UtcTime
from shared.contract.money import Amount, Currency
from shared.contract.orders import Id


class DueRule(StrEnum):
    """When an amount falls due: a date known when the order is priced, or on fulfillment."""

    PREPAY = "PREPAY"
    ON_FULFILLMENT = "ON_FULFILLMENT"
    NET = "NET"
    DOM = "DOM"


_TERMS = re.compile(
    r"(?:DEPOSIT(?P<pct>[1-9][0-9]?)_)?"
    r"(?:(?P<fixed>PREPAY|ON_FULFILLMENT)|NET(?P<net>[0-9]{1,3})|DOM(?P<dom>[1-9][0-9]?))"
)
TERMS_PATTERN = r"^(DEPOSIT[1-9][0-9]?_)?(PREPAY|ON_FULFILLMENT|NET[0-9]{1,3}|DOM[1-9][0-9]?)$"
"""The grammar's shape as a JSON Schema pattern; the parser adds the ranges it cannot say."""

MAX_TERMS_LENGTH = 40


@dataclass(frozen=True)
class PaymentTerms:
    """One parsed terms string: when the rest is due, and the deposit taken up front, if any."""

    due: DueRule
    days: int = 0
    """NET: days after pricing; DOM: the day of the following month; otherwise 0."""
    deposit_percent: int | None = None

    @classmethod
    def parse(cls, text: str) -> PaymentTerms:
        """Read terms by the grammar above, or raise ValueError saying what is wrong."""
        found = _TERMS.fullmatch(text)
        if found is None:
            raise ValueError(
                f"payment terms {text[:MAX_TERMS_LENGTH]!r} are not PREPAY, ON_FULFILLMENT, "
                "NET<days>, DOM<day> or DEPOSIT<percent>_<NET<days>|DOM<day>|ON_FULFILLMENT>"
            )
        pct = int(found["pct"]) if found["pct"] else None
        if found["fixed"]:
            due, days = DueRule(found["fixed"]), 0
        elif found["net"] is not None:
            due, days = DueRule.NET, int(found["net"])
        else:
            due, days = DueRule.DOM, int(found["dom"])
        if due is DueRule.DOM and not 1 <= days <= 31:
            raise ValueError(f"payment terms {text!r}: DOM needs a day of the month 1..31")
        if pct is not None and due is DueRule.PREPAY:
            raise ValueError(
                f"payment terms {text!r}: a deposit before prepayment is just PREPAY; "
                "a deposit is followed by NET<days>, DOM<day> or ON_FULFILLMENT"
            )
        return cls(due, days, pct)

    @property
    def credit_days(self) -> int:
        """The longest the customer may wait to pay the rest, in days, to compare terms.

        PREPAY and ON_FULFILLMENT give no credit (0); NET<n> gives n; DOM<d> at most
        the rest of this month (31) plus d days of the next.
        """
        if self.due is DueRule.NET:
            return self.days
        if self.due is DueRule.DOM:
            return 31 + self.days
        return 0


def _valid_terms(text: str) -> str:
    PaymentTerms.parse(text)
    return text


Terms = Annotated[
    str,
    StringConstraints(max_length=MAX_TERMS_LENGTH),
    AfterValidator(_valid_terms),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": TERMS_PATTERN,
            "examples": ["PREPAY", "NET30", "DOM15", "ON_FULFILLMENT", "DEPOSIT30_NET30"],
        }
    ),
]
"""Payment terms an account may use, checked against the grammar (docs/pricing.md)."""


class DueKind(StrEnum):
    FULL = "full"
    DEPOSIT = "deposit"
    REMAINDER = "remainder"
    INSTALMENT = "instalment"


class DueAmount(ContractModel):
    """One amount of the plan: what is due, in which currency, and when."""

    kind: DueKind
    amount: Amount
    currency: Currency
    due: Literal["on_date", "on_fulfillment"] = Field(
        description="`on_date`: by `due_on`; `on_fulfillment`: when the order ships "
        "(the date is not known when it is priced)."
    )
    due_on: date | None = Field(default=None, description="The due date, with `on_date`.")

    @model_validator(mode="after")
    def _date_with_on_date(self) -> Self:
        if (self.due == "on_date") != (self.due_on is not None):
            raise ValueError("due_on is given exactly when due is 'on_date'")
        return self


class PaymentPlan(ContractModel):
    """How the order's total is paid: by which method and terms, in which amounts, by when.

    The amounts sum exactly to the order's total, in its currency (docs/pricing.md
    gives the rounding rule). Dates count from `priced_on`, the day pricing priced the
    order (UTC): the invoice date as far as pricing can know it.
    """

    method: Literal["card", "prepaid", "installments", "invoice"]
    terms: Terms | None = Field(default=None, description="Invoice terms (B2B), as agreed.")
    installments: Literal[3, 6, 12] | None = Field(
        default=None, description="Number of monthly instalments (B2C installments)."
    )
    priced_on: date
    schedule: list[DueAmount] = Field(min_length=1, max_length=12)

    @model_validator(mode="after")
    def _one_currency(self) -> Self:
        if len({due.currency for due in self.schedule}) != 1:
            raise ValueError("schedule: every amount of one plan is in the order's currency")
        return self

    @property
    def total(self) -> Decimal:
        return sum((due.amount for due in self.schedule), Decimal(0))


# --- payments received (ERP -> pricing) ------------------------------------------------------
# Pricing reads them to reduce the account's open credit exposure. `payment_id` is finance's own
# id of the payment: the same payment sent twice (under two event ids) is applied once.


class PaymentReceived(Event):
    """`payments.received/v1` (ERP → pricing), key `account_id`."""

    schema_: Literal["payments.received/v1"] = Field(alias="schema")
    payment_id: Id = Field(description="Finance's id of the payment; applied once.")
    account_id: Id
    order_id: Id = Field(description="The invoiced order the payment is for.")
    amount: Amount = Field(
        description="More than 0; what exceeds the order's open amount is credit on account."
    )
    currency: Currency = Field(description="The order's currency; another is refused.")
    received_at: UtcTime = Field(description="When the money arrived (RFC 3339 UTC).")

    @model_validator(mode="after")
    def _some_money(self) -> Self:
        if self.amount == 0:
            raise ValueError("amount: a payment of 0 pays nothing")
        return self
