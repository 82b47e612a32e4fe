"""Customer outcomes (kpi-spec.md section 7): each partner's customer sums for a period.

Three grouped queries fill `Totals.customers` per partner (None: direct customers): the
customers themselves (who was active at the period's start and end, gained, lost, onboarded, and
their MRR), the support tickets opened in the period by the partner's customers, and the
customers gained in the period whose referrer is one of the partner's. Only sums and counts come
back; `kpi.formulas.customer_kpis` turns them into ratios and means. A customer is active at d
when `became_customer_on < d` and (`churned_on` null or `churned_on >= d`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from kpi import schema
from kpi.aggregates import (
    CustomerTotals,
    PartnerKey,
    Totals,
    Window,
    count_if,
    number,
    only,
    totals_of,
)
from kpi.sqlfuncs import days_between
from settings.periods import Period

c = schema.customers


def add_customers(
    connection: Connection,
    tz: ZoneInfo,
    totals: dict[PartnerKey, Totals],
    period: Period,
    partner_ids: Sequence[str] | None = None,
) -> None:
    """Adds the period's customer sums to `totals`, per partner (`partner_ids`: only those)."""
    window = Window.of(period, tz)
    for row in connection.execute(_customer_sums(window, partner_ids)):
        # the columns are CustomerTotals' fields up to `in_period`, in order
        totals_of(totals, row[0]).customers = CustomerTotals(*(number(v) for v in row[1:]))
    for partner_id, tickets in connection.execute(_tickets(window, partner_ids)):
        totals_of(totals, partner_id).customers.tickets = int(tickets)
    for partner_id, referrals in connection.execute(_referrals(window, partner_ids)):
        totals_of(totals, partner_id).customers.referrals = int(referrals)


def active_at(day: date) -> ColumnElement[bool]:
    return and_(c.c.became_customer_on < day, or_(c.c.churned_on.is_(None), c.c.churned_on >= day))


def _sum_if(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return func.sum(case((condition, value)))


def _customer_sums(window: Window, partner_ids: Sequence[str] | None) -> Select[Any]:
    at_start, at_end = active_at(window.start), active_at(window.end)
    retained = and_(at_start, at_end)
    onboarded = and_(c.c.onboarded_on >= window.start, c.c.onboarded_on < window.end)
    wait = days_between(c.c.became_customer_on, c.c.onboarded_on)
    return (
        select(
            c.c.partner_id,
            count_if(at_start).label("active_at_start"),
            count_if(at_end).label("active_at_end"),
            count_if(retained).label("retained"),
            count_if(
                and_(c.c.became_customer_on >= window.start, c.c.became_customer_on < window.end)
            ).label("gained"),
            count_if(and_(c.c.churned_on >= window.start, c.c.churned_on < window.end)).label(
                "lost"
            ),
            _sum_if(at_start, c.c.mrr).label("mrr_at_start"),
            _sum_if(retained, c.c.mrr).label("mrr_retained"),
            _sum_if(at_end, c.c.mrr).label("mrr_at_end"),
            count_if(onboarded).label("onboarded"),
            _sum_if(onboarded, case((wait < 0, 0), else_=wait)).label("onboarding_days"),
            count_if(
                and_(
                    c.c.became_customer_on < window.end,
                    or_(c.c.churned_on.is_(None), c.c.churned_on >= window.start),
                )
            ).label("in_period"),
        )
        .where(*only(c.c.partner_id, partner_ids))
        .group_by(c.c.partner_id)
    )


def _tickets(window: Window, partner_ids: Sequence[str] | None) -> Select[Any]:
    """Tickets opened in the period per partner of their customer (unknown customers: none)."""
    t = schema.support_tickets
    return (
        select(c.c.partner_id, func.count())
        .select_from(t.join(c, c.c.id == t.c.customer_id))
        .where(
            t.c.opened_at >= window.start_at,
            t.c.opened_at < window.end_at,
            *only(c.c.partner_id, partner_ids),
        )
        .group_by(c.c.partner_id)
    )


def _referrals(window: Window, partner_ids: Sequence[str] | None) -> Select[Any]:
    """Customers (of anyone) gained in the period, per partner of the customer who referred them."""
    gained = c.alias("gained")
    return (
        select(c.c.partner_id, func.count())
        .select_from(gained.join(c, c.c.id == gained.c.referred_by))
        .where(
            gained.c.became_customer_on >= window.start,
            gained.c.became_customer_on < window.end,
            *only(c.c.partner_id, partner_ids),
        )
        .group_by(c.c.partner_id)
    )
