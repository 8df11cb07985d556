"""`payments.received`: money the finance system (ERP) booked against an invoiced order.

Pricing reads it to reduce the account's open credit exposure. `payment_id`
is finance's own id of the payment: the same payment sent twice (under two
event ids) is applied once.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from shared.contract.envelope import Event, UtcTime
from shared.contract.money import Amount, Currency
from shared.contract.orders import Id


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
