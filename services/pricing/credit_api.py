"""Pricing's credit view: `GET /accounts/{account_id}/credit` for finance and ops.

Like catalog's and fulfillment's read APIs it carries no token: it is served
on pricing's internal web port (the one Prometheus scrapes), which is not
exposed outside the cluster. It shows one account's money owed to the seller,
so an ingress must not route it; approvers' tokens (approvals) name a person,
not a finance role, and are not accepted here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from faust.web import Request, Response, View

from services.pricing import credit_ledger
from services.pricing.credit import shown
from services.pricing.credit_ledger import CreditPosition
from shared.service import Service


def money(amount: Decimal | None, currency: str) -> str | None:
    """Decimal as the contract sends it: a string (at least the currency's minor unit), never
    a float."""
    return None if amount is None else shown(amount, currency)


def credit_view(account_id: str, position: CreditPosition) -> dict[str, Any]:
    line = position.line
    return {
        "account_id": account_id,
        "currency": line.currency,
        "limit": money(line.limit, line.currency),
        "policy": line.policy.value,
        "warning_percent": line.warning_percent,
        "exposure": money(position.exposure, line.currency),
        "available": money(position.available, line.currency),
        "credit_on_account": money(position.credit_on_account, line.currency),
        "open_items": [
            {
                "order_id": row.order_id,
                "amount": money(row.amount, line.currency),
                "paid": money(row.settled, line.currency),
                "open": money(row.open, line.currency),
                "state": row.state,
            }
            for row in position.open_items
        ],
    }


def register(service: Service) -> None:
    @service.app.page("/accounts/{account_id}/credit")
    class AccountCredit(View):
        """404 for an account pricing has no credit record of (no B2B account by that id)."""

        async def get(self, request: Request, account_id: str) -> Response:
            async with service.db.sessions() as session:
                found = await credit_ledger.position_of(session, account_id)
            if found is None:
                return self.json(
                    {"account_id": account_id, "error": "no business account with that id"},
                    status=404,
                )
            return self.json(credit_view(account_id, found))
