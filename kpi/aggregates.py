"""The KPIs' base aggregates for every partner at once, computed in the database.

Period sums (closed deals, registrations, trainings) and the open pipeline come from the running
totals of `kpi.rollups` (two rows per partner, whatever the period's length); channels, stages,
survey answers and the data-trust counts are grouped queries over the period's rows, run for
one partner where only one is asked about. The None key is the direct deals. Only sums and
counts come back; `kpi.formulas` turns them into ratios and means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from kpi import rollups, schema
from kpi.sqlfuncs import days_between, elapsed_days
from settings.periods import Period

#: A partner id, or None for direct deals.
PartnerKey = str | None

d = schema.deals


@dataclass
class ClosedTotals:
    """Sums over the deals closed (won or lost) in a period."""

    won: int = 0
    lost: int = 0
    won_revenue: float = 0.0
    won_with_amount: int = 0
    cycle_days: int = 0  # Σ max(closed_on - created_on, 0) over won deals
    registered_closed: int = 0
    registered_won: int = 0
    upsell_won: int = 0
    new_revenue: float = 0.0
    csat_sum: int = 0
    csat_count: int = 0

    def add(self, other: ClosedTotals) -> None:
        for name in _CLOSED_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_CLOSED_FIELDS = tuple(item.name for item in fields(ClosedTotals))


@dataclass
class CustomerTotals:
    """Sums over a partner's customers for a period (kpi-spec.md section 7), filled by
    `kpi.customers.add_customers`; money in the deployment's currency, null MRR skipped."""

    active_at_start: int = 0
    active_at_end: int = 0
    retained: int = 0  # active at the start and still at the end
    gained: int = 0
    lost: int = 0
    mrr_at_start: float = 0.0
    mrr_retained: float = 0.0
    mrr_at_end: float = 0.0
    onboarded: int = 0
    onboarding_days: int = 0  # Σ max(onboarded_on - became_customer_on, 0)
    in_period: int = 0  # active at some time in the period
    tickets: int = 0
    referrals: int = 0

    def add(self, other: CustomerTotals) -> None:
        for name in _CUSTOMER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_CUSTOMER_FIELDS = tuple(item.name for item in fields(CustomerTotals))


@dataclass
class StageTotals:
    entered: int = 0
    stay_days: float = 0.0  # Σ length of the stays that ended in the period
    stays: int = 0


@dataclass
class Totals:
    """Everything the KPIs of one partner (or a pool of them) need for one period."""

    closed: ClosedTotals = field(default_factory=ClosedTotals)
    channels: dict[str, ClosedTotals] = field(default_factory=dict)  # filled by add_channels
    pipeline_count: int = 0
    pipeline_value: float = 0.0
    registered: int = 0
    courses: int = 0
    survey_responses: int = 0
    promoters: int = 0
    detractors: int = 0
    stages: dict[str, StageTotals] = field(default_factory=dict)
    customers: CustomerTotals = field(default_factory=CustomerTotals)

    def channel(self, name: str) -> ClosedTotals:
        """The closed deals of one marketing channel (created when first asked for)."""
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = ClosedTotals()
        return found

    def add_channel(self, name: str, closed: ClosedTotals) -> None:
        """Adds one channel's closed deals (taken as they are when the channel is new)."""
        mine = self.channels.get(name)
        if mine is None:
            self.channels[name] = closed
        else:
            mine.add(closed)

    def add(self, other: Totals) -> None:
        self.closed.add(other.closed)
        self.customers.add(other.customers)
        for channel, totals in other.channels.items():
            self.channel(channel).add(totals)
        for name in (
            "pipeline_count",
            "pipeline_value",
            "registered",
            "courses",
            "survey_responses",
            "promoters",
            "detractors",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for stage, theirs in other.stages.items():
            mine = self.stages.setdefault(stage, StageTotals())
            mine.entered += theirs.entered
            mine.stay_days += theirs.stay_days
            mine.stays += theirs.stays


@dataclass
class TrustCounts:
    """A partner's deals in the period (closed in it, or open at its end) that the numbers had
    to skip or doubt."""

    no_amount: int = 0  # no amount at all: skipped by sums and averages
    no_rate: int = 0  # an amount in a currency with no rate: skipped likewise
    closed_before_created: int = 0  # a won or lost deal closed before it was created
    open_past_close_date: int = 0  # open at the period's end, past its expected close date

    @property
    def total(self) -> int:
        return sum(getattr(self, item.name) for item in fields(self))


class StageCounts(NamedTuple):
    """One (partner key, stage) pair's figures for a window."""

    key: str  # the partner key ('' for the direct deals)
    stage: str
    entered: int
    stays: int
    stay_days: float


class TotalsImage(Protocol):
    """`kpi.totals_image.TotalsImage` as read here (the images import this module)."""

    def period_totals(
        self, start: date, end: date, partner_ids: Sequence[PartnerKey] | None = None
    ) -> dict[PartnerKey, tuple[Any, ...]]: ...

    def windows_around(
        self, anchors: Mapping[str, date], window_days: int
    ) -> dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]: ...


