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
from contextlib import nullcontext
from functools import cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, DateTime, Select, and_, bindparam, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from kpi import schema
from kpi.aggregates import (
    CustomerTotals,
    PartnerKey,
    Totals,
    Window,
    count_if,
    number,
    totals_of,
)
from kpi.customer_image import CustomerImage
from kpi.page_cache import larger_page_cache
from kpi.sqlfuncs import days_between
from settings.periods import Period

c = schema.customers


def add_customers(
    connection: Connection,
    tz: ZoneInfo,
    totals: dict[PartnerKey, Totals],
    period: Period,
    partner_ids: Sequence[str] | None = None,
    image: CustomerImage | None = None,
) -> None:
    """Adds the period's customer sums to `totals`, per partner (`partner_ids`: only those),
    from `image` when given (the store's copy: `kpi.customer_image`)."""
    add_customers_of(connection, tz, [(totals, period)], partner_ids, image)


def add_customers_of(
    connection: Connection,
    tz: ZoneInfo,
    periods: Sequence[tuple[dict[PartnerKey, Totals], Period]],
    partner_ids: Sequence[str] | None = None,
    image: CustomerImage | None = None,
) -> None:
    """`add_customers` for several periods (a card's and its previous one) in one pass over the
    customers, one seek per customer into its tickets and one join of the referrals: each
    statement computes every period's sums side by side (or cuts of `image`)."""
    windows = [Window.of(period, tz) for _totals, period in periods]
    if image is not None:
        pairs = [(totals, w) for (totals, _period), w in zip(periods, windows, strict=True)]
        image.add(pairs, partner_ids)
        return
    sums, tickets, referrals = _statements(len(windows), partner_ids is not None)
    parameters: dict[str, Any] = {
        "low_day": min(w.start for w in windows),
        "high_day": max(w.end for w in windows),
        "low_at": min(w.start_at for w in windows),
        "high_at": max(w.end_at for w in windows),
    }
    for index, window in enumerate(windows):
        parameters |= {
            f"start{index}": window.start,
            f"end{index}": window.end,
            f"start_at{index}": window.start_at,
            f"end_at{index}": window.end_at,
        }
    if partner_ids is not None:
        parameters["partner_ids"] = list(partner_ids)
    # every partner's tickets: a seek per customer all over the tickets' index, which outgrows
    # SQLite's default page cache (one partner's: a few seeks, the default is plenty)
    with larger_page_cache(connection) if partner_ids is None else nullcontext():
        _add_rows(connection, periods, (sums, tickets, referrals), parameters)


def _add_rows(
    connection: Connection,
    periods: Sequence[tuple[dict[PartnerKey, Totals], Period]],
    statements: tuple[Select[Any], Select[Any], Select[Any]],
    parameters: dict[str, Any],
) -> None:
    sums, tickets, referrals = statements
    width = len(_CUSTOMER_COLUMNS)
    for row in connection.execute(sums, parameters):
        for index, (totals, _period) in enumerate(periods):
            values = row[1 + index * width : 1 + (index + 1) * width]
            # the columns are CustomerTotals' fields up to `in_period`, in order
            totals_of(totals, row[0]).customers = CustomerTotals(*(number(v) for v in values))
    for query, name in ((tickets, "tickets"), (referrals, "referrals")):
        for row in connection.execute(query, parameters):
            for index, (totals, _period) in enumerate(periods):
                if row[1 + index]:
                    setattr(totals_of(totals, row[0]).customers, name, int(row[1 + index]))


class _Bound(NamedTuple):
    """A Window whose dates and instants are bind parameters (statements built once)."""

    start: Any
    end: Any
    start_at: Any
    end_at: Any


