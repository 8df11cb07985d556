"""The one way a business rule says no: an exception carrying the contract's reason."""

from __future__ import annotations

from shared.contract import Reason, ReasonCode


class Rejected(Exception):
    """An order a step cannot accept; `reason` goes out on `orders.status` as it is."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(code=code, message=message)
