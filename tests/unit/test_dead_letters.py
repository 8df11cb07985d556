"""Dead letters stay bounded and the id reader survives anything a shop can send."""

from __future__ import annotations

import base64
import hashlib

from shared.consume import readable_ids
from shared.contract import DeadLetter
from shared.contract.dead_letter import KEPT_BYTES


def letter_about(value: bytes, error: str = "bad") -> DeadLetter:
    return DeadLetter.describing(
        value,
        service="catalog",
        source_topic="orders.submitted",
        partition=0,
        offset=7,
        error=error,
    )


def test_a_letter_about_a_900_kb_message_keeps_its_start_its_size_and_its_hash() -> None:
    value = b'{"order_id": "' + b"x" * 900_000 + b'"}'
    letter = letter_about(value, error="e" * 50_000)
    assert letter.truncated and letter.original_size == len(value)
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.original_text == value[:KEPT_BYTES].decode() and letter.original_base64 is None
    assert len(letter.error) == 2000
    assert len(letter.to_bytes()) < 2 * KEPT_BYTES  # far below the broker's 1 MB


def test_a_small_message_is_kept_whole_as_text() -> None:
    letter = letter_about(b'{"a": 1}')
    assert not letter.truncated and letter.original_text == '{"a": 1}'


def test_bytes_that_are_not_utf8_are_kept_as_base64() -> None:
    value = b"\xff\xfe" + bytes(range(256)) * 1000
    letter = letter_about(value)
    assert letter.original_text is None and letter.truncated
    assert base64.b64decode(letter.original_base64 or "") == value[:KEPT_BYTES]


def test_a_cut_through_a_multibyte_character_is_still_text() -> None:
    value = "€".encode() * KEPT_BYTES
    letter = letter_about(value)
    assert letter.original_text is not None and set(letter.original_text) == {"€"}


def test_100000_nested_brackets_read_as_no_ids_instead_of_raising() -> None:
    assert readable_ids(b"[" * 100_000) == (None, None)
    assert readable_ids(b'{"a":' * 100_000) == (None, None)


def test_ids_are_read_from_an_invalid_order_and_from_a_nested_order() -> None:
    assert readable_ids(b'{"order_id": "o-1", "account_id": "acme", "lines": 7}') == ("o-1", "acme")
    assert readable_ids(b'{"order": {"order_id": "o-2"}}') == ("o-2", None)
    assert readable_ids(b'{"order_id": 12, "account_id": ""}') == (None, None)
    assert readable_ids(('{"order_id": "' + "x" * 65 + '"}').encode()) == (None, None)