class DealImage(Protocol):
    """`kpi.deal_image.DealImage` as read here."""

    def channels(self, start: date, end: date) -> list[tuple[PartnerKey, str, ClosedTotals]]: ...


class StageImage(Protocol):
    """`kpi.stage_image.StageImage` as read here."""

    def counts(
        self, start_at: datetime, end_at: datetime, pipeline: Sequence[str]
    ) -> list[StageCounts]: ...


@dataclass(frozen=True)
class Window:
    """A period as dates (for date columns) and as naive-UTC instants (for timestamps)."""

    start: date
    end: date
    start_at: datetime
    end_at: datetime

    @classmethod
    def of(cls, period: Period, tz: ZoneInfo) -> Window:
        def instant(day: date) -> datetime:
            return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)

        return cls(period.start, period.end, instant(period.start), instant(period.end))


class Aggregator:
    """Runs the grouped queries for a period, optionally only for some partners."""

    def __init__(self, connection: Connection, tz: ZoneInfo) -> None:
        self.connection = connection
        self.tz = tz

    def totals(
        self,
        period: Period,
        partner_ids: Sequence[PartnerKey] | None = None,
        surveys: bool = True,
        image: TotalsImage | None = None,
    ) -> dict[PartnerKey, Totals]:
        """Base aggregates per partner (None: direct deals), channels and stages aside;
        `partner_ids` limits the partners (None in it: the direct deals too); without `surveys`,
        no survey answers (a reader of none of their keys skips that query). Read from the
        running totals of `kpi.rollups`: the period is what was counted before its end minus
        what was counted before its start (from `image`, their in-memory copy, when given)."""
        window = Window.of(period, self.tz)
        result: dict[PartnerKey, Totals] = {}
        if image is None:
            sums = rollups.period_totals(self.connection, window.start, window.end, partner_ids)
        else:
            sums = image.period_totals(window.start, window.end, partner_ids)
        closed_fields = len(rollups.CLOSED_MEASURES)
        for key, values in sums.items():
            totals = result[key] = Totals(closed=ClosedTotals(*values[:closed_fields]))
            pipeline_count, pipeline_value, registered, courses = values[closed_fields:]
            totals.pipeline_count = int(pipeline_count)
            totals.pipeline_value = float(pipeline_value)
            totals.registered = int(registered)
            totals.courses = int(courses)
        if not surveys:
            return result
        real = None if partner_ids is None else [p for p in partner_ids if p is not None]
        for partner_id, answers, promoters, detractors in self.surveys(period, real):
            totals = totals_of(result, partner_id)
            totals.survey_responses = answers
            totals.promoters = promoters
            totals.detractors = detractors
        return result

    def surveys(
        self, period: Period, partner_ids: Sequence[str] | None = None
    ) -> list[tuple[str, int, int, int]]:
        """(partner, answers, promoters, detractors) of the survey answers in the period."""
        window = Window.of(period, self.tz)
        parameters: dict[str, Any] = {"start_at": window.start_at, "end_at": window.end_at}
        if partner_ids is not None:
            parameters["partner_ids"] = list(partner_ids)
        query = _surveys_query(partner_ids is not None)
        return [
            (partner_id, int(answers), int(promoters), int(detractors))
            for partner_id, answers, promoters, detractors in self.connection.execute(
                query, parameters
            )
        ]

    def add_channels(
        self,
        totals: dict[PartnerKey, Totals],
        period: Period,
        partner_ids: Sequence[str] | None = None,
        image: DealImage | None = None,
    ) -> None:
        """Adds the period's closed deals per marketing channel to `totals`, per partner; for
        every partner from `image`, the closed deals' in-memory copy, when given."""
        window = Window.of(period, self.tz)
        if image is not None and partner_ids is None:
            for partner_id, channel, closed in image.channels(window.start, window.end):
                totals_of(totals, partner_id).add_channel(channel, closed)
            return
        parameters: dict[str, Any] = {"start": window.start, "end": window.end}
        if partner_ids is not None:
            parameters["partner_ids"] = list(partner_ids)
        query = _closed_query(partner_ids is not None)
        for row in self.connection.execute(query, parameters):
            closed = closed_totals(row[2:])
            totals_of(totals, row.partner_id).add_channel(row.channel, closed)

    def add_stages(
        self,
        totals: dict[PartnerKey, Totals],
        period: Period,
        pipeline: Sequence[str],
        partner_ids: Sequence[str] | None = None,
        image: StageImage | None = None,
    ) -> None:
        """Adds the entries into each pipeline stage and the stays in it that ended in the
        period to `totals`, per partner (stages outside the pipeline are never reported); for
        every partner from `image`, the stage changes' in-memory copy, when given."""
        if not pipeline:
            return
        window = Window.of(period, self.tz)
        if image is not None and partner_ids is None:
            for pair in image.counts(window.start_at, window.end_at, pipeline):
                totals_of(totals, pair.key or None).stages[pair.stage] = StageTotals(
                    pair.entered, pair.stay_days, pair.stays
                )
            return
        parameters: dict[str, Any] = {"start_at": window.start_at, "end_at": window.end_at}
        if partner_ids is not None:
            parameters["partner_ids"] = list(partner_ids)
        query = _stage_counts_query(tuple(pipeline), partner_ids is not None)
        for row in self.connection.execute(query, parameters):
            if row.entered or row.stays:
                stage = totals_of(totals, row.partner_key or None).stages.setdefault(
                    row.stage, StageTotals()
                )
                stage.entered = int(row.entered)
                stage.stays = int(row.stays)
                stage.stay_days = float(row.days or 0.0)

    def trust(
        self, period: Period, partner_ids: Sequence[str] | None = None
    ) -> dict[PartnerKey, TrustCounts]:
        window = Window.of(period, self.tz)
        closed_in_period = and_(
            d.c.status.in_(("won", "lost")),
            d.c.closed_on >= window.start,
            d.c.closed_on < window.end,
        )
        open_at_end = and_(
            d.c.created_on < window.end,
            or_(d.c.status == "open", d.c.closed_on >= window.end),
        )

        query = (
            select(
                d.c.partner_id,
                count_if(and_(d.c.amount.is_(None), d.c.original_amount.is_(None))),
                count_if(and_(d.c.amount.is_(None), d.c.original_amount.is_not(None))),
                count_if(and_(closed_in_period, d.c.closed_on < d.c.created_on)),
                count_if(
                    and_(
                        d.c.status == "open",
                        d.c.created_on < window.end,
                        d.c.expected_close_on < window.end,
                    )
                ),
            )
            .where(or_(closed_in_period, open_at_end), *only(d.c.partner_id, partner_ids))
            .group_by(d.c.partner_id)
        )
        return {
            row[0]: TrustCounts(*(int(value or 0) for value in row[1:]))
            for row in self.connection.execute(query)
        }

    def open_past_close(self, period: Period) -> dict[PartnerKey, int]:
        """Each partner's deals open at the period's end whose expected close date is before
        it: `TrustCounts.open_past_close_date` alone, from the partial ix_deals_partner_open."""
        window = Window.of(period, self.tz)
        query = (
            select(d.c.partner_id, func.count())
            .where(
                schema.OPEN_DEAL,  # a literal: the partial index ix_deals_partner_open
                d.c.expected_close_on < window.end,
                d.c.created_on < window.end,
            )
            .group_by(d.c.partner_id)
        )
        return {row[0]: int(row[1]) for row in self.connection.execute(query)}

    def stage_entries(self, period: Period, stages: Sequence[str]) -> dict[str, int]:
        """Entries into each of `stages` in the period by every known deal, partner or direct."""
        window = Window.of(period, self.tz)
        at_end = rollups.stage_entries_before(self.connection, window.end_at, stages)
        at_start = rollups.stage_entries_before(self.connection, window.start_at, stages)
        return {stage: at_end[stage] - at_start[stage] for stage in stages}


