"""Reading a PIM/ERP product export (CSV or JSONL) into `catalog.products` events.

All or nothing: every row is validated first and each bad row is reported with
its row number and field; only a file without errors is published, so a
catalog is never left half-imported.

CSV columns (header row, UTF-8):

    sku, name, category, unit_weight_kg              required
    short_description, description, unit_of_measure, pack_size, unit_volume_m3,
    active (true/false), channels (b2b;b2c)           optional
    spec:<name>:number[:<unit>], spec:<name>:text, spec:<name>:flag
                                                      one typed specification each;
                                                      an empty cell leaves it out

JSONL: one product per line, the `catalog.products/v1` fields; `schema`,
`event_id` and `occurred_at` may be left out and are filled in.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.contract import Product

TRUE, FALSE = {"true", "yes", "1"}, {"false", "no", "0"}
LIST_COLUMNS = {"channels"}
REQUIRED_COLUMNS = ("sku", "name", "category", "unit_weight_kg")


@dataclass(frozen=True)
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


class ImportFileError(ValueError):
    """The file as a whole cannot be read (type, header): nothing row by row to report."""


def read_products(path: Path) -> tuple[list[Product], list[RowError]]:
    """Every product in the file and every row's problems; rows count from 1 (CSV: data rows)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(_csv_rows(path))
    elif suffix == ".jsonl":
        rows = list(_jsonl_rows(path))
    else:
        raise ImportFileError(f"{path.name}: expected a .csv or .jsonl file")
    products: list[Product] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for row_no, body in rows:
        try:
            product = _product(body)
        except ValueError as problem:
            errors.append(RowError(row_no, str(problem)))
            continue
        if product.sku in first_row_of:
            errors.append(
                RowError(
                    row_no,
                    f"sku: {product.sku} appears again (first in row {first_row_of[product.sku]})",
                )
            )
            continue
        first_row_of[product.sku] = row_no
        products.append(product)
    return products, errors


def _product(body: dict[str, Any] | str) -> Product:
    if isinstance(body, str):
        raise ValueError(body)
    body.setdefault("schema", "catalog.products/v1")
    try:
        return Product.new(**body)
    except ValidationError as invalid:
        from shared.consume import describe_validation_error

        raise ValueError(describe_validation_error(invalid)) from None


def _jsonl_rows(path: Path) -> Any:
    with path.open(encoding="utf-8") as lines:
        for row_no, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                body = json.loads(text)
            except json.JSONDecodeError as error:
                yield row_no, f"not JSON ({error.msg} at column {error.colno})"
                continue
            yield row_no, body if isinstance(body, dict) else "expected a JSON object"


def _csv_rows(path: Path) -> Any:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise ImportFileError(f"{path.name}: header lacks {', '.join(missing)}")
        for row_no, row in enumerate(reader, start=1):
            try:
                yield row_no, _csv_product(row)
            except ValueError as problem:
                yield row_no, str(problem)


def _csv_product(row: dict[str, str | None]) -> dict[str, Any]:
    if None in row:
        raise ValueError("more cells than the header has columns")
    body: dict[str, Any] = {}
    specifications = []
    for column, raw in row.items():
        value = (raw or "").strip()
        if column is None or value == "":
            continue
        if column.startswith("spec:"):
            specifications.append(_specification(column, value))
        elif column in LIST_COLUMNS:
            body[column] = [part.strip() for part in value.split(";") if part.strip()]
        elif column == "active":
            body[column] = _flag(column, value)
        else:
            body[column] = value
    if specifications:
        body["specifications"] = specifications
    return body


def _specification(column: str, value: str) -> dict[str, Any]:
    """`spec:length:number:mm` → {"name": "length", "number": value, "unit": "mm"}."""
    parts = column.split(":")
    if len(parts) < 3 or parts[2] not in {"number", "text", "flag"} or not parts[1]:
        raise ValueError(
            f"{column}: expected a column named spec:<name>:number[:<unit>], "
            "spec:<name>:text or spec:<name>:flag"
        )
    name, kind = parts[1], parts[2]
    if kind == "flag":
        return {"name": name, "flag": _flag(column, value)}
    if kind == "text":
        return {"name": name, "text": value}
    return {"name": name, "number": value, **({"unit": parts[3]} if len(parts) > 3 else {})}


def _flag(column: str, value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ValueError(f"{column}: expected true or false, got {value!r}")
