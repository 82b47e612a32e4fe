"""KPI rollups: running totals that make any period's aggregates a few index seeks.

A scorecard ranks its partner among all partners, so it needs every partner's period totals;
summing the period's deals for that costs a scan of every deal in the period (hundreds of
thousands at a million deals). Instead the store keeps, per partner and day, the running totals
up to that day (`kpi_partner_days`), so a period is `at(end) - at(start)`: two rows per partner.
Stage entries by all deals (the share-of-stage denominator) get the same treatment per stage
and UTC hour (`kpi_stage_hours`).

The rollups are derived data. Triggers on the record tables (migration 0004) mark the partners
and hours each write makes stale, whichever code wrote it; `refresh` rebuilds just those, and
the engine calls it before reading, so a stale rollup is never read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from kpi import schema
from kpi.page_cache import larger_page_cache
from kpi.sqlfuncs import add_days, days_between, hour_floor
from kpi.store import BUSY_TIMEOUT_KEY, DEFAULT_LOCK_TIMEOUT_SECONDS, batched

log = logging.getLogger("partner_kpi.rollups")

PartnerKey = str | None
DIRECT = ""  # the partner key of deals without a partner
ALL = "*"  # the dirty mark that stands for every partner
KEY_BATCH = 500
FILL_CACHE_KB = 64 * 1024  # `_fill_stage_change_partners`'s page cache
QUICK_BUSY_MS = 250  # how long a question waits for a busy SQLite store before answering
DEFAULT_BUSY_MS = round(DEFAULT_LOCK_TIMEOUT_SECONDS * 1000)  # a connection not from open_store
#: The advisory lock that serializes refreshes on PostgreSQL: one per schema, so stores that
#: share a database in separate schemas never wait for each other's refreshes.
PG_REFRESH_LOCK = "(7224011, hashtext(current_schema()))"

#: Running totals kept per partner and day; the first eleven are ClosedTotals' fields.
CLOSED_MEASURES = (
    "won",
    "lost",
    "won_revenue",
    "won_with_amount",
    "cycle_days",
    "registered_closed",
    "registered_won",
    "upsell_won",
    "new_revenue",
    "csat_sum",
    "csat_count",
)
MEASURES = (
    *CLOSED_MEASURES,
    "created",
    "created_value",
    "settled",
    "settled_value",
    "registered",
    "courses",
)
#: Money measures, kept as integer millionths of the currency (see kpi.schema).
MONEY_MEASURES = frozenset({"won_revenue", "new_revenue", "created_value", "settled_value"})
MICROS = 1_000_000
#: The window frame of a running sum over rows that are unique in their order (one per day or
#: hour): the rows so far. (The default frame, the peers so far, costs SQLite a peer check.)
SO_FAR = (None, 0)

d = schema.deals
t = schema.trainings
days = schema.kpi_partner_days
keys_table = schema.kpi_partner_keys
hours = schema.kpi_stage_hours
dirty_partners = schema.kpi_dirty_partners
dirty_hours = schema.kpi_dirty_hours
rollups_version = schema.kpi_rollups_version


@dataclass(frozen=True)
class RefreshReport:
    partners: int  # partner keys rebuilt (all of them for a full rebuild)
    full: bool
    since_hour: datetime | None  # stage hours rebuilt from this hour on
    seconds: float


# --- refreshing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    """The stale marks a refresh read, each at the version it saw."""

    partners: dict[str, int]
    hours: dict[datetime, int]

    def __bool__(self) -> bool:
        return bool(self.partners or self.hours)


def refresh(engine: Engine, wait: bool = True) -> RefreshReport | None:
    """Rebuilds what writes marked stale; None when nothing was.

    With `wait=False` (a question being answered) it gives up at once when another refresh
    (a sync's, possibly minutes long for a first build) or a long write holds the store, and
    the question is answered from the rollups as they stand: the marks stay for that refresh."""
    marks = read_marks(engine)
    if not marks:
        return None
    started = time.perf_counter()
    if not rebuild(engine, marks, wait):
        log.info("rollups: another refresh or write holds the store; answering without waiting")
        return None
    clear_marks(engine, marks)
    report = RefreshReport(
        partners=len(marks.partners) - (1 if ALL in marks.partners else 0),
        full=ALL in marks.partners,
        since_hour=min(marks.hours) if marks.hours else None,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "rollups refreshed: %s partner key(s)%s, stage hours since %s, in %.2f s",
        report.partners,
        " (full rebuild)" if report.full else "",
        report.since_hour,
        report.seconds,
    )
    return report


def read_marks(engine: Engine) -> Marks:
    with engine.connect() as connection:
        partners = {key: version for key, version in connection.execute(select(dirty_partners))}
        hours = {hour: version for hour, version in connection.execute(select(dirty_hours))}
    return Marks(partners, hours)


def rebuild(engine: Engine, marks: Marks, wait: bool = True) -> bool:
    """Rebuilds the marked partners' rows (all with `*`) and the stage hours from the earliest
    marked one on, in one transaction; False when `wait` is off and the store was busy."""
    try:
        _rebuild(engine, marks, wait)
    except _Busy:
        return False
    except OperationalError as error:  # SQLite's "database is locked" after a short wait
        if wait or "locked" not in str(error.orig):
            raise
        return False
    return True


class _Busy(Exception):
    pass


def _rebuild(engine: Engine, marks: Marks, wait: bool) -> None:
    full = ALL in marks.partners
    with engine.begin() as connection:
        if not _serialize(connection, wait):
            raise _Busy
        try:
            if full:  # after a bulk load or the upgrade: the triggers did not see the rows
                _fill_stage_change_partners(connection)
            if marks.partners:
                _rebuild_partners(connection, None if full else sorted(marks.partners))
            if marks.hours:
                _rebuild_hours(connection, min(marks.hours))
            # in the same transaction: whoever sees the new rows sees the new version
            connection.execute(
                update(rollups_version).values(version=rollups_version.c.version + 1)
            )
        finally:
            # (An invalidated connection, as after Ctrl-C in a statement, is closed already.)
            restore = not connection.invalidated
            if restore and connection.info.pop("restore_busy_timeout", False):
                busy_ms = connection.info.get(BUSY_TIMEOUT_KEY, DEFAULT_BUSY_MS)
                connection.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")


def version(connection: Connection) -> int:
    """The rollups' version: it moves with every rebuild, so numbers computed from the running
    totals at one version are the stored ones while it stays (`kpi.ranking`'s cache)."""
    found = connection.execute(select(rollups_version.c.version)).scalar()
    return int(found or 0)


def clear_marks(engine: Engine, marks: Marks) -> None:
    """Deletes each mark only at the version that was rebuilt: a write that raced the rebuild
    bumped it, so its mark stays for the next refresh. On PostgreSQL each delete commits on its
    own, so it never holds one mark while waiting for another that a sync holds (a cycle)."""
    partner_rows = [{"key": key, "version": v} for key, v in marks.partners.items()]
    hour_rows = [{"hour": hour, "version": v} for hour, v in marks.hours.items()]
    partner_match = and_(
        dirty_partners.c.partner_key == bindparam("key"),
        dirty_partners.c.version == bindparam("version"),
    )
    hour_match = and_(
        dirty_hours.c.hour == bindparam("hour"), dirty_hours.c.version == bindparam("version")
    )
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if partner_rows:
            connection.execute(delete(dirty_partners).where(partner_match), partner_rows)
        if hour_rows:
            connection.execute(delete(dirty_hours).where(hour_match), hour_rows)
        connection.commit()


def _serialize(connection: Connection, wait: bool) -> bool:
    """One refresh at a time: False when `wait` is off and another one runs. (SQLite lets one
    writer in at a time anyway; not waiting means a short busy timeout for this transaction.)"""
    if connection.dialect.name == "postgresql":
        if wait:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock{PG_REFRESH_LOCK}")
            return True
        return bool(
            connection.exec_driver_sql(
                f"SELECT pg_try_advisory_xact_lock{PG_REFRESH_LOCK}"
            ).scalar()
        )
    if not wait:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={QUICK_BUSY_MS}")
        connection.info["restore_busy_timeout"] = True
    return True


def _rebuild_partners(connection: Connection, marked: Sequence[str] | None) -> None:
    if marked is None:
        connection.execute(delete(days))
        connection.execute(delete(keys_table))
        _insert_running_totals(connection, None)
        connection.execute(
            insert(keys_table).from_select(["partner_key"], select(days.c.partner_key).distinct())
        )
        return
    for batch in batched(marked, KEY_BATCH):
        connection.execute(delete(days).where(days.c.partner_key.in_(batch)))
        connection.execute(delete(keys_table).where(keys_table.c.partner_key.in_(batch)))
        _insert_running_totals(connection, batch)
        connection.execute(
            insert(keys_table).from_select(
                ["partner_key"],
                select(days.c.partner_key).where(days.c.partner_key.in_(batch)).distinct(),
            )
        )


def _insert_running_totals(connection: Connection, batch: list[str] | None) -> None:
    """Each partner key's day rows: the events summed per day and, in the same SELECT, the
    running sums over those days (one sort for both: a window over a grouped subquery sorted
    its rows again). A window frame of rows, not of peers: each day is one row already."""
    events = union_all(*_events(batch)).subquery("events")
    running = select(
        events.c.partner_key,
        events.c.day,
        *(
            func.sum(func.sum(events.c[name]))
            .over(partition_by=events.c.partner_key, order_by=events.c.day, rows=SO_FAR)
            .label(name)
            for name in MEASURES
        ),
    ).group_by(events.c.partner_key, events.c.day)
    connection.execute(insert(days).from_select(["partner_key", "day", *MEASURES], running))


def _events(batch: list[str] | None) -> list[Select[Any]]:
    """One row per thing a period counts, on the day it counts: closes, creations,
    settlements (for the open pipeline), registrations and training completions.

    A deal's events that fall on the same day share a row (the grouping per day costs per row
    and column): its settlement rides with its close (settled on `closed_on`) or its creation
    (a closed deal without a close date, or one closed before it was created, settles on
    `created_on`), and a registration on the day of creation (or without a date) rides with the
    creation; only a registration on another day has a row of its own."""
    deal_key = func.coalesce(d.c.partner_id, literal(DIRECT))
    deals_of = _partner_filter(d.c.partner_id, batch)
    trainings_of = _partner_filter(t.c.partner_id, batch)
    won = d.c.status == "won"
    closed = d.c.status.in_(("won", "lost"))
    amount = cast(func.round(func.coalesce(d.c.amount, 0.0) * MICROS), BigInteger)
    cycle = days_between(d.c.created_on, d.c.closed_on)
    registered = d.c.registered.is_(True)
    settled_on_close = d.c.closed_on >= d.c.created_on  # else settled_on_creation
    settled_on_creation = and_(closed, or_(d.c.closed_on.is_(None), d.c.closed_on < d.c.created_on))
    registered_on_creation = and_(
        registered, or_(d.c.registered_on.is_(None), d.c.registered_on == d.c.created_on)
    )
    return [
        _event(
            deal_key,
            d.c.closed_on,
            [closed, d.c.closed_on.is_not(None), *deals_of],
            won=_flag(won),
            lost=_flag(d.c.status == "lost"),
            won_revenue=case((won, amount), else_=0),
            won_with_amount=_flag(and_(won, d.c.amount.is_not(None))),
            cycle_days=case((and_(won, cycle > 0), cycle), else_=0),
            registered_closed=_flag(registered),
            registered_won=_flag(and_(won, registered)),
            upsell_won=_flag(and_(won, d.c.type == "upsell")),
            new_revenue=case((and_(won, d.c.type == "new"), amount), else_=0),
            csat_sum=case((and_(won, d.c.csat.is_not(None)), d.c.csat), else_=0),
            csat_count=_flag(and_(won, d.c.csat.is_not(None))),
            settled=_flag(settled_on_close),
            settled_value=case((settled_on_close, amount), else_=0),
        ),
        _event(
            deal_key,
            d.c.created_on,
            deals_of,
            created=literal(1),
            created_value=amount,
            settled=_flag(settled_on_creation),
            settled_value=case((settled_on_creation, amount), else_=0),
            registered=_flag(registered_on_creation),
        ),
        _event(
            deal_key,
            d.c.registered_on,
            [registered, d.c.registered_on != d.c.created_on, *deals_of],
            registered=literal(1),
        ),
        _event(
            func.coalesce(t.c.partner_id, literal(DIRECT)),
            t.c.completed_on,
            trainings_of,
            courses=literal(1),
        ),
    ]


def _event(
    key: ColumnElement[Any],
    day: ColumnElement[Any],
    where: Iterable[ColumnElement[bool]],
    **values: ColumnElement[Any],
) -> Select[Any]:
    columns = [
        cast(values[name], BigInteger if name in MONEY_MEASURES else Integer).label(name)
        if name in values
        else cast(literal(0), BigInteger if name in MONEY_MEASURES else Integer).label(name)
        for name in MEASURES
    ]
    return select(key.label("partner_key"), day.label("day"), *columns).where(*where)


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _partner_filter(column: Any, batch: list[str] | None) -> list[ColumnElement[bool]]:
    if batch is None:
        return []
    real = [key for key in batch if key != DIRECT]
    terms = [column.in_(real)] if real else []
    if DIRECT in batch:
        terms.append(column.is_(None))
    return [or_(*terms)] if terms else [literal(False)]


def _fill_stage_change_partners(connection: Connection) -> None:
    """Gives each stage change its deal's partner key where it differs (after the upgrade or a
    bulk load). A sync's triggers have set them all, so there it is a read and nothing more."""
    changes = schema.stage_changes
    partner = (
        select(func.coalesce(d.c.partner_id, literal(DIRECT)))
        .where(d.c.id == changes.c.deal_id)
        .scalar_subquery()
    )
    stale = changes.c.partner_key.is_distinct_from(partner)
    if connection.execute(select(changes.c.id).where(stale).limit(1)).first() is None:
        return
    # A 64 MB page cache while millions of index entries are rewritten at random (the default
    # 2 MB thrashes). Only there: SQLite lets each sorter hold as much as the cache before it
    # spills to a temporary file, so under it the rebuild's sorts (the GROUP BY and window over
    # every event) peaked 190 MB higher at a million deals, and ran no faster.
    with larger_page_cache(connection, FILL_CACHE_KB):
        connection.execute(update(changes).where(stale).values(partner_key=partner))


def _rebuild_hours(connection: Connection, since: datetime) -> None:
    changes = schema.stage_changes
    hour = hour_floor(changes.c.entered_at)
    counts = (
        select(changes.c.stage, hour.label("hour"), func.count().label("n"))
        .where(changes.c.entered_at >= since, changes.c.partner_key.is_not(None))  # known deals
        .group_by(hour, changes.c.stage)  # hour first: sorts faster (SQLite and PostgreSQL)
        .subquery("counts")
    )
    connection.execute(delete(hours).where(hours.c.hour >= since))
    earlier = hours.alias("earlier")
    base = func.coalesce(
        select(earlier.c.entered)
        .where(earlier.c.stage == counts.c.stage, earlier.c.hour < since)
        .order_by(earlier.c.hour.desc())
        .limit(1)
        .scalar_subquery(),
        0,
    )
    running = select(
        counts.c.stage,
        counts.c.hour,
        base
        + func.sum(counts.c.n).over(
            partition_by=counts.c.stage, order_by=counts.c.hour, rows=SO_FAR
        ),
    )
    connection.execute(insert(hours).from_select(["stage", "hour", "entered"], running))


# --- reading --------------------------------------------------------------------------------


#: What `period_totals` returns per partner, in order: ClosedTotals' fields, then these.
PERIOD_FIELDS = (*CLOSED_MEASURES, "pipeline_count", "pipeline_value", "registered", "courses")
_MONEY_FIELDS = tuple(
    PERIOD_FIELDS.index(name) for name in ("won_revenue", "new_revenue", "pipeline_value")
)


def period_totals(
    connection: Connection, start: date, end: date, partner_ids: Sequence[PartnerKey] | None
) -> dict[PartnerKey, tuple[Any, ...]]:
    """Each partner's sums over [start, end) and open pipeline at `end`, in PERIOD_FIELDS'
    order (None: direct deals); partners with nothing before `end` are absent.

    A period is the running totals before its end minus those before its start, read as each
    partner key's latest row before either day: two index seeks per key. The keys must drive
    the loop (a planner that starts from kpi_partner_days scans all of it): PostgreSQL says so
    with LATERAL; SQLite never reorders a LEFT JOIN (and has no LATERAL)."""
    query = _period_totals_query(connection.dialect.name, partner_ids is not None)
    parameters: dict[str, Any] = {"start_day": start, "end_day": end}
    if partner_ids is not None:
        parameters["partner_keys"] = [DIRECT if p is None else p for p in partner_ids]
    result: dict[PartnerKey, tuple[Any, ...]] = {}
    for row in connection.execute(query, parameters):
        if row[1] is not None:
            values = list(row[2:])
            for index in _MONEY_FIELDS:
                values[index] = int(values[index]) / MICROS
            result[None if row[0] == DIRECT else row[0]] = tuple(values)
    return result


#: What `rank_sums` returns per partner: the running totals' part of the quality components.
RANK_FIELDS = (
    "won",
    "lost",
    "won_revenue",
    "won_with_amount",
    "cycle_days",
    "pipeline_count",
    "courses",
)


def rank_sums(connection: Connection, start: date, end: date) -> dict[str, tuple[Any, ...]]:
    """Every partner's RANK_FIELDS over [start, end) (the direct deals left out): the columns of
    `period_totals` the ranking reads, and nothing else converted."""
    query = _rank_sums_query(connection.dialect.name)
    result: dict[str, tuple[Any, ...]] = {}
    for row in connection.execute(query, {"start_day": start, "end_day": end}):
        if row[1] is not None and row[0] != DIRECT:
            result[row[0]] = (row[1], row[2], int(row[3]) / MICROS, *row[4:])
    return result


def windows_around(
    connection: Connection,
    anchors: Any,
    window_days: int,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """For each (partner_key, day) row of `anchors` (a CTE of partners and one day each, run
    with `parameters`), the closed-deal sums (CLOSED_MEASURES' order) over
    `[day - window_days, day)` and over `[day, day + window_days)`: three running-total reads
    per partner instead of its deals. Partners without rollup rows (no deal) are absent. The
    query is built once per `anchors` object (building costs more than running it for one)."""
    query = _windows_query(connection.dialect.name, anchors, window_days)
    money = [index for index, name in enumerate(CLOSED_MEASURES) if name in MONEY_MEASURES]
    result = {}
    for row in connection.execute(query, dict(parameters or {})):
        values = [list(row[1 : 1 + len(CLOSED_MEASURES)]), list(row[1 + len(CLOSED_MEASURES) :])]
        for side in values:
            for index in money:
                side[index] = int(side[index]) / MICROS
        result[row[0]] = (tuple(values[0]), tuple(values[1]))
    return result


@lru_cache(maxsize=16)
def _windows_query(dialect: str, anchors: Any, window_days: int) -> Select[Any]:
    first = _latest_before(
        dialect, add_days(anchors.c.day, literal_column(str(-window_days))), "w0"
    )
    middle = _latest_before(dialect, anchors.c.day, "w1")
    last = _latest_before(dialect, add_days(anchors.c.day, literal_column(str(window_days))), "w2")

    def between(later: Any, earlier: Any, name: str) -> ColumnElement[Any]:
        since: ColumnElement[Any] = func.coalesce(later.c[name], 0) - func.coalesce(
            earlier.c[name], 0
        )
        return since

    keyed = keys_table.join(anchors, anchors.c.partner_key == keys_table.c.partner_key)
    return select(
        keys_table.c.partner_key,
        *(between(middle, first, name) for name in CLOSED_MEASURES),
        *(between(last, middle, name) for name in CLOSED_MEASURES),
    ).select_from(first.join_onto(middle.join_onto(last.join_onto(keyed))))


@cache
def _period_totals_query(dialect: str, some_partners: bool) -> Select[Any]:
    """Built once per dialect (a scorecard runs it twice; building costs more than running)."""
    at_end = _latest_before(dialect, bindparam("end_day", type_=Date), "at_end")
    at_start = _latest_before(dialect, bindparam("start_day", type_=Date), "at_start")

    def since_start(name: str) -> ColumnElement[Any]:
        since: ColumnElement[Any] = at_end.c[name] - func.coalesce(at_start.c[name], 0)
        return since

    query = (
        select(
            keys_table.c.partner_key,
            at_end.c.day,
            *(since_start(name) for name in CLOSED_MEASURES),
            at_end.c.created - at_end.c.settled,
            at_end.c.created_value - at_end.c.settled_value,
            since_start("registered"),
            since_start("courses"),
        )
        # No `WHERE at_end.day IS NOT NULL`: SQLite would make the LEFT JOIN inner and reorder.
        .select_from(at_start.join_onto(at_end.join_onto(keys_table)))
    )
    if some_partners:
        query = query.where(keys_table.c.partner_key.in_(bindparam("partner_keys", expanding=True)))
    return query


@cache
def _rank_sums_query(dialect: str) -> Select[Any]:
    at_end = _latest_before(dialect, bindparam("end_day", type_=Date), "at_end")
    at_start = _latest_before(dialect, bindparam("start_day", type_=Date), "at_start")

    def since_start(name: str) -> ColumnElement[Any]:
        since: ColumnElement[Any] = at_end.c[name] - func.coalesce(at_start.c[name], 0)
        return since

    return select(
        keys_table.c.partner_key,
        *(since_start(name) for name in RANK_FIELDS[:5]),
        at_end.c.created - at_end.c.settled,
        since_start("courses"),
    ).select_from(at_start.join_onto(at_end.join_onto(keys_table)))


@dataclass(frozen=True)
class _Latest:
    """A partner key's latest kpi_partner_days row before a day, as a joinable FROM item."""

    c: Any  # its columns
    join_onto: Any  # (a FROM clause holding the keys table) -> that clause, left-joined to it


def _latest_before(dialect: str, before: ColumnElement[Any], name: str) -> _Latest:
    if dialect == "postgresql":
        lateral = (
            select(days)
            .where(days.c.partner_key == keys_table.c.partner_key, days.c.day < before)
            .order_by(days.c.day.desc())
            .limit(1)
            .lateral(name)
        )
        return _Latest(lateral.c, lambda left: left.outerjoin(lateral, true()))
    row = days.alias(name)
    earlier = days.alias(f"{name}_earlier")
    latest_day = (
        select(earlier.c.day)
        .where(earlier.c.partner_key == keys_table.c.partner_key, earlier.c.day < before)
        .order_by(earlier.c.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    on = and_(row.c.partner_key == keys_table.c.partner_key, row.c.day == latest_day)
    return _Latest(row.c, lambda left: left.outerjoin(row, on))


@cache
def _stage_entries_query() -> Select[Any]:
    """A stage's running count of entries before an hour (built once: a card runs it 14 times)."""
    return (
        select(hours.c.entered)
        .where(
            hours.c.stage == bindparam("stage", type_=String),
            hours.c.hour < bindparam("hour", type_=DateTime),
        )
        .order_by(hours.c.hour.desc())
        .limit(1)
    )


def stage_entries_before(
    connection: Connection, moment: datetime, stages: Sequence[str]
) -> dict[str, int]:
    """Entries into each stage by known deals before `moment` (naive UTC)."""
    whole_hour = moment.replace(minute=0, second=0, microsecond=0)
    result: dict[str, int] = {}
    query = _stage_entries_query()
    for stage in stages:
        entered = connection.execute(
            query, {"stage": stage, "hour": whole_hour}
        ).scalar_one_or_none()
        result[stage] = int(entered or 0)
    if whole_hour < moment:  # a zone whose midnight is not on the hour: count the rest raw
        changes = schema.stage_changes
        rest = (
            select(changes.c.stage, func.count().label("n"))
            .where(
                changes.c.entered_at >= whole_hour,
                changes.c.entered_at < moment,
                changes.c.partner_key.is_not(None),
            )
            .group_by(changes.c.stage)
        )
        for row in connection.execute(rest):
            if row.stage in result:
                result[row.stage] += int(row.n)
    return result
