"""What lands on `<topic>.dlq`: the original bytes and why they could not be handled."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import Field

from shared.contract.envelope import Event


class DeadLetter(Event):
    """`dead_letter/v1` on every `<topic>.dlq`, key: the original key."""

    schema_: Literal["dead_letter/v1"] = Field(alias="schema")
    service: str
    source_topic: str
    partition: int
    offset: int
    error: str
    original_base64: str = Field(description="The message value exactly as received.")
    original_text: str | None = Field(default=None, description="The same, if it was UTF-8.")

    @staticmethod
    def encode_original(value: bytes) -> tuple[str, str | None]:
        try:
            text: str | None = value.decode()
        except UnicodeDecodeError:
            text = None
        return base64.b64encode(value).decode(), text
