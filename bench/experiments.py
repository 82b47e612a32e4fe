"""EXPERIMENT ONLY: candidate fixes for the engine's slow queries, tried on a *copy* of the bench
file (never on a real store, never through a migration). `bench.kpi_bench --experiment` uses it.

1. `INDEXES`: covering and partial indexes for the queries of `kpi.aggregates`, created on the
   copy; the engine is then re-timed unchanged, so the effect is the indexes' alone. No ANALYZE
   is run (the store never runs it; see the report for what statistics change).
2. `DENORMALIZE`: stage_changes gets its deal's partner id and a "deal is known" flag (what a
   migration plus `Store.refresh_stays` would maintain, like `left_at`), so that the stage
   queries need no join to deals; `rewrite_phase` times the rewritten statements against the
   engine's own, with the same periods.

(The one-partner queries once wrapped the whole grouped query in a partner filter that SQLite
could not push into the UNION ALL of `_pipeline`/`_registered`; commit 018d571 moved the filter
into each query's WHERE, so that rewrite is no longer measured here.)
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Select, String, column, func, select, table

from bench import phases
from bench.generate import AS_OF
from kpi.aggregates import Window
from kpi.periods import parse_period
from kpi.sqlfuncs import elapsed_days

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

_changes = table(
    "stage_changes",
    column("stage", String),
    column("entered_at", DateTime),
    column("left_at", DateTime),
    column("bx_partner_id", String),
    column("bx_known"),
)


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


def rewrite_phase(db: str, periods: list[str]) -> list[dict[str, Any]]:
    """For each period: the engine's own stage statements (captured from `all_partners`, so
    whatever the engine's current SQL is) and their denormalized rewrites, each timed alone
    (median of 3 warm runs), with their row counts (which must match)."""
    engine = phases.engine_for(db)
    results = []
    for text in periods:
        period = parse_period(text, AS_OF)
        window = Window.of(period, UTC)
        _seconds, captured = phases.capture(engine, partial(engine.all_partners, period))
        engine_sql: dict[str, tuple[str, Any]] = {}
        for statement, parameters in captured:
            engine_sql.setdefault(phases.classify(statement), (statement, parameters))
        rewrites = {
            "stage_entries (all deals)": entries_denormalized(window, per_partner=False),
            "_stage_entries": entries_denormalized(window, per_partner=True),
            "_stage_stays": stays_denormalized(window),
        }
        with engine.store.engine.connect() as connection:
            for label, rewritten in rewrites.items():
                if label not in engine_sql:
                    continue
                before_ms, before_rows = phases.time_statement(connection, *engine_sql[label])
                compiled = rewritten.compile(connection)
                after_ms, after_rows = _time(connection, rewritten)
                results.append(
                    {
                        "period": period.name,
                        "query": label + ("" if "all deals" in label else ", every partner"),
                        "engine_ms": before_ms,
                        "rewrite_ms": after_ms,
                        "rows": [before_rows, after_rows],
                        "rewrite_sql": " ".join(str(compiled).split()),
                    }
                )
    engine.store.engine.dispose()
    results.append({"code": phases.code_version()})
    return results


def _time(connection: Any, query: Select[Any]) -> tuple[float, int]:
    connection.execute(query).fetchall()  # warm
    times, rows = [], 0
    for _ in range(3):
        started = time.perf_counter()
        rows = len(connection.execute(query).fetchall())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, rows
