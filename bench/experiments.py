"""EXPERIMENT ONLY: candidate fixes for the engine's slow queries, tried on a *copy* of the bench
file (never on a real store, never through a migration). `bench.kpi_bench --experiment` uses it.

1. `INDEXES`: covering and partial indexes for the queries of `kpi.aggregates`, created on the
   copy; the engine is then re-timed unchanged, so the effect is the indexes' alone. No ANALYZE
   is run (the store never runs it; see the report for what statistics change).
2. `DENORMALIZE`: stage_changes gets its deal's partner id and a "deal is known" flag (what a
   migration plus `Store.refresh_stays` would maintain, like `left_at`), so that the stage
   queries need no join to deals; `rewrite_phase` times the rewritten statements against the
   engine's own, with the same periods.
3. `rewrite_phase` also times the one-partner queries with the partner filter inside each branch
   of the UNION ALL (the engine wraps the whole grouped query instead, which SQLite cannot push
   into a compound subquery, so it aggregates every partner and throws all but one away).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Select, String, column, func, select, table, union_all

from bench.generate import AS_OF
from kpi import schema
from kpi.aggregates import Aggregator, Window
from kpi.periods import parse_period
from kpi.sqlfuncs import elapsed_days
from kpi.store import open_store

UTC = ZoneInfo("UTC")  # the bench deployment's timezone (AppConfig's default)

#: (what it is for, CREATE INDEX)
INDEXES: tuple[tuple[str, str], ...] = (
    (
        "_closed, _pipeline's closed half: deals by closed_on, covering",
        "CREATE INDEX bx_deals_closed_cover ON deals (closed_on, status, partner_id, channel,"
        " amount, created_on, type, registered, csat)",
    ),
    (
        "_pipeline's open half: open deals only (partial), by partner, covering",
        "CREATE INDEX bx_deals_open_cover ON deals (partner_id, created_on, amount, status)"
        " WHERE status = 'open'",
    ),
    (
        "_registered: both halves (dated and undated registrations), covering",
        "CREATE INDEX bx_deals_registered_cover ON deals (registered, registered_on, created_on,"
        " partner_id)",
    ),
    (
        "_stage_entries, stage_entries: stage changes by entered_at, covering",
        "CREATE INDEX bx_stage_changes_entered_cover ON stage_changes (entered_at, stage, deal_id)",
    ),
    (
        "_stage_stays: stage changes by left_at, covering",
        "CREATE INDEX bx_stage_changes_left_cover ON stage_changes (left_at, stage, deal_id,"
        " entered_at)",
    ),
)

#: The deal's partner and whether the deal is known, copied onto its stage changes.
DENORMALIZE: tuple[tuple[str, str], ...] = (
    ("add column", "ALTER TABLE stage_changes ADD COLUMN bx_partner_id VARCHAR(255)"),
    ("add column", "ALTER TABLE stage_changes ADD COLUMN bx_known BOOLEAN NOT NULL DEFAULT 0"),
    (
        "fill from deals (one UPDATE ... FROM)",
        "UPDATE stage_changes SET bx_partner_id = deals.partner_id, bx_known = 1 FROM deals"
        " WHERE deals.id = stage_changes.deal_id",
    ),
    (
        "index: entries by entered_at, covering",
        "CREATE INDEX bx_stage_changes_entered_partner ON stage_changes (entered_at, bx_known,"
        " stage, bx_partner_id)",
    ),
    (
        "index: stays by left_at, covering",
        "CREATE INDEX bx_stage_changes_left_partner ON stage_changes (left_at, bx_known, stage,"
        " bx_partner_id, entered_at)",
    ),
)


def copy_database(source: Path, target: Path) -> float:
    started = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return time.perf_counter() - started


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_ddl(db: Path, statements: tuple[tuple[str, str], ...]) -> list[tuple[str, float]]:
    """Runs each statement on the copy `db` and commits; seconds per statement."""
    timings = []
    connection = sqlite3.connect(db)
    try:
        for what, sql in statements:
            started = time.perf_counter()
            connection.execute(sql)
            connection.commit()
            timings.append((what, time.perf_counter() - started))
    finally:
        connection.close()
    return timings


# --- rewritten statements ---------------------------------------------------------------------

d = schema.deals
_changes = table(
    "stage_changes",
    column("stage", String),
    column("entered_at", DateTime),
    column("left_at", DateTime),
    column("bx_partner_id", String),
    column("bx_known"),
)


def pipeline_pushed(window: Window, partner_ids: list[str]) -> Select[Any]:
    """`Aggregator._pipeline` with the partner filter in both branches of the UNION ALL."""
    mine = d.c.partner_id.in_(partner_ids)
    still_open = select(d.c.partner_id, d.c.amount).where(
        d.c.status == "open", d.c.created_on < window.end, mine
    )
    closed_later = select(d.c.partner_id, d.c.amount).where(
        d.c.status.in_(("won", "lost")),
        d.c.closed_on >= window.end,
        d.c.created_on < window.end,
        mine,
    )
    deals = union_all(still_open, closed_later).subquery()
    return select(
        deals.c.partner_id, func.count().label("n"), func.sum(deals.c.amount).label("value")
    ).group_by(deals.c.partner_id)


def registered_pushed(window: Window, partner_ids: list[str]) -> Select[Any]:
    """`Aggregator._registered` with the partner filter in both branches."""
    mine = d.c.partner_id.in_(partner_ids)
    dated = select(d.c.partner_id).where(
        d.c.registered.is_(True),
        d.c.registered_on >= window.start,
        d.c.registered_on < window.end,
        mine,
    )
    undated = select(d.c.partner_id).where(
        d.c.registered.is_(True),
        d.c.registered_on.is_(None),
        d.c.created_on >= window.start,
        d.c.created_on < window.end,
        mine,
    )
    deals = union_all(dated, undated).subquery()
    return select(deals.c.partner_id, func.count().label("n")).group_by(deals.c.partner_id)


def entries_denormalized(window: Window, per_partner: bool) -> Select[Any]:
    c = _changes.c
    keys = [c.bx_partner_id, c.stage] if per_partner else [c.stage]
    return (
        select(*keys, func.count().label("n"))
        .where(c.entered_at >= window.start_at, c.entered_at < window.end_at, c.bx_known == 1)
        .group_by(*keys)
    )


def stays_denormalized(window: Window) -> Select[Any]:
    c = _changes.c
    return (
        select(
            c.bx_partner_id,
            c.stage,
            func.count().label("n"),
            func.sum(elapsed_days(c.entered_at, c.left_at)).label("days"),
        )
        .where(c.left_at >= window.start_at, c.left_at < window.end_at, c.bx_known == 1)
        .group_by(c.bx_partner_id, c.stage)
    )


def rewrite_phase(db: str, periods: list[str], partner_id: str) -> list[dict[str, Any]]:
    """For each period: the engine's statement and its rewrite, each timed alone (median of 3
    warm runs), with their row counts (which must match)."""
    store = open_store(f"sqlite:///{db}")
    results = []
    with store.engine.connect() as connection:
        stage_entries_all = _stage_entries_all_statement()
        for text in periods:
            period = parse_period(text, AS_OF)
            window = Window.of(period, UTC)
            one = [partner_id]
            pairs: list[tuple[str, Select[Any], Select[Any]]] = [
                (
                    "_pipeline, one partner",
                    _filtered(Aggregator._pipeline(window), one),
                    pipeline_pushed(window, one),
                ),
                (
                    "_registered, one partner",
                    _filtered(Aggregator._registered(window), one),
                    registered_pushed(window, one),
                ),
                (
                    "stage_entries (all deals)",
                    stage_entries_all(window),
                    entries_denormalized(window, per_partner=False),
                ),
                (
                    "_stage_entries, every partner",
                    Aggregator._stage_entries(window),
                    entries_denormalized(window, per_partner=True),
                ),
                (
                    "_stage_stays, every partner",
                    Aggregator._stage_stays(window),
                    stays_denormalized(window),
                ),
            ]
            for label, original, rewritten in pairs:
                before_ms, before_rows = _time(connection, original)
                after_ms, after_rows = _time(connection, rewritten)
                results.append(
                    {
                        "period": period.name,
                        "query": label,
                        "engine_ms": before_ms,
                        "rewrite_ms": after_ms,
                        "rows": [before_rows, after_rows],
                    }
                )
    store.engine.dispose()
    return results


def _filtered(query: Select[Any], partner_ids: list[str]) -> Select[Any]:
    """What `Aggregator._run` sends for a partner: the grouped query, filtered outside."""
    inner = query.subquery()
    return select(inner).where(inner.c.partner_id.in_(partner_ids))


def _stage_entries_all_statement() -> Any:
    """`Aggregator.stage_entries`'s query (the method runs it; this builds the same Select)."""
    changes = schema.stage_changes

    def build(window: Window) -> Select[Any]:
        return (
            select(changes.c.stage, func.count().label("n"))
            .select_from(changes.join(d, d.c.id == changes.c.deal_id))
            .where(changes.c.entered_at >= window.start_at, changes.c.entered_at < window.end_at)
            .group_by(changes.c.stage)
        )

    return build


def _time(connection: Any, query: Select[Any]) -> tuple[float, int]:
    connection.execute(query).fetchall()  # warm
    times, rows = [], 0
    for _ in range(3):
        started = time.perf_counter()
        rows = len(connection.execute(query).fetchall())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, rows
