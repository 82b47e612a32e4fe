"""The rollup triggers' work for whole batches of written rows, on SQLite.

Migration 0004's row triggers mark the partners and hours each write makes stale and keep
`stage_changes.partner_key`; run once per row they cost more than the write itself (a bulk load
of millions of rows spends most of its time in them). `Store` writes the batches of deals, stage
changes or trainings of one call with the table's triggers dropped (inside its transaction, so
nobody else ever sees them missing) and does here, set-based, what they would have done row by
row: the partner key of each batch's deals' stage changes set as the batch is written, and each
affected partner and hour marked once when the call's writing ends. Deletes and every other
writer still go through the triggers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, literal, select, update
from sqlalchemy.dialects import sqlite

from kpi import schema
from kpi.deferred_ddl import dropped
from kpi.sqlfuncs import hour_floor

#: The tables with rollup triggers, and the column whose old value a mark needs.
MARKED = {"deals": "partner_id", "stage_changes": "entered_at", "trainings": "partner_id"}


def batched_marks(connection: Connection, table: Table) -> bool:
    """Whether a batch written into `table` gets its marks here instead of from triggers."""
    return connection.dialect.name == "sqlite" and table.name in MARKED


class Marks:
    """The marks of the batches written into one table during `writing`: its triggers set
    aside from the first write (`before_write`) to the end, each batch's stage-change work
    done as it is written (`add`), the partners and hours gathered and marked once at the
    end, each once."""

    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection = connection
        self.table = table
        self.batched = batched_marks(connection, table)  # else the triggers mark
        self.partners: set[str] = set()
        self.hours: set[datetime] = set()
        self._triggers: ExitStack | None = None
        self._history: bool | None = None

    def history(self) -> bool:
        """Whether any stage change is stored (asked once: writing deals writes none)."""
        if self._history is None:
            changes = schema.stage_changes
            found = self.connection.execute(select(changes.c.id).limit(1)).first()
            self._history = found is not None
        return self._history

    @contextmanager
    def writing(self) -> Iterator[None]:
        with ExitStack() as triggers:
            self._triggers = triggers
            yield
        self._triggers = None
        _mark_partners(self.connection, sorted(self.partners))
        _mark_hours(self.connection, self.hours)

    def before_write(self) -> None:
        """Sets the table's triggers aside until the writing ends (once)."""
        if self.batched and self._triggers is not None:
            self._triggers.enter_context(dropped(self.connection, "trigger", self.table.name))
            self._triggers = None  # entered: the stack restores them when it closes

    def add_hours(self, hours: Iterable[str]) -> None:
        """Marks these hours of new stage changes (as stored: whole hours, naive UTC) at the
        end, as `add` marks the hours of the stage changes it is given."""
        self.hours.update(map(datetime.fromisoformat, hours))

    def add(self, written: Sequence[Mapping[str, Any]], old: Mapping[str, Any]) -> None:
        """What the triggers would do for the `written` rows (inserted, or updated where
        `old` holds the id's previous value of `MARKED[table]`): the partners and hours
        gathered for the end, the rest now."""
        connection = self.connection
        if self.table.name == "stage_changes":
            moments = [row["entered_at"] for row in written]
            moments += [old[row["id"]] for row in written if row["id"] in old]
            self.hours.update(_hour(moment) for moment in moments)
            return  # their partner keys: `Store` set them from the deals before writing
        self.partners.update(row["partner_id"] or "" for row in written)
        self.partners.update(old[row["id"]] or "" for row in written if row["id"] in old)
        if self.table.name != "deals" or not self.history():
            return  # (with no stage change stored, the deals' stage changes need nothing)
        inserted = [row["id"] for row in written if row["id"] not in old]
        if inserted:  # an inserted deal makes the hours of its (orphan) stage changes stale
            changes = schema.stage_changes
            hours = select(hour_floor(changes.c.entered_at), literal(1)).where(
                changes.c.deal_id.in_(inserted)
            )
            statement = sqlite.insert(schema.kpi_dirty_hours).from_select(
                ["hour", "version"], hours.distinct()
            )
            connection.execute(_bump(statement, schema.kpi_dirty_hours))
        changes = schema.stage_changes
        deals = schema.deals
        partner = (
            select(func.coalesce(deals.c.partner_id, literal("")))
            .where(deals.c.id == changes.c.deal_id)
            .scalar_subquery()
        )
        connection.execute(
            update(changes)
            .where(
                changes.c.deal_id.in_([row["id"] for row in written]),
                changes.c.partner_key.is_distinct_from(partner),
            )
            .values(partner_key=partner)
        )


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _mark_partners(connection: Connection, keys: list[str]) -> None:
    if keys:
        table = schema.kpi_dirty_partners
        statement = _bump(sqlite.insert(table), table)
        connection.execute(statement, [{"partner_key": key, "version": 1} for key in keys])


def _mark_hours(connection: Connection, hours: set[datetime]) -> None:
    if hours:
        table = schema.kpi_dirty_hours
        statement = _bump(sqlite.insert(table), table)
        connection.execute(statement, [{"hour": hour, "version": 1} for hour in sorted(hours)])


def _bump(statement: sqlite.Insert, table: Table) -> sqlite.Insert:
    """A mark that is there already gets a new version, as the triggers' marks do."""
    key = next(iter(table.primary_key.columns)).name
    return statement.on_conflict_do_update(
        index_elements=[key], set_={"version": table.c.version + 1}
    )
