"""What lands on `<topic>.dlq`: why a message could not be handled, and enough of it to act on.

A dead letter is bounded whatever it describes: the original is kept up to
`KEPT_BYTES` (as text when it is UTF-8, else base64), and always named by its
size and SHA-256. An unbounded letter about an oversized message would itself
exceed the broker's limit and could never be sent.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal, Self

from pydantic import Field

from shared.contract.envelope import Event

KEPT_BYTES = 64 * 1024
"""How much of the original a dead letter carries."""
ERROR_CHARS = 2000
"""How long the error may be; a longer one is cut."""


class DeadLetter(Event):
    """`dead_letter/v2` on every `<topic>.dlq`, key: the original key."""

    schema_: Literal["dead_letter/v2"] = Field(alias="schema")
    service: str = Field(max_length=40)
    source_topic: str = Field(max_length=249)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    error: str = Field(max_length=ERROR_CHARS)
    original_size: int = Field(ge=0, description="Size of the message value in bytes.")
    original_sha256: str = Field(
        pattern="^[0-9a-f]{64}$", description="SHA-256 of the whole message value (hex)."
    )
    original_text: str | None = Field(
        default=None,
        max_length=KEPT_BYTES,
        description=f"The value as text, if it was UTF-8; its first {KEPT_BYTES} bytes at most.",
    )
    original_base64: str | None = Field(
        default=None,
        max_length=(KEPT_BYTES + 2) // 3 * 4,
        description=f"The value as base64 when it was not UTF-8; its first {KEPT_BYTES} bytes.",
    )
    truncated: bool = Field(description="True when only the start of the original is kept.")

    @classmethod
    def describing(
        cls,
        value: bytes,
        *,
        service: str,
        source_topic: str,
        partition: int,
        offset: int,
        error: str,
    ) -> Self:
        """A bounded letter about `value`, which may be anything a shop sent."""
        kept = value[:KEPT_BYTES]
        text: str | None
        try:
            text = kept.decode()
        except UnicodeDecodeError as cut:
            # A cut through a multi-byte character is still text; anything else is not.
            text = (
                kept[: cut.start].decode()
                if cut.start >= len(kept) - 3 and len(value) > len(kept)
                else None
            )
        return cls.new(
            service=service,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            error=error[:ERROR_CHARS],
            original_size=len(value),
            original_sha256=hashlib.sha256(value).hexdigest(),
            original_text=text,
            original_base64=None if text is not None else base64.b64encode(kept).decode(),
            truncated=len(kept) < len(value),
        )
