"""Training impact (kpi-spec.md section 8): did deals close better after a partner's training?

A partner's `training` compares the closed-deal figures of its deals closed in the 90 days
before its latest completion (before the period's end) with those closed in the 90 days from it;
`after_days` says how much of the after window has happened by the as-of date, so a reader sees
when "after" is still filling. The program's compares partners trained in the year before the
period's end with the others, over the period's closed deals. All sums come from SQL: the
windows are differences of the KPI rollups' running totals, read for every partner at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from sqlalchemy import CTE, Connection, Date, Select, bindparam, func, select

from kpi import rollups, schema
from kpi.aggregates import ClosedTotals, PartnerKey, Totals, TotalsImage, closed_totals
from kpi.formulas import closed_kpis, ratio

WINDOW_DAYS = 90  # the before and after windows
TRAINED_WITHIN_DAYS = 365  # a partner is trained when it completed a course this recently

t = schema.trainings


@dataclass
class Latest:
    """A partner's latest completion before the period's end, and the deals around it."""

    day: date
    course: str
    before: ClosedTotals
    after: ClosedTotals


def latest_trainings(
    connection: Connection,
    end: date,
    partner_ids: Sequence[str] | None = None,
    image: TotalsImage | None = None,
) -> dict[str, Latest]:
    """Every partner's (or only `partner_ids`') latest completion with `completed_on < end`,
    with the closed-deal sums of the 90 days before and from it (from `image`, the running
    totals' in-memory copy at the current rollups version, when given)."""
    latest, courses = _latest_queries(partner_ids is not None)
    parameters: dict[str, Any] = {"end": end}
    if partner_ids is not None:
        parameters["partner_ids"] = list(partner_ids)
    found: dict[str, Latest] = {}
    for partner_id, day, course in connection.execute(courses, parameters):
        mine = found.get(partner_id)
        # the first course by name (code point order, the same on every database)
        if mine is None or course < mine.course:
            found[partner_id] = Latest(day, course, ClosedTotals(), ClosedTotals())
    # The windows' sums are differences of the KPI rollups' running totals (kpi.rollups),
    # which the engine refreshed before asking: no deal is read.
    if image is not None:  # no null among the copy's sums
        anchors = {pid: mine.day for pid, mine in found.items()}
        for partner_id, (before, after) in image.windows_around(anchors, WINDOW_DAYS).items():
            found[partner_id].before = ClosedTotals(*before)
            found[partner_id].after = ClosedTotals(*after)
        return found
    for partner_id, (before, after) in rollups.windows_around(
        connection, latest, WINDOW_DAYS, parameters
    ).items():
        found[partner_id].before = closed_totals(before)
        found[partner_id].after = closed_totals(after)
    return found


@cache
def _latest_queries(some_partners: bool) -> tuple[CTE, Select[Any]]:
    """The latest completions (a CTE of partner and day) and their courses, with the
    parameters `end` and `partner_ids` (when `some_partners`): built once, as building them
    costs more than running them for one partner."""
    chosen = [t.c.partner_id.in_(bindparam("partner_ids", expanding=True))] if some_partners else []
    latest = (
        select(t.c.partner_id.label("partner_key"), func.max(t.c.completed_on).label("day"))
        .where(t.c.completed_on < bindparam("end", type_=Date), *chosen)
        .group_by(t.c.partner_id)
        .cte("latest")
    )
    courses = select(t.c.partner_id, t.c.completed_on, t.c.course).join(
        latest, (t.c.partner_id == latest.c.partner_key) & (t.c.completed_on == latest.c.day)
    )
    return latest, courses


def training_object(latest: Latest | None, as_of: date) -> dict[str, Any] | None:
    """A partner's `training` (null without a completion before the period's end)."""
    if latest is None:
        return None
    observed = (as_of - latest.day).days + 1  # days of [t, t + 90) on or before the as-of date
    return {
        "course": latest.course,
        "completed_on": latest.day.isoformat(),
        "before": closed_kpis(latest.before),
        "after": closed_kpis(latest.after),
        "after_days": max(0, min(WINDOW_DAYS, observed)),
    }


def trained_partners(connection: Connection, end: date) -> set[str]:
    """Partners with a completion in the 365 days before `end`."""
    since = end - timedelta(days=TRAINED_WITHIN_DAYS)
    query = (
        select(t.c.partner_id)
        .where(t.c.completed_on >= since, t.c.completed_on < end)
        .group_by(t.c.partner_id)
    )
    return set(connection.execute(query).scalars())


def program_training(
    active: Iterable[str], trained: set[str], totals: Mapping[PartnerKey, Totals]
) -> dict[str, dict[str, Any]]:
    """The program's `training`: partners active at the period's end, trained or not, with
    the closed-deal figures of their deals closed in the period."""
    groups = {"trained": (0, ClosedTotals()), "untrained": (0, ClosedTotals())}
    for partner_id in active:
        name = "trained" if partner_id in trained else "untrained"
        count, closed = groups[name]
        mine = totals.get(partner_id)
        if mine is not None:
            closed.add(mine.closed)
        groups[name] = (count + 1, closed)
    result = {}
    for name, (count, closed) in groups.items():
        figures = closed_kpis(closed)
        result[name] = {
            "partners": count,
            "won_revenue_per_partner": ratio(figures["won_revenue"], count),
            **figures,
        }
    return result
