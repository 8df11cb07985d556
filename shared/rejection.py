"""The two ways a handler says no: an order rejected, or an event refused."""

from __future__ import annotations

from shared.contract import Reason, ReasonCode


class Rejected(Exception):
    """An order a step cannot accept; `reason` goes out on `orders.status` as it is."""

    def __init__(self, code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(code=code, message=message)


class Refused(Exception):
    """An event that must not touch the order it names (another account's, or a duplicate).

    It goes to the dead-letter topic with `why` and changes nothing: no status
    is published, because `orders.status` speaks for the rightful order.
    """

    def __init__(self, why: str, message: str) -> None:
        super().__init__(f"{why}: {message}")
        self.why = why
