"""`Store.upsert_rows` names the deals whose stays (`left_at`) its batches could not settle, and
refreshing just those leaves the stage history as a refresh of every deal would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kpi import schema
from kpi.models import StageChange
from kpi.store import KINDS, Store


def change(deal: str, stage: str, hour: int) -> dict[str, Any]:
    record = StageChange(
        deal_id=deal, stage=stage, entered_at=datetime(2026, 1, 1, hour, tzinfo=UTC)
    )
    return KINDS[StageChange].values(record)


def history(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(schema.stage_changes).order_by(schema.stage_changes.c.id))
        return [tuple(row) for row in rows]


def write(store: Store, rows: list[dict[str, Any]]) -> set[str] | None:
    """The rows written two at a time, then the unsettled deals refreshed; which they were."""
    with store.transaction() as connection:
        counts = store.upsert_rows(connection, StageChange, rows, "files", 2)
        unsettled = counts.unsettled
        store.refresh_stays(connection, None if unsettled is None else sorted(unsettled))
    return unsettled


def assert_settled(store: Store) -> None:
    settled = history(store)
    with store.transaction() as connection:
        store.refresh_stays(connection)
    assert history(store) == settled


def test_only_deals_over_several_batches_or_with_stored_changes_are_refreshed(store: Store) -> None:
    interleaved = [
        change("d1", "a", 1),
        change("d2", "a", 2),
        change("d1", "b", 3),
        change("d3", "a", 4),
        change("d2", "b", 5),
        change("d1", "c", 6),
        change("d3", "b", 7),
    ]
    # Written two at a time into an empty table: each deal's changes come in two batches.
    assert write(store, interleaved) == {"d1", "d2", "d3"}
    assert_settled(store)
    with store.transaction() as connection:
        connection.execute(schema.stage_changes.delete())
    # Each deal's changes in one batch: the batches settle them all.
    assert write(store, [*interleaved[:2], change("d3", "a", 4), change("d3", "b", 7)]) == set()
    assert_settled(store)
    # Into a table that holds rows, a deal written may have stored changes the batch lacks.
    assert write(store, [change("d3", "c", 5)]) == {"d3"}
    assert_settled(store)
    changes = schema.stage_changes
    with store.engine.connect() as connection:
        stays = dict(
            connection.execute(
                select(changes.c.stage, changes.c.left_at).where(changes.c.deal_id == "d3")
            ).all()
        )
    assert stays == {
        "a": datetime(2026, 1, 1, 5),
        "c": datetime(2026, 1, 1, 7),
        "b": None,
    }
