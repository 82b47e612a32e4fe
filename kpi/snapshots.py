"""KPI snapshots: every partner's KPIs, stored at each scheduled digest run.

The CRM often keeps little history of its own (a deal's amount or a partner's tier is simply
overwritten), so each scheduled run writes what it computed: one row per partner, plus one for
the program as a whole under `PROGRAM_ID`. A digest compares with the latest earlier snapshot
of the same period ("movers since last week"), and the runs of the trailing quarters give the
product its own history: the digest compares with their average (`snapshots_since`).

A row holds the card's `kpis` with `quality_score` and `rank` added. `run_at` is the run's
scheduled time (naive UTC), so every replica that computes the same run writes the same key, and
writing a run twice is harmless (the unique key (run_at, period, partner_id) keeps the first).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    Select,
    String,
    Table,
    UniqueConstraint,
    select,
)

from kpi.schema import ID, metadata
from kpi.store import Store
from settings.periods import Period

PROGRAM_ID = "*program*"

kpi_snapshots = Table(
    "kpi_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_at", DateTime, nullable=False),
    Column("period", String(64), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("partner_id", String(ID), nullable=False),
    Column("kpis", JSON, nullable=False),
    UniqueConstraint("run_at", "period", "partner_id", name="uq_kpi_snapshots_run"),
    Index("ix_kpi_snapshots_period_run", "period", "run_at"),
    Index("ix_kpi_snapshots_partner_run", "partner_id", "run_at"),
)


@dataclass(frozen=True)
class Snapshot:
    """One run's KPIs: partner id (or PROGRAM_ID) -> kpis with quality_score and rank."""

    run_at: datetime  # aware UTC
    period: str
    start: str
    end: str
    partners: dict[str, dict[str, Any]] = field(default_factory=dict)


def snapshot_row(card: Mapping[str, Any]) -> dict[str, Any]:
    """What a snapshot keeps of a card (the JSON contract)."""
    return {**card["kpis"], "quality_score": card["quality_score"], "rank": card["rank"]}


def save_snapshot(
    store: Store,
    run_at: datetime,
    period: Period,
    cards: Mapping[str, Mapping[str, Any]],
    program: Mapping[str, Any] | None = None,
) -> int:
    """Stores every card (partner id -> card) and the program's card; returns the rows
    offered (a row the run already has is kept as it was)."""
    when = _naive_utc(run_at)
    entries = [(partner_id, snapshot_row(card)) for partner_id, card in cards.items()]
    if program is not None:
        entries.append((PROGRAM_ID, snapshot_row(program)))
    rows = [
        {
            "run_at": when,
            "period": period.name,
            "period_start": period.start,
            "period_end": period.end,
            "partner_id": partner_id,
            "kpis": kpis,
        }
        for partner_id, kpis in entries
    ]
    if not rows:
        return 0
    with store.transaction() as connection:
        store.insert_or_keep(connection, kpi_snapshots, rows, ["run_at", "period", "partner_id"])
    return len(rows)


def trailing_snapshots(
    store: Store, period_name: str, before: datetime, limit: int = 13
) -> list[Snapshot]:
    """The latest `limit` runs of `period_name` strictly before `before`, newest first."""
    table = kpi_snapshots
    latest_runs = (
        select(table.c.run_at)
        .where(table.c.period == period_name, table.c.run_at < _naive_utc(before))
        .group_by(table.c.run_at)
        .order_by(table.c.run_at.desc())
        .limit(max(limit, 0))
    )
    with store.engine.connect() as connection:
        runs = list(connection.execute(latest_runs).scalars())
    if not runs:
        return []
    query = select(table).where(table.c.period == period_name, table.c.run_at.in_(runs))
    return _runs(store, query)


def snapshots_since(
    store: Store,
    period_name: str,
    since: date,
    before: datetime,
    partner_ids: Collection[str] | None = None,
) -> list[Snapshot]:
    """Every run of `period_name` strictly before `before` whose period starts on or after
    `since`, newest first; with `partner_ids`, each keeps only those rows (and the runs that
    have none of them are left out). The trailing-quarter comparison's history."""
    table = kpi_snapshots
    query = select(table).where(
        table.c.period == period_name,
        table.c.run_at < _naive_utc(before),
        table.c.period_start >= since,
    )
    if partner_ids is not None:
        query = query.where(table.c.partner_id.in_(sorted(set(partner_ids))))
    return _runs(store, query)


def _runs(store: Store, query: Select[Any]) -> list[Snapshot]:
    """The snapshot rows `query` selects, gathered into their runs, newest first."""
    found: dict[datetime, Snapshot] = {}
    with store.engine.connect() as connection:
        for row in connection.execute(query):
            snapshot = found.get(row.run_at)
            if snapshot is None:
                snapshot = found[row.run_at] = Snapshot(
                    run_at=row.run_at.replace(tzinfo=UTC),
                    period=row.period,
                    start=row.period_start.isoformat(),
                    end=row.period_end.isoformat(),
                )
            snapshot.partners[row.partner_id] = dict(row.kpis)
    return [found[run] for run in sorted(found, reverse=True)]


def latest_snapshot(store: Store, period_name: str, before: datetime) -> Snapshot | None:
    """The latest run of `period_name` before `before`, if any."""
    found = trailing_snapshots(store, period_name, before, limit=1)
    return found[0] if found else None


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
