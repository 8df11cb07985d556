"""`tradelane publish`, `catalog adjust`, `fulfillment dispatch`: everything is checked against
the contract before anything is sent, and a refusal names the argument."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import publish
from cli.main import build_parser, main
from cli.publish import NothingSent, read_events
from shared.contract import Event, ShipmentDispatched, StockAdjustment
from shared.topics import ALL_TOPICS, DISPATCHES, ORDERS_SUBMITTED, STOCK_ADJUSTMENTS, TopicSpec
from tools.seed import b2b_order, b2c_order


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


# --------------------------------------------------------------------------- catalog adjust


def adjust(*args: str) -> list[str]:
    return ["catalog", "adjust", "BOLT-M8-100", "dc-kassel", *args]


def refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What argparse says when it refuses `argv` (exit code 2, nothing run)."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(("text", "delta"), [("+5", 5), ("-3", -3), ("+120000", 120000)])
def test_a_stock_adjustment_takes_a_signed_delta(text: str, delta: int) -> None:
    args = build_parser().parse_args(adjust(text, "--reason", "count correction"))
    assert (args.sku, args.warehouse, args.delta, args.reason) == (
        "BOLT-M8-100",
        "dc-kassel",
        delta,
        "count correction",
    )


@pytest.mark.parametrize("text", ["5", "0", "2.5", "+", "five", "+ 5", "--3", "+٣"])
def test_a_delta_without_its_sign_or_not_a_whole_number_is_refused(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert refusal(adjust("--reason=x", "--", text), capsys) == (
        "tradelane catalog adjust: error: argument DELTA: expected a change in units with its "
        f"sign, e.g. +5 or -3 (the change, not the new on-hand level); got {text!r}"
    )


@pytest.mark.parametrize("text", ["+0", "-0", "+000"])
def test_an_adjustment_of_zero_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert refusal(adjust("--reason=x", "--", text), capsys) == (
        "tradelane catalog adjust: error: argument DELTA: expected a change other than 0, "
        f"e.g. +5 or -3: an adjustment of 0 units changes nothing; got {text!r}"
    )


def test_a_stock_adjustment_needs_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert refusal(adjust("-3"), capsys) == (
        "tradelane catalog adjust: error: the following arguments are required: --reason"
    )
    for empty in ("", "   "):
        assert refusal(adjust("-3", "--reason", empty), capsys) == (
            "tradelane catalog adjust: error: argument --reason: expected why the stock changed "
            f"in 1-200 characters, e.g. 'breakage' or 'count correction'; got {empty!r}"
        )
    assert refusal(adjust("-3", "--reason", "x" * 201), capsys).endswith("got 201 characters")


def test_a_stock_adjustment_names_the_sku_or_warehouse_that_is_not_an_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = refusal(["catalog", "adjust", "bolt m8", "dc-kassel", "-3", "--reason", "x"], capsys)
    assert error.startswith("tradelane catalog adjust: error: argument SKU: expected an id")
    assert error.endswith("e.g. BOLT-M8-100; got 'bolt m8'")
    error = refusal(["catalog", "adjust", "BOLT-M8-100", "@kassel", "-3", "--reason", "x"], capsys)
    assert error.startswith("tradelane catalog adjust: error: argument WAREHOUSE: expected an id")


def test_the_adjust_command_publishes_one_adjustment_and_prints_its_event_id(
    sent: list[tuple[TopicSpec, Event]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(adjust("-3", "--reason", " breakage ")) == 0
    [(spec, event)] = sent
    assert spec is STOCK_ADJUSTMENTS and isinstance(event, StockAdjustment)
    assert (event.sku, event.warehouse_id, event.delta, event.reason) == (
        "BOLT-M8-100",
        "dc-kassel",
        -3,
        "breakage",
    )
    assert capsys.readouterr().out == (
        "BOLT-M8-100 in dc-kassel: -3 on hand (breakage) "
        f"(sent to catalog.stock_adjustments, event {event.event_id})\n"
    )


# --------------------------------------------------------------------------- fulfillment dispatch


def test_a_dispatch_names_the_order_and_its_planned_shipment() -> None:
    args = build_parser().parse_args(["fulfillment", "dispatch", "web-000123", "web-000123-1"])
    assert (args.order_id, args.shipment_id) == ("web-000123", "web-000123-1")


def test_a_dispatch_needs_an_order_id_and_a_shipment_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert refusal(["fulfillment", "dispatch", "web-000123"], capsys) == (
        "tradelane fulfillment dispatch: error: the following arguments are required: SHIPMENT_ID"
    )
    error = refusal(["fulfillment", "dispatch", "web 123", "web-123-1"], capsys)
    assert error.startswith("tradelane fulfillment dispatch: error: argument ORDER_ID: expected")
    for wrong, shown in (("", "''"), (" web-1", "' web-1'"), ("s" * 81, "81 characters")):
        assert refusal(["fulfillment", "dispatch", "web-1", wrong], capsys) == (
            "tradelane fulfillment dispatch: error: argument SHIPMENT_ID: expected a shipment id "
            "of 1-80 characters without surrounding spaces, as planned on orders.status, "
            f"e.g. web-000123-1; got {shown}"
        )


def test_the_dispatch_command_publishes_one_dispatch_and_prints_its_event_id(
    sent: list[tuple[TopicSpec, Event]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fulfillment", "dispatch", "web-000123", "web-000123-2"]) == 0
    [(spec, event)] = sent
    assert spec is DISPATCHES and isinstance(event, ShipmentDispatched)
    assert (event.order_id, event.shipment_id) == ("web-000123", "web-000123-2")
    assert capsys.readouterr().out == (
        "shipment web-000123-2 of order web-000123 left the warehouse "
        f"(sent to fulfillment.dispatches, event {event.event_id})\n"
    )


def test_an_unreachable_broker_is_named_and_fails_with_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(spec: TopicSpec, event: Event) -> str:
        raise NothingSent("nothing sent: Kafka at 127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS) is down")

    monkeypatch.setattr(publish, "publish_one", unreachable)
    assert main(["fulfillment", "dispatch", "web-1", "web-1-1"]) == 1
    assert main(adjust("+5", "--reason", "return")) == 1
    assert capsys.readouterr().err.splitlines() == [
        "tradelane fulfillment dispatch: nothing sent: Kafka at 127.0.0.1:1 "
        "(KAFKA_BOOTSTRAP_SERVERS) is down",
        "tradelane catalog adjust: nothing sent: Kafka at 127.0.0.1:1 "
        "(KAFKA_BOOTSTRAP_SERVERS) is down",
    ]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[TopicSpec, Event]]:
    """What the one-event commands publish, recorded instead of sent (no broker here)."""
    published: list[tuple[TopicSpec, Event]] = []

    def record(spec: TopicSpec, event: Event) -> str:
        published.append((spec, event))
        return spec.name

    monkeypatch.setattr(publish, "publish_one", record)
    return published
