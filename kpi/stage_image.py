"""An in-memory copy of the stage changes every partner's stage figures read, per rollups
version (see `kpi.images`).

Every partner's cards show, per pipeline stage, the entries in the period and the stays that
ended in it (count and total length). In SQL that is three index range seeks per (partner key,
stage) pair, stepping over every change of the window (1.4 million index entries for last-90d at
a million deals). Here each (partner key, stage) pair is a group, and two int64 arrays hold
`group * span + moment` sorted, one by entry and one by end of stay, beside the running sum of
the stays' lengths in the second one's order: a window's counts for every pair are four
vectorized binary searches, and the stays' length a difference of two integers (moments and
lengths in whole microseconds, or seconds when every moment is a whole second). The changes
counted are those of the partner keys of the rollups (`kpi_partner_keys`), as the SQL's join.

Stage changes and their keys are written only with a mark that bumps the rollups' version
(entries and deletions mark their hour; a deal's partner its key; a stay's end is derived in the
sync's own transaction from the changes it writes), so the copy is tied to that version.
Memory: 24 bytes per stage change (about 90 MB for the benchmark's 3.9 million).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from kpi import images, rollups, schema
from kpi.sqlfuncs import epoch_micros

Ints = npt.NDArray[np.int64]
_MICROS_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)
_GROUPS_PER_CHUNK = 500
_LIMIT = 2**62  # composite keys and length sums stay below it (int64 with room)

changes = schema.stage_changes
keys_table = schema.kpi_partner_keys


@dataclass(frozen=True)
class StageCounts:
    """One (partner key, stage) pair's figures for a window."""

    key: str  # the partner key ('' for the direct deals)
    stage: str
    entered: int
    stays: int
    stay_days: float