@cache
def _statements(count: int, some_partners: bool) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """The customer sums, tickets and referrals of `count` periods side by side, with the
    parameters start<i>, end<i>, start_at<i>, end_at<i>, low_day, high_day, low_at, high_at
    (and partner_ids): built once, as building them cost more than running them for one
    partner."""
    windows = [
        _Bound(
            bindparam(f"start{i}", type_=Date),
            bindparam(f"end{i}", type_=Date),
            bindparam(f"start_at{i}", type_=DateTime),
            bindparam(f"end_at{i}", type_=DateTime),
        )
        for i in range(count)
    ]
    chosen: Any = bindparam("partner_ids", expanding=True) if some_partners else None
    return (
        _customer_sums(windows, chosen),
        _tickets(windows, chosen),
        _referrals(windows, chosen),
    )


def _of_partners(partner_ids: Any) -> list[ColumnElement[bool]]:
    return [] if partner_ids is None else [c.c.partner_id.in_(partner_ids)]


def active_at(day: Any) -> ColumnElement[bool]:
    return and_(c.c.became_customer_on < day, or_(c.c.churned_on.is_(None), c.c.churned_on >= day))


def _sum_if(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return func.sum(case((condition, value)))


#: The columns of `_customer_sums` per window: CustomerTotals' fields up to `in_period`.
_CUSTOMER_COLUMNS = (
    "active_at_start",
    "active_at_end",
    "retained",
    "gained",
    "lost",
    "mrr_at_start",
    "mrr_retained",
    "mrr_at_end",
    "onboarded",
    "onboarding_days",
    "in_period",
)


def _customer_columns(window: Any) -> list[ColumnElement[Any]]:
    at_start, at_end = active_at(window.start), active_at(window.end)
    retained = and_(at_start, at_end)
    onboarded = and_(c.c.onboarded_on >= window.start, c.c.onboarded_on < window.end)
    wait = days_between(c.c.became_customer_on, c.c.onboarded_on)
    return [
        count_if(at_start),
        count_if(at_end),
        count_if(retained),
        count_if(and_(c.c.became_customer_on >= window.start, c.c.became_customer_on < window.end)),
        count_if(and_(c.c.churned_on >= window.start, c.c.churned_on < window.end)),
        _sum_if(at_start, c.c.mrr),
        _sum_if(retained, c.c.mrr),
        _sum_if(at_end, c.c.mrr),
        count_if(onboarded),
        _sum_if(onboarded, case((wait < 0, 0), else_=wait)),
        count_if(
            and_(
                c.c.became_customer_on < window.end,
                or_(c.c.churned_on.is_(None), c.c.churned_on >= window.start),
            )
        ),
    ]


def _customer_sums(windows: Sequence[_Bound], partner_ids: Any) -> Select[Any]:
    return (
        select(c.c.partner_id, *(column for w in windows for column in _customer_columns(w)))
        .where(*_of_partners(partner_ids))
        .group_by(c.c.partner_id)
    )


def _tickets(windows: Sequence[_Bound], partner_ids: Any) -> Select[Any]:
    """Tickets opened in each period per partner of their customer (unknown customers: none),
    from one range of each customer's tickets that spans every period."""
    t = schema.support_tickets
    return (
        select(
            c.c.partner_id,
            *(
                count_if(and_(t.c.opened_at >= w.start_at, t.c.opened_at < w.end_at))
                for w in windows
            ),
        )
        .select_from(t.join(c, c.c.id == t.c.customer_id))
        .where(
            t.c.opened_at >= bindparam("low_at", type_=DateTime),
            t.c.opened_at < bindparam("high_at", type_=DateTime),
            *_of_partners(partner_ids),
        )
        .group_by(c.c.partner_id)
    )


def _referrals(windows: Sequence[_Bound], partner_ids: Any) -> Select[Any]:
    """Customers (of anyone) gained in each period, per partner of the customer who referred
    them."""
    gained = c.alias("gained")
    day = gained.c.became_customer_on
    return (
        select(
            c.c.partner_id,
            *(count_if(and_(day >= w.start, day < w.end)) for w in windows),
        )
        .select_from(gained.join(c, c.c.id == gained.c.referred_by))
        .where(
            day >= bindparam("low_day", type_=Date),
            day < bindparam("high_day", type_=Date),
            *_of_partners(partner_ids),
        )
        .group_by(c.c.partner_id)
    )