# --- the queries (built once per shape, run with the window's bind parameters) ---------------


@cache
def _closed_query(some_partners: bool) -> Select[Any]:
    """The closed deals per partner and channel in [start, end) (partner_ids)."""
    return (
        select(d.c.partner_id, d.c.channel, *closed_measures())
        .where(
            d.c.status.in_(("won", "lost")),
            d.c.closed_on >= bindparam("start", type_=Date),
            d.c.closed_on < bindparam("end", type_=Date),
            *_chosen(d.c.partner_id, some_partners),
        )
        .group_by(d.c.partner_id, d.c.channel)
    )


@cache
def _stage_counts_query(pipeline: tuple[str, ...], some_partners: bool) -> Select[Any]:
    """Per (partner key, pipeline stage): entries in [start_at, end_at), and the count and
    total length of the stays that ended in it.

    Every pair drives index range seeks (`ix_stage_changes_partner_stage_*`), so nothing
    is sorted: grouping the window's stage changes of every partner instead sorted ~460k
    rows twice at a million deals (1.1 s of every partner's scorecards; 0.3 s this way).
    The keys are the rollups' partner keys, which hold every known deal's ('' for a direct
    deal); changes of unknown deals (partner key null) never count."""
    changes = schema.stage_changes
    keys = schema.kpi_partner_keys
    stages = union_all(*(select(literal(name, String).label("stage")) for name in pipeline))
    stage = stages.cte("pipeline")
    start_at = bindparam("start_at", type_=DateTime)
    end_at = bindparam("end_at", type_=DateTime)

    def of_pair(*conditions: ColumnElement[bool]) -> list[ColumnElement[bool]]:
        return [
            changes.c.partner_key == keys.c.partner_key,
            changes.c.stage == stage.c.stage,
            *conditions,
        ]

    entered = of_pair(changes.c.entered_at >= start_at, changes.c.entered_at < end_at)
    left = of_pair(changes.c.left_at >= start_at, changes.c.left_at < end_at)
    return (
        select(
            keys.c.partner_key,
            stage.c.stage,
            select(func.count()).where(*entered).scalar_subquery().label("entered"),
            select(func.count()).where(*left).scalar_subquery().label("stays"),
            select(func.sum(elapsed_days(changes.c.entered_at, changes.c.left_at)))
            .where(*left)
            .scalar_subquery()
            .label("days"),
        )
        .select_from(keys.join(stage, true()))
        .where(*_chosen(keys.c.partner_key, some_partners))
    )


