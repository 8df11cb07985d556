"""`tradelane catalog import|adjust`: product exports and stock changes from PIM and WMS."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from cli.arguments import argument_error, contract_id, shown
from cli.publish import send_one
from shared.settings import load_settings


def cmd_catalog_import(args: argparse.Namespace) -> int:
    """All rows valid, or nothing sent: a catalog is never left half-imported."""
    from cli.product_import import ImportFileError, read_products
    from cli.publisher import EventPublisher
    from shared.topics import PRODUCTS

    try:
        products, errors = read_products(Path(args.file))
    except (ImportFileError, OSError) as unreadable:
        print(unreadable, file=sys.stderr)
        return 1
    for row_error in errors:
        print(row_error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} invalid row(s): no product was sent", file=sys.stderr)
        return 1
    settings = load_settings()
    with EventPublisher.from_settings(settings) as out:
        for product in products:
            out.publish(PRODUCTS, product)
    print(f"imported {len(products)} product(s) to catalog.products")
    return 0


SIGNED_UNITS = re.compile(r"[+-][0-9]+")
REASON_MAX_CHARS = 200

ADJUSTMENT_ARGUMENTS = {
    "sku": "SKU",
    "warehouse_id": "WAREHOUSE",
    "delta": "DELTA",
    "reason": "--reason",
}
"""Stock adjustment fields and the `catalog adjust` arguments that fill them, for errors."""


def stock_delta(text: str) -> int:
    """argparse type: a change in units with its sign, `+5` or `-3`.

    The sign is required so that a change is never mistaken for the new on-hand
    level (a level is what `catalog.stock` carries, and it replaces on hand).
    """
    if not SIGNED_UNITS.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "expected a change in units with its sign, e.g. +5 or -3 (the change, not the new "
            f"on-hand level); got {text!r}"
        )
    delta = int(text)
    if delta == 0:
        raise argparse.ArgumentTypeError(
            f"expected a change other than 0, e.g. +5 or -3: an adjustment of 0 units changes "
            f"nothing; got {text!r}"
        )
    return delta


def adjustment_reason(text: str) -> str:
    """argparse type: why on-hand changed, for whoever reads the stock's history later."""
    reason = text.strip()
    if not 1 <= len(reason) <= REASON_MAX_CHARS:
        raise argparse.ArgumentTypeError(
            f"expected why the stock changed in 1-{REASON_MAX_CHARS} characters, e.g. "
            f"'breakage' or 'count correction'; got {shown(text)}"
        )
    return reason


def cmd_catalog_adjust(args: argparse.Namespace) -> int:
    """One relative change to on-hand stock, as a WMS reports breakage or a recount."""
    from shared.contract import StockAdjustment
    from shared.topics import STOCK_ADJUSTMENTS

    return send_one(
        "catalog adjust",
        STOCK_ADJUSTMENTS,
        lambda: StockAdjustment.new(
            sku=args.sku, warehouse_id=args.warehouse, delta=args.delta, reason=args.reason
        ),
        lambda error: argument_error(error, ADJUSTMENT_ARGUMENTS),
        lambda a: f"{a.sku} in {a.warehouse_id}: {a.delta:+d} on hand ({a.reason})",
    )


def add_catalog_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = commands.add_parser("catalog", help="product master data and stock")
    actions = catalog.add_subparsers(dest="action", required=True)
    importer = actions.add_parser(
        "import", help="validate a product export (.csv or .jsonl) and publish every row"
    )
    importer.add_argument("file")
    importer.set_defaults(run=cmd_catalog_import)
    adjust = actions.add_parser(
        "adjust",
        help="change a SKU's on-hand stock in one warehouse by DELTA units",
        description="Publish a stock adjustment on catalog.stock_adjustments, as a WMS reports "
        "a count correction, breakage or a return: catalog adds DELTA to on hand once. An "
        "adjustment that would take on hand below 0 is dead-lettered with the reason. To set "
        "on hand to a level instead, the WMS publishes catalog.stock.",
    )
    adjust.add_argument("sku", type=contract_id("BOLT-M8-100"), metavar="SKU")
    adjust.add_argument("warehouse", type=contract_id("dc-kassel"), metavar="WAREHOUSE")
    adjust.add_argument(
        "delta", type=stock_delta, metavar="DELTA", help="units with their sign, e.g. +5 or -3"
    )
    adjust.add_argument(
        "--reason",
        required=True,
        type=adjustment_reason,
        metavar="TEXT",
        help=f"why, e.g. 'breakage' or 'count correction' (at most {REASON_MAX_CHARS} characters)",
    )
    adjust.set_defaults(run=cmd_catalog_adjust)
