"""Money on the wire: a decimal *string* plus an ISO 4217 currency.

Floats lose cents, so the contract refuses them outright instead of rounding
silently; inside Python every amount is a `Decimal`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
CENT = Decimal("0.01")


def _decimal_from_wire(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool | float):
        raise ValueError('money must be a decimal string such as "12.50", not a JSON number')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError(f'{value!r} is not a decimal string such as "12.50"') from None
        if not amount.is_finite():
            raise ValueError("money must be a finite decimal string")
        return amount
    raise ValueError('money must be a decimal string such as "12.50"')


Decimal_ = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_wire),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["12.50"]}),
]
"""A decimal that travels as a string (``"12.50"``), never as a float: money, weights."""

Amount = Decimal_

Currency = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["EUR"]}),
]


def round_money(amount: Decimal) -> Decimal:
    """Round to cents with banker's rounding, so totals of many lines do not drift upwards."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