def _chosen(column: Any, some_partners: bool) -> list[ColumnElement[bool]]:
    """The WHERE term of the `partner_ids` parameter (a list) in a statement built once."""
    return [column.in_(bindparam("partner_ids", expanding=True))] if some_partners else []


@cache
def _surveys_query(some_partners: bool) -> Select[Any]:
    """Survey answers per partner in a window (start_at, end_at; partner_ids): built once."""
    s = schema.survey_responses
    return (
        select(
            s.c.partner_id,
            func.count().label("n"),
            func.sum(case((s.c.score >= 9, 1), else_=0)).label("promoters"),
            func.sum(case((s.c.score <= 6, 1), else_=0)).label("detractors"),
        )
        .where(
            s.c.submitted_at >= bindparam("start_at", type_=DateTime),
            s.c.submitted_at < bindparam("end_at", type_=DateTime),
            *_chosen(s.c.partner_id, some_partners),
        )
        .group_by(s.c.partner_id)
    )


def closed_measures() -> list[ColumnElement[Any]]:
    """ClosedTotals' fields, in order, summed over the won and lost deals a query selects."""
    won = d.c.status == "won"
    cycle = days_between(d.c.created_on, d.c.closed_on)
    registered = d.c.registered.is_(True)
    return [
        count_if(won).label("won"),
        count_if(d.c.status == "lost").label("lost"),
        func.sum(case((won, d.c.amount))).label("won_revenue"),
        func.count(case((won, d.c.amount))).label("won_with_amount"),
        func.sum(case((won, case((cycle < 0, 0), else_=cycle)))).label("cycle_days"),
        count_if(registered).label("registered_closed"),
        count_if(and_(won, registered)).label("registered_won"),
        count_if(and_(won, d.c.type == "upsell")).label("upsell_won"),
        func.sum(case((and_(won, d.c.type == "new"), d.c.amount))).label("new_revenue"),
        func.sum(case((won, d.c.csat))).label("csat_sum"),
        func.count(case((won, d.c.csat))).label("csat_count"),
    ]


def closed_totals(values: Sequence[Any]) -> ClosedTotals:
    """ClosedTotals from the values of `closed_measures` (a sum over no rows is null)."""
    return ClosedTotals(*(number(value) for value in values))


def pipeline_order(connection: Connection, configured: list[str] | None, source: str) -> list[str]:
    """The pipeline's stages in order: app.yaml's, else the CRM's, else first appearance."""
    if configured:
        return list(configured)
    stages = schema.pipeline_stages
    crm = connection.execute(
        select(stages.c.stage).where(stages.c.source == source).order_by(stages.c.sort_order)
    ).scalars()
    order = list(crm)
    if order:
        return order
    changes = schema.stage_changes
    first_seen = (
        select(changes.c.stage, func.min(changes.c.entered_at).label("first"))
        .select_from(changes.join(d, d.c.id == changes.c.deal_id))  # known deals only
        .group_by(changes.c.stage)
        .order_by(func.min(changes.c.entered_at), changes.c.stage)
    )
    return [row.stage for row in connection.execute(first_seen)]


def totals_of(totals: dict[PartnerKey, Totals], key: PartnerKey) -> Totals:
    """The key's Totals, built only when missing (setdefault would build one per row)."""
    found = totals.get(key)
    if found is None:
        found = totals[key] = Totals()
    return found


def only(column: Any, partner_ids: Sequence[str] | None) -> list[ColumnElement[bool]]:
    """The WHERE term that limits a query to some partners (none: every partner)."""
    return [] if partner_ids is None else [column.in_(list(partner_ids))]


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def number(value: Any) -> Any:
    return 0 if value is None else value
