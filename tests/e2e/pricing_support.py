"""What the pricing end-to-end modules share: a business customer as CRM, shop, ERP and finance
see it — its account (members, an optional credit line), its approval policy, its quotes, its
orders, its payments and pricing's view of its credit.

Orders are drills at the list price (129.00 EUR, in stock at dc-kassel) unless a quote prices
them; waits are conditions on what the system publishes or answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.contract import (
    Account,
    ApprovalPolicy,
    Channel,
    CreditPolicy,
    CreditTerms,
    Member,
    OrderCancelled,
    OrderState,
    OrderStatusChanged,
    PaymentReceived,
    Promotion,
    PromotionKind,
    PromotionScope,
    Quote,
    QuoteEvent,
    Role,
)
from shared.topics import (
    ACCOUNTS,
    APPROVAL_POLICIES,
    ORDERS_CANCELLED,
    ORDERS_SUBMITTED,
    PAYMENTS_RECEIVED,
    PROMOTIONS,
    QUOTES,
)
from tests.e2e.conftest import Pipeline
from tools.seed import b2b_order

DRILL = "DRILL-18V"
"""129.00 EUR list price, in stock at dc-kassel: ten make a 1290.00 EUR order."""
TEN_DRILLS = Decimal("1290.00")


def manager_step() -> dict[str, Any]:
    """A rule that sends every order to the account's manager (so it stays cancellable)."""
    return {
        "rule_id": "all",
        "version": 1,
        "when": {},
        "steps": [{"step_id": "manager", "role": "manager", "quorum": 1}],
    }


def finance_step() -> dict[str, Any]:
    """A rule that sends an order pricing let over the credit limit to finance."""
    return {
        "rule_id": "credit",
        "version": 1,
        "when": {"credit_limit_override": True},
        "steps": [{"step_id": "finance", "role": "finance", "quorum": 1}],
    }


def publish_code(pipeline: Pipeline, label: str, **fields: Any) -> str:
    """Publish a promotion of the test's own behind a code (5.00 EUR off the order, valid from
    yesterday to tomorrow, unless `fields` say otherwise); returns the code."""
    now = datetime.now(UTC)
    code = f"{label}{pipeline.run_id}{uuid.uuid4().hex[:4]}".upper()
    pipeline.publish_reference(
        PROMOTIONS,
        Promotion.new(
            **{
                "promotion_id": code.lower(),
                "name": label,
                "kind": PromotionKind.FIXED,
                "amount": Decimal(5),
                "currency": "EUR",
                "scope": PromotionScope.ORDER,
                "code": code,
                "valid_from": now - timedelta(days=1),
                "valid_until": now + timedelta(days=1),
                **fields,
            }
        ),
    )
    return code