@dataclass(frozen=True)
class StageImage:
    version: int
    keys: list[str]  # partner keys, group = key index * len(stages) + stage index
    stages: list[str]
    origin: int  # the earliest moment, in microseconds since 1970
    unit: int  # microseconds per step of the moments below (1, or 1,000,000)
    span: int  # more than any moment's offset from `origin`, in units
    entered: Ints  # group * span + (entered_at - origin) / unit, ascending
    left: Ints  # group * span + (left_at - origin) / unit, ascending (ended stays only)
    lengths: Ints  # running sum of the stays' lengths (units) in `left`'s order, from 0

    @cached_property
    def stage_index(self) -> dict[str, int]:
        return {stage: index for index, stage in enumerate(self.stages)}

    def _offset(self, moment: datetime) -> int:
        """The moment's offset in units rounded up (a stored moment is before it exactly when
        its offset is smaller), within [0, span - 1]."""
        micros = _micros(moment) - self.origin
        return min(max(-(-micros // self.unit), 0), self.span - 1)

    def counts(
        self, start_at: datetime, end_at: datetime, pipeline: Sequence[str]
    ) -> list[StageCounts]:
        """Each pair of a pipeline stage with an entry into it in [start_at, end_at) or a stay
        in it that ended there (naive UTC)."""
        chosen = [
            (stage, self.stage_index[stage]) for stage in pipeline if stage in self.stage_index
        ]
        if not chosen or not self.keys:
            return []
        stage_of = np.array([index for _stage, index in chosen], dtype=np.int64)
        groups = (
            np.arange(len(self.keys), dtype=np.int64)[:, None] * len(self.stages) + stage_of
        ).ravel()
        low = groups * self.span + self._offset(start_at)
        high = groups * self.span + self._offset(end_at)
        entered = np.searchsorted(self.entered, high) - np.searchsorted(self.entered, low)
        left_low = np.searchsorted(self.left, low)
        left_high = np.searchsorted(self.left, high)
        stays = left_high - left_low
        lengths = (self.lengths[left_high] - self.lengths[left_low]) * self.unit
        found = np.flatnonzero((entered > 0) | (stays > 0))
        names = [stage for stage, _index in chosen]
        return [
            StageCounts(
                self.keys[group // len(chosen)],
                names[group % len(chosen)],
                entries,
                count,
                length / _MICROS_PER_DAY,  # Python's int division: correctly rounded
            )
            for group, entries, count, length in zip(
                found.tolist(),
                entered[found].tolist(),
                stays[found].tolist(),
                lengths[found].tolist(),
                strict=True,
            )
        ]


def _micros(moment: datetime) -> int:
    """A naive-UTC moment as microseconds since 1970 (exactly)."""
    delta = (
        moment.replace(tzinfo=None) - _EPOCH
        if moment.tzinfo is None
        else (moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH)
    )
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def load(connection: Connection) -> StageImage | None:
    """The copy of the store's stage changes (None below `images.MIN_ROWS` of them, or when its
    integers would not fit), read as one row per (partner key, stage) with its moments as
    comma-separated integers: a few thousand rows for the database to send, not millions."""
    version = rollups.version(connection)  # before the rows: see kpi.images
    known = changes.c.partner_key.in_(select(keys_table.c.partner_key))
    entered_at = epoch_micros(changes.c.entered_at)
    left_at = func.coalesce(epoch_micros(changes.c.left_at), -1)
    if connection.dialect.name == "postgresql":  # one order for both lists
        in_order = aggregate_order_by(literal(","), changes.c.id)
        lists = [func.string_agg(cast(value, Text), in_order) for value in (entered_at, left_at)]
    else:  # SQLite's aggregates of one group see its rows in one order
        lists = [func.group_concat(value, ",") for value in (entered_at, left_at)]
    query = (
        select(changes.c.partner_key, changes.c.stage, func.count(), *lists)
        .where(known)
        .group_by(changes.c.partner_key, changes.c.stage)
    )
    key_index: dict[str, int] = {}
    stage_index: dict[str, int] = {}
    pairs: list[tuple[int, int]] = []
    sizes: list[int] = []
    entered_parts: list[Ints] = []
    left_parts: list[Ints] = []
    result = connection.execute(query)
    while rows := result.fetchmany(_GROUPS_PER_CHUNK):
        for key, stage, count, _entered, _left in rows:
            pairs.append(
                (
                    key_index.setdefault(key, len(key_index)),
                    stage_index.setdefault(stage, len(stage_index)),
                )
            )
            sizes.append(int(count))
        entered_parts.append(_numbers(row[3] for row in rows))
        left_parts.append(_numbers(row[4] for row in rows))
    if rollups.version(connection) != version:
        return None  # a rebuild committed while the rows were read: they may not be `version`'s
    entered = np.concatenate(entered_parts) if entered_parts else np.zeros(0, dtype=np.int64)
    left = np.concatenate(left_parts) if left_parts else np.zeros(0, dtype=np.int64)
    total = len(entered)
    if total < images.MIN_ROWS or len(left) != total:
        return None
    ended = left >= 0
    origin = int(entered.min()) if total else 0
    unit = (
        1_000_000 if not (entered % 1_000_000).any() and not (left[ended] % 1_000_000).any() else 1
    )
    if ended.any():
        origin = min(origin, int(left[ended].min()))
    group_of_pair = np.array([k * len(stage_index) + s for k, s in pairs], dtype=np.int64)
    group = np.repeat(group_of_pair, np.array(sizes, dtype=np.int64))
    entered_offsets = (entered - origin) // unit
    left_offsets = (left[ended] - origin) // unit
    lengths = (left[ended] - entered[ended]) // unit
    latest = max(int(entered_offsets.max(initial=0)), int(left_offsets.max(initial=0)))
    span = latest + 2
    groups = len(key_index) * len(stage_index)
    if groups * span >= _LIMIT or int(np.abs(lengths).sum()) >= _LIMIT:
        return None
    entered_keys = np.sort(group * span + entered_offsets)
    left_keys = group[ended] * span + left_offsets
    by_end = np.argsort(left_keys, kind="stable")
    running = np.zeros(len(by_end) + 1, dtype=np.int64)
    np.cumsum(lengths[by_end], out=running[1:])
    return StageImage(
        version=version,
        keys=list(key_index),
        stages=list(stage_index),
        origin=origin,
        unit=unit,
        span=span,
        entered=entered_keys,
        left=left_keys[by_end],
        lengths=running,
    )


def _numbers(texts: object) -> Ints:
    """The integers of comma-separated texts, in order."""
    joined = ",".join(texts)  # type: ignore[arg-type]
    if not joined:
        return np.zeros(0, dtype=np.int64)
    return np.array(joined.split(","), dtype=np.int64)


def current(connection: Connection, version: int) -> StageImage | None:
    """The store's copy at `version` (see `kpi.images.current`)."""
    return images.current(connection, version, "stages", load)
