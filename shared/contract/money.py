"""Money on the wire: a decimal *string* plus an ISO 4217 currency.

Floats lose cents, so the contract refuses JSON numbers outright instead of
rounding silently; inside Python every amount is a `Decimal`. The string form
is strict and bounded — plain ASCII digits, an optional sign and fraction, at
most `INTEGER_DIGITS` before the point and `FRACTION_DIGITS` after it — so
`"1e309"`, `" 12.5 "`, `"1_000"`, `"+5"` or other scripts' digits never reach
a rule, and no product or sum of accepted amounts can overflow `Decimal`'s
default 28-digit context (a unit price of at most 10^12 times at most 10^6
units, summed over at most 500 lines).
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

import iso4217
from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

INTEGER_DIGITS = 12
FRACTION_DIGITS = 6
DECIMAL_PATTERN = rf"^-?(0|[1-9][0-9]{{0,{INTEGER_DIGITS - 1}}})(\.[0-9]{{1,{FRACTION_DIGITS}}})?$"
_DECIMAL = re.compile(DECIMAL_PATTERN.replace("$", r"\Z"))


def _decimal_from_wire(value: Any, info: ValidationInfo) -> Decimal:
    """JSON: a string of the strict pattern only. Python callers may also pass Decimal or int."""
    if isinstance(value, str):
        if not _DECIMAL.match(value):
            raise ValueError(
                f'expected a decimal string such as "12.50" (digits 0-9, at most '
                f"{INTEGER_DIGITS} before and {FRACTION_DIGITS} after the point), "
                f"got {value[:40]!r}"
            )
        return Decimal(value)
    if info.mode == "python" and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return _bounded(Decimal(value))
    raise ValueError('money must be a decimal string such as "12.50", not a JSON number')


def _bounded(amount: Decimal) -> Decimal:
    """The same bounds for an amount computed in Python as for one read from the wire."""
    if not amount.is_finite():
        raise ValueError("a decimal must be finite")
    try:
        text = format(amount.normalize() if amount == amount.to_integral() else amount, "f")
    except InvalidOperation:
        raise ValueError("a decimal out of range") from None
    if not _DECIMAL.match(text.rstrip("0").rstrip(".") if "." in text else text):
        raise ValueError(
            f"at most {INTEGER_DIGITS} digits before and {FRACTION_DIGITS} after the point"
        )
    return amount


SignedDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_wire),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["-20", "12.50"]}),
]
"""A decimal that travels as a string, never as a float, and may be negative (a specification)."""

NON_NEGATIVE_PATTERN = DECIMAL_PATTERN.replace("^-?", "^")


def _not_negative(amount: Decimal) -> Decimal:
    if amount < 0:
        raise ValueError("must not be negative")
    return amount


Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_from_wire),
    AfterValidator(_not_negative),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": NON_NEGATIVE_PATTERN, "examples": ["12.50"]}),
]
"""Money, weights and volumes: a non-negative decimal string such as ``"12.50"``."""

CURRENCIES = frozenset(c.code for c in iso4217.Currency if c.exponent is not None)
"""ISO 4217 codes of real currencies (from the `iso4217` package's copy of the standard's
list); funds, precious metals and test codes (no minor unit) are not money we sell in."""


def _iso_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"expected an ISO 4217 currency code such as EUR, got {code[:10]!r}")
    return code


Currency = Annotated[
    str,
    AfterValidator(_iso_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["EUR"]}),
]


@functools.cache
def minor_unit(currency: str) -> Decimal:
    """The smallest amount of a currency: 1 JPY, 0.01 EUR, 0.001 BHD (ISO 4217's exponent)."""
    exponent = iso4217.Currency(currency).exponent
    if exponent is None:
        raise ValueError(f"{currency} has no minor unit; it is not money we sell in")
    return Decimal(1).scaleb(-exponent)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit with banker's rounding (half to even).

    The one rounding rule for every computed amount (docs/pricing.md): half to
    even rather than half up, so the totals of many lines do not drift upwards.
    """
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def round_down_money(amount: Decimal, currency: str) -> Decimal:
    """Round towards zero to the currency's minor unit: a share of a total that must not
    exceed its part (instalments), the remainder being placed explicitly."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_DOWN)
