"""`tradelane publish`: every line is checked against the contract before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli import main, read_events
from shared.seed import b2b_order, b2c_order
from shared.topics import ALL_TOPICS, ORDERS_SUBMITTED


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_valid_lines_are_read_with_their_topic_from_the_schema(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        b2c_order("o-1", [("GLOVE-L", 1)]).to_bytes().decode(),
        "",
        b2b_order("o-2", [("BOLT-M8-100", 5)]).to_bytes().decode(),
    )
    events, errors = read_events(path, None)
    assert errors == []
    assert [(spec, event.order_id) for spec, event in events] == [  # type: ignore[attr-defined]
        (ORDERS_SUBMITTED, "o-1"),
        (ORDERS_SUBMITTED, "o-2"),
    ]


def test_each_bad_line_is_reported_with_its_number_and_field(tmp_path: Path) -> None:
    good = b2c_order("o-1", [("GLOVE-L", 1)]).to_bytes().decode()
    zero = good.replace('"quantity":1', '"quantity":0')
    path = write_lines(tmp_path, good, "{not json", zero, '{"schema": "orders.shipped/v9"}')
    _, errors = read_events(path, None)
    assert [str(e) for e in errors] == [
        "line 2: not JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 3: lines.0.quantity: Input should be greater than 0",
        "line 4: schema: expected one of "
        + ", ".join(f"{spec.name}/v1" for spec in ALL_TOPICS)
        + "; got 'orders.shipped/v9'",
    ]


def test_a_file_with_errors_sends_nothing_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # would fail if contacted
    path = write_lines(tmp_path, b2c_order("o-1", [("GLOVE-L", 1)]).to_bytes().decode(), "[]")
    assert main(["publish", str(path)]) == 1
    assert "line 2: expected a JSON object" in capsys.readouterr().err
