"""New stage changes as columns of the values the SQLite driver binds, for a bulk load.

The files source's reading process (`connectors.stage_reader`) turns a batch of clean CSV
records of stage changes into these, and `kpi.store.Store.upsert_batches` inserts them as they
are: the same rows `RecordKind.values`, `finish_row`, the batch's stays and `driver_rows` make
of each record one at a time, without a dictionary or a datetime per row in the writing process.
This module imports nothing of the product, so the reading process stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class NewStageChanges:
    """A batch of stage changes to insert, column by column (one entry per record)."""

    numbers: list[int]  # the CSV line each record ends on
    ids: list[str]  # `kpi.store.natural_key(deal_id, stage, entered_at)`
    deal_ids: list[str]
    stages: list[str]
    entered: list[str]  # naive UTC, as stored
    left: list[str | None]  # the next moment among the batch's changes of the deal
    hashes: list[str]  # the records' fingerprints (`connectors.fingerprints`)
    hours: list[str]  # the distinct hours entered (for the rollups' marks), as stored
    read: int  # the CSV records of the batch, blank lines included (for progress)

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, places: set[int]) -> NewStageChanges:
        """The batch but the records at `places`, each of which repeats the key of a record
        written before: its moment, and so its hour and its deal's stays, are stored already."""

        def kept(column: list[T]) -> list[T]:
            return [value for at, value in enumerate(column) if at not in places]

        return NewStageChanges(
            kept(self.numbers),
            kept(self.ids),
            kept(self.deal_ids),
            kept(self.stages),
            kept(self.entered),
            kept(self.left),
            kept(self.hashes),
            self.hours,
            self.read,
        )