class BusinessCustomer:
    """One test's business account: a buyer, a manager and finance, paying NET30; with a credit
    line if `limit` is given (`policy` says what happens over it)."""

    def __init__(
        self,
        pipeline: Pipeline,
        label: str,
        limit: Decimal | None = None,
        policy: CreditPolicy = CreditPolicy.REJECT,
        *,
        rules: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.pipeline = pipeline
        self.account_id = f"{label}-{pipeline.run_id}-{uuid.uuid4().hex[:4]}"
        roles = {"buyer": [Role.BUYER], "boss": [Role.MANAGER], "cfo": [Role.FINANCE]}
        pipeline.publish_reference(
            ACCOUNTS,
            Account.new(
                account_id=self.account_id,
                name=f"{self.account_id} GmbH",
                channel=Channel.B2B,
                payment_terms=["NET30"],
                members=[
                    Member(member_id=self.id(name), name=name.title(), roles=r)
                    for name, r in roles.items()
                ],
                credit=None if limit is None else CreditTerms(limit=limit, policy=policy),
            ),
        )
        if rules:
            self.publish_policy(rules=list(rules))

    def id(self, name: str) -> str:
        return f"{self.account_id}-{name}"

    def publish_policy(self, **rules: Any) -> None:
        self.pipeline.publish_reference(
            APPROVAL_POLICIES, ApprovalPolicy.new(account_id=self.account_id, version=1, **rules)
        )

    def publish_quote(self, label: str = "Q", **fields: Any) -> str:
        """A single-use quote of this account, as the CRM publishes it (version 2: up to ten
        drills at 89.00 EUR, valid for 30 days, unless `fields` say otherwise); its id."""
        now = datetime.now(UTC).replace(microsecond=0)
        quote: dict[str, Any] = {
            "quote_id": f"{label}-{self.account_id}",
            "account_id": self.account_id,
            "version": 2,
            "currency": "EUR",
            "lines": [{"sku": DRILL, "quantity": 10, "unit_price": "89.00"}],
            "issued_at": now - timedelta(days=1),
            "valid_until": now + timedelta(days=30),
            "use": "single",
            **fields,
        }
        self.pipeline.publish_reference(QUOTES, Quote.new(**quote))
        return str(quote["quote_id"])

    def order(
        self,
        label: str,
        drills: int = 10,
        *,
        quote_id: str | None = None,
        promo_codes: Sequence[str] = (),
    ) -> str:
        """The buyer orders `drills` drills (from the quote, with the codes, if given)."""
        order = b2b_order(
            self.pipeline.order_id(label),
            [(DRILL, drills)],
            account_id=self.account_id,
            buyer_id=self.id("buyer"),
            quote_id=quote_id,
        ).model_copy(update={"promo_codes": list(promo_codes)})
        self.pipeline.publisher.publish(ORDERS_SUBMITTED, order)
        self.pipeline.publisher.flush()
        return order.order_id

    def cancel(self, order_id: str) -> None:
        self.pipeline.publisher.publish(
            ORDERS_CANCELLED, OrderCancelled.new(order_id=order_id, account_id=self.account_id)
        )
        self.pipeline.publisher.flush()

    def pay(self, order_id: str, amount: Decimal, account_id: str | None = None) -> None:
        """Finance's ERP reports a payment for the order (as if from `account_id`, if given)."""
        self.pipeline.publisher.publish(
            PAYMENTS_RECEIVED,
            PaymentReceived.new(
                payment_id=f"pay-{uuid.uuid4().hex[:10]}",
                account_id=account_id or self.account_id,
                order_id=order_id,
                amount=amount,
                currency="EUR",
                received_at=datetime.now(UTC),
            ),
        )
        self.pipeline.publisher.flush()

    def credit(self) -> dict[str, Any]:
        status, body = self.pipeline.http("pricing", "GET", f"/accounts/{self.account_id}/credit")
        assert status == 200, body
        return dict(body)

    def wait_for_exposure(self, amount: str) -> dict[str, Any]:
        """Pricing consumed the status or payment: the exposure it shows is `amount`."""
        return self.wait_for_credit(f"exposure {amount}", lambda c: c["exposure"] == amount)

    def wait_for_credit(
        self, what: str, condition: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Ask pricing (on every event the test sees, at least twice a second) until its
        answer satisfies `condition`."""
        return dict(
            self.pipeline.watch.wait_until(
                f"{self.account_id}'s credit: {what}",
                lambda: condition(c := self.credit()) and c,
            )
        )

    def wait_for_quote_events(self, quote_id: str, *kinds: str) -> list[QuoteEvent]:
        """The CRM's view: wait until the quote's lifecycle is `kinds`, in order."""
        events = self.pipeline.watch.quote_events[quote_id]
        self.pipeline.watch.wait_until(
            f"quote {quote_id} to be {' → '.join(kinds)}",
            lambda: [e.kind.value for e in events] == list(kinds),
        )
        return list(events)


def after_pricing(pipeline: Pipeline, order_id: str) -> OrderStatusChanged:
    """The order's first status after pricing: waiting for approval, approved, or rejected."""
    outcomes = (OrderState.AWAITING_APPROVAL, OrderState.APPROVED, OrderState.REJECTED)
    return pipeline.watch.wait_until(
        f"{order_id} priced or refused",
        lambda: next((s for s in pipeline.watch.statuses[order_id] if s.status in outcomes), None),
    )
