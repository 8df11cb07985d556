"""Reading PIM/ERP product exports: typed specifications, per-row errors, all or nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from cli.main import main
from cli.product_import import ImportFileError, read_products
from shared.contract import Channel, Product, Specification

HEADER = (
    "sku,name,category,unit_weight_kg,unit_volume_m3,pack_size,unit_of_measure,channels,"
    "active,short_description,spec:length:number:mm,spec:material:text,spec:rohs:flag\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_row_becomes_a_product_with_typed_specifications(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pim.csv",
        HEADER + "BOLT-M8-100,Hex bolt M8x100,fasteners/bolts,1.200,0.0012,100,box,b2b;b2c,"
        "true,Zinc plated bolts,100,steel,yes\n",
    )
    [product], errors = read_products(path)
    assert errors == []
    assert product.sku == "BOLT-M8-100" and product.pack_size == 100
    assert product.unit_weight_kg == Decimal("1.200")
    assert product.unit_volume_m3 == Decimal("0.0012")
    assert product.channels == [Channel.B2B, Channel.B2C]
    assert product.specifications == [
        Specification(name="length", number=Decimal("100"), unit="mm"),
        Specification(name="material", text="steel"),
        Specification(name="rohs", flag=True),
    ]


def test_empty_optional_cells_take_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "pim.csv", HEADER + "GLOVE-L,Gloves,safety/gloves,0.100,,,,,,,,,\n")
    [product], errors = read_products(path)
    assert errors == []
    assert (product.pack_size, product.unit_of_measure, product.active) == (1, "piece", True)
    assert product.specifications == [] and product.unit_volume_m3 is None


def test_every_bad_row_is_reported_with_its_number_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pim.csv",
        HEADER
        + "OK-1,Fine,tools,1.0,,,,,,,,,\n"
        + "BAD-1,Heavy,tools,1.5.0,,,,,,,,,\n"
        + "BAD-2,Pack,tools,1.0,,0,,,,,,,\n"
        + "BAD-3,Flag,tools,1.0,,,,,maybe,,,,\n"
        + "OK-1,Twice,tools,1.0,,,,,,,,,\n"
        + "BAD-4,Chan,tools,1.0,,,,b2x,,,,,\n",
    )
    products, errors = read_products(path)
    assert [p.sku for p in products] == ["OK-1"]
    assert [str(e) for e in errors] == [
        'row 2: unit_weight_kg: Value error, expected a decimal string such as "12.50" '
        "(digits 0-9, at most 12 before and 6 after the point), got '1.5.0'",
        "row 3: pack_size: Input should be greater than or equal to 1",
        "row 4: active: expected true or false, got 'maybe'",
        "row 5: sku: OK-1 appears again (first in row 1)",
        "row 6: channels.0: Input should be 'b2b' or 'b2c'",
    ]


def test_a_header_without_required_columns_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "pim.csv", "sku,name\nA,B\n")
    with pytest.raises(ImportFileError, match="header lacks category, unit_weight_kg"):
        read_products(path)


def test_a_badly_named_specification_column_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "pim.csv", "sku,name,category,unit_weight_kg,spec:length\nA,B,c,1,100\n")
    _, [error] = read_products(path)
    assert "spec:length: expected a column named spec:<name>:number[:<unit>]" in str(error)


def test_jsonl_lines_may_leave_the_envelope_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pim.jsonl",
        '{"sku": "A-1", "name": "A", "category": "x", "unit_weight_kg": "2.5",'
        ' "specifications": [{"name": "voltage", "number": "18", "unit": "V"}]}\n'
        "\n"
        "{broken\n"
        '{"sku": "A-2", "name": "B", "category": "x", "unit_weight_kg": 2.5}\n',
    )
    products, errors = read_products(path)
    assert [p.sku for p in products] == ["A-1"]
    assert products[0].specifications[0].unit == "V"
    assert [e.row for e in errors] == [3, 4]
    assert "money must be a decimal string" in errors[1].message


def test_a_specification_takes_exactly_one_value() -> None:
    with pytest.raises(ValidationError, match="give exactly one of number, text or flag"):
        Specification(name="x", number=Decimal("1"), text="one")
    with pytest.raises(ValidationError, match="a unit goes with a number"):
        Specification(name="x", text="one", unit="mm")
    with pytest.raises(ValidationError, match="each name may appear once"):
        Product.new(
            sku="A",
            name="A",
            category="x",
            unit_weight_kg="1",
            specifications=[{"name": "x", "flag": True}, {"name": "x", "flag": False}],
        )


def test_the_import_command_sends_nothing_when_a_row_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # would fail if contacted
    path = write(tmp_path, "pim.csv", HEADER + "A,B,c,heavy,,,,,,,,,\n")
    assert main(["catalog", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "row 1: unit_weight_kg:" in err and "no product was sent" in err


def test_the_import_command_refuses_other_file_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "pim.xlsx", "")
    assert main(["catalog", "import", str(path)]) == 1
    assert "expected a .csv or .jsonl file" in capsys.readouterr().err
