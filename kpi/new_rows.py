"""New records of one table as columns of the values the SQLite driver binds, for a bulk load.

The files source's reading process (`connectors.reader_process`) turns a batch of clean CSV
records of deals or stage changes into these, and `kpi.store.Store.upsert_batches` inserts
them as they are: the same rows `RecordKind.values`, `finish_row`, the batch's stays and
`driver_rows` make of each record one at a time, without a dictionary, a date or a datetime
per row in the writing process. This module imports nothing of the product, so the reading
process stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

T = TypeVar("T")
M = TypeVar("M", str, datetime)


@dataclass(frozen=True)
class NewRows:
    """A batch of records to insert into an empty table, column by column."""

    numbers: list[int]  # the CSV line each record ends on
    columns: dict[str, list[Any]]  # by stored column, the id and row hash included
    hours: list[str]  # of stage changes: the distinct hours entered (the rollups' marks)
    read: int  # the CSV records of the batch, blank lines included (for progress)

    @property
    def ids(self) -> list[str]:
        return self.columns["id"]

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, places: set[int]) -> NewRows:
        """The batch but the records at `places`, each of which repeats the id of a record
        written before (for stage changes: its moment, and so its hour and its deal's stays,
        are stored already)."""

        def kept(column: list[T]) -> list[T]:
            return [value for at, value in enumerate(column) if at not in places]

        columns = {name: kept(values) for name, values in self.columns.items()}
        return NewRows(kept(self.numbers), columns, self.hours, self.read)


def next_moments(deals: Sequence[Any], moments: Sequence[M]) -> list[M | None]:
    """Each stage change's `left_at` as far as its batch tells: the next moment among the
    batch's changes of its deal (moments of one kind: datetimes, or stored texts, which sort
    as the moments do), so that `refresh_stays` afterwards, which writes only the rows whose
    value differs, rewrites few of them (a deal's history is mostly one batch)."""
    found: dict[Any, set[M]] = {}
    for deal, moment in zip(deals, moments, strict=True):
        found.setdefault(deal, set()).add(moment)
    following: dict[tuple[Any, M], M | None] = {}
    for deal, distinct in found.items():
        ordered = sorted(distinct)
        for at, entered in enumerate(ordered):
            following[deal, entered] = ordered[at + 1] if at + 1 < len(ordered) else None
    return [following[deal, moment] for deal, moment in zip(deals, moments, strict=True)]


def bound(values: Sequence[Any]) -> list[Any]:
    """A column's values as SQLAlchemy binds them on SQLite (`kpi.sqlite_binds`): dates and
    naive moments as their stored text, booleans as integers, the rest as they are."""
    return [_bound(value) for value in values]


def _bound(value: Any) -> Any:
    kind = type(value)
    if kind is date:
        return value.isoformat()
    if kind is datetime and value.tzinfo is None:
        return value.isoformat(" ", "microseconds")
    if kind is bool:
        return int(value)
    if kind is datetime or kind not in _PLAIN:
        raise TypeError(f"{value!r} has no SQLite value here")
    return value


_PLAIN = {str, int, float, type(None)}
