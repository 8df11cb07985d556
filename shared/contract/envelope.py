"""The envelope every Tradelane event carries.

`event_id` is the idempotency key: consumers record it in their inbox, so a
redelivered or re-sent event changes nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            "occurred_at needs a time zone; send RFC 3339 UTC such as 2026-11-23T10:15:00Z"
        )
    return value if value.tzinfo is UTC else value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_require_utc)]


def now_utc() -> datetime:
    return datetime.now(UTC)


TEXT_MAX_LENGTH = 4000
"""No text field of the contract is longer; most have tighter bounds (docs/contract.md)."""


class ContractModel(BaseModel):
    """Strict about unknown fields so a typo in a shop's payload is an error, not silence."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=TEXT_MAX_LENGTH)


class Event(ContractModel):
    """Base of every message. Subclasses pin `schema` to `Literal["<topic>/v<major>"]`."""

    schema_: str = Field(alias="schema", description="'<topic>/v<major>'")
    event_id: uuid.UUID = Field(
        description="Unique per event; the idempotency key. Keep it on retry."
    )
    occurred_at: UtcTime = Field(description="RFC 3339 UTC, e.g. 2026-11-23T10:15:00Z")

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, str_max_length=TEXT_MAX_LENGTH
    )

    @classmethod
    def new(cls, **fields: Any) -> Self:
        """Build a fresh event of this type with a new id and the current time."""
        schema = cls.model_fields["schema_"].annotation.__args__[0]  # type: ignore[union-attr]
        fields.setdefault("event_id", uuid.uuid4())
        fields.setdefault("occurred_at", now_utc())
        return cls.model_validate({"schema": schema, **fields})

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()
