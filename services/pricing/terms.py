"""When a priced order is paid: the due amounts and dates of its terms or its instalments.

Pure rules over the parsed terms (`shared.contract.payment`) and the order's
total; docs/pricing.md states them for shops and auditors:

- Dates count from `priced_on`, the day pricing priced the order (UTC), the
  invoice date as far as pricing can know it. `NET<n>`: n days later.
  `DOM<d>`: day d of the *following* month, or that month's last day if it is
  shorter (DOM31 → 28 or 29 February). `PREPAY`: on `priced_on`.
  `ON_FULFILLMENT`: when the order ships, a date not known yet.
- A deposit (`DEPOSIT<p>_…`) is p % of the total rounded by the money rule
  (to the minor unit, half to even) and due on `priced_on`; the remainder is the
  total minus the deposit, so the two sum exactly to the total.
- Instalments (3, 6 or 12, monthly): each is the total divided by their number,
  rounded *down* to the minor unit; what that leaves over (less than one minor
  unit per instalment) is added to the *first*, so the plan sums exactly to the
  total and the customer never pays more later than at the start. The first is
  due on `priced_on`, the next ones on the same day of each following month (or
  that month's last day).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

from shared.contract import Order, PaymentMethod, ReasonCode
from shared.contract.money import round_down_money, round_money
from shared.contract.payment import DueAmount, DueKind, DueRule, PaymentPlan, PaymentTerms
from shared.rejection import Rejected


def payment_plan(order: Order, total: Decimal, priced_on: date) -> PaymentPlan:
    """How this order's total is paid, once pricing has checked the customer may pay so.

    Card and prepaid: all at once. Installments: the schedule of the months the
    consumer chose (an order that does not say how many is rejected: guessing
    would charge the wrong amounts). Invoice: the agreed terms' due amounts.
    """
    payment, currency = order.payment, order.currency
    if payment.method is PaymentMethod.INSTALLMENTS:
        if payment.installments is None:
            raise Rejected(
                ReasonCode.PAYMENT_TERMS_NOT_ALLOWED,
                "installments need a number of monthly instalments: 3, 6 or 12 "
                "(payment.installments)",
            )
        schedule = installment_schedule(total, currency, payment.installments, priced_on)
    elif payment.method is PaymentMethod.INVOICE and payment.terms is not None:
        schedule = due_schedule(PaymentTerms.parse(payment.terms), total, currency, priced_on)
    else:
        schedule = single_payment(total, currency, priced_on)
    return PaymentPlan(
        method=payment.method.value,
        terms=payment.terms if payment.method is PaymentMethod.INVOICE else None,
        installments=payment.installments,
        priced_on=priced_on,
        schedule=schedule,
    )


def add_months(day: date, months: int, on_day: int | None = None) -> date:
    """The same day `months` later, or that month's last day when it is shorter."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(on_day or day.day, last))


def due_schedule(
    terms: PaymentTerms, total: Decimal, currency: str, priced_on: date
) -> list[DueAmount]:
    """The amounts due under invoice terms: the whole total, or a deposit and the remainder."""
    if terms.deposit_percent is None:
        return [due_by(terms, DueKind.FULL, total, currency, priced_on)]
    deposit = round_money(total * terms.deposit_percent / 100, currency)
    return [
        DueAmount(
            kind=DueKind.DEPOSIT, amount=deposit, currency=currency, due="on_date", due_on=priced_on
        ),
        due_by(terms, DueKind.REMAINDER, total - deposit, currency, priced_on),
    ]


def due_by(
    terms: PaymentTerms, kind: DueKind, amount: Decimal, currency: str, priced_on: date
) -> DueAmount:
    """One amount, due when the terms' rule says."""
    if terms.due is DueRule.ON_FULFILLMENT:
        return DueAmount(kind=kind, amount=amount, currency=currency, due="on_fulfillment")
    return DueAmount(
        kind=kind,
        amount=amount,
        currency=currency,
        due="on_date",
        due_on=due_date(terms, priced_on),
    )


def due_date(terms: PaymentTerms, priced_on: date) -> date:
    """The date the terms fix, counted from the day the order was priced."""
    if terms.due is DueRule.NET:
        return priced_on + timedelta(days=terms.days)
    if terms.due is DueRule.DOM:
        return add_months(priced_on, 1, on_day=terms.days)
    return priced_on


def installment_schedule(
    total: Decimal, currency: str, months: int, first_due: date
) -> list[DueAmount]:
    """`months` monthly instalments that sum exactly to `total`; the first takes the rest."""
    each = round_down_money(total / months, currency)
    first = total - each * (months - 1)
    return [
        DueAmount(
            kind=DueKind.INSTALMENT,
            amount=first if number == 0 else each,
            currency=currency,
            due="on_date",
            due_on=add_months(first_due, number),
        )
        for number in range(months)
    ]


def single_payment(total: Decimal, currency: str, priced_on: date) -> list[DueAmount]:
    """Card or prepaid: the whole total, paid when the order is placed."""
    return [
        DueAmount(
            kind=DueKind.FULL, amount=total, currency=currency, due="on_date", due_on=priced_on
        )
    ]
