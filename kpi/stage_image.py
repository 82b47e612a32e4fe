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
sync's own transaction from the changes it writes: every `Store.refresh_stays` caller runs it
there), so the copy is tied to that version.
Memory: 8 bytes per stage change and 16 per ended stay (78 MB for the benchmark's 3.9 million);
its load, ~1.5 s of CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, literal, select

from kpi import images, rollups, schema
from kpi.aggregates import StageCounts
from kpi.sqlfuncs import epoch_micros

Ints = npt.NDArray[np.int64]
_MICROS_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)
_GROUPS_PER_CHUNK = 100
_PARSED_AT_ONCE = 65_536  # moments parsed per step
_LIMIT = 2**62  # composite keys and length sums stay below it (int64 with room)

changes = schema.stage_changes
keys_table = schema.kpi_partner_keys


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
        micros = micros_since_1970(moment) - self.origin
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


def micros_since_1970(moment: datetime) -> int:
    """A moment (naive: UTC) as microseconds since 1970 (exactly)."""
    delta = (
        moment.replace(tzinfo=None) - _EPOCH
        if moment.tzinfo is None
        else (moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH)
    )
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def load(connection: Connection, as_text: bool = True) -> StageImage | None:
    """The copy of the store's stage changes (None below `images.MIN_ROWS` of them, or when its
    integers would not fit), read as one row per (partner key, stage) with its moments as
    comma-separated lists: a few thousand rows for the database to send, not millions. SQLite's
    moments come as their stored text, parsed here (its date functions cost three times the
    read); any text not in SQLAlchemy's form makes it read them converted (`as_text=False`)."""
    version = rollups.version(connection)  # before the rows: see kpi.images
    known = changes.c.partner_key.in_(select(keys_table.c.partner_key))
    textual = as_text and connection.dialect.name == "sqlite"
    if textual:
        entered_at: Any = changes.c.entered_at
        left_at: Any = func.coalesce(changes.c.left_at, literal(_NO_MOMENT))
    else:
        entered_at = epoch_micros(changes.c.entered_at)
        left_at = func.coalesce(epoch_micros(changes.c.left_at), -1)
    lists = images.lists(connection, [entered_at, left_at], changes.c.id)
    parse = micros_of_texts if textual else images.integers
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
    malformed = True  # until every chunk parsed
    for rows in images.chunks(connection, query, _GROUPS_PER_CHUNK):
        for key, stage, count, _entered, _left in rows:
            pairs.append(
                (
                    key_index.setdefault(key, len(key_index)),
                    stage_index.setdefault(stage, len(stage_index)),
                )
            )
            sizes.append(int(count))
        try:
            entered_parts.append(parse(row[3] for row in rows))
            left_parts.append(parse(row[4] for row in rows))
        except ValueError:
            break
    else:
        malformed = False
    if malformed:
        return load(connection, as_text=False)
    if rollups.version(connection) != version:
        return None  # a rebuild committed while the rows were read: they may not be `version`'s
    entered = np.concatenate(entered_parts) if entered_parts else np.zeros(0, dtype=np.int64)
    del entered_parts
    left = np.concatenate(left_parts) if left_parts else np.zeros(0, dtype=np.int64)
    del left_parts
    total = len(entered)
    if total < images.MIN_ROWS or len(left) != total:
        return None
    ended = left >= 0
    group = np.repeat(
        np.array([k * len(stage_index) + s for k, s in pairs], dtype=np.int32),
        np.array(sizes, dtype=np.int64),
    )
    left = left[ended]  # the stays that ended (the rest freed)
    lengths = entered[ended]
    np.subtract(left, lengths, out=lengths)
    origin = min(int(entered.min()), int(left.min(initial=entered.min()))) if total else 0
    whole_seconds = not (entered % 1_000_000).any() and not (left % 1_000_000).any()
    unit = 1_000_000 if whole_seconds else 1
    # in place from here, one temporary at a time: the peak stays near the image's own size
    for offsets in (entered, left, lengths):
        if offsets is not lengths:
            offsets -= origin
        offsets //= unit
    span = max(int(entered.max(initial=0)), int(left.max(initial=0))) + 2
    if len(key_index) * len(stage_index) * span >= _LIMIT or int(np.abs(lengths).sum()) >= _LIMIT:
        return None
    _add_groups(entered, group, span)
    entered.sort()
    group = group[ended]
    del ended
    _add_groups(left, group, span)
    del group
    if len(left) > 1 and (np.diff(left) < 0).any():  # SQLite's index order already sorts them
        by_end = np.argsort(left, kind="stable")
        left = left[by_end]
        lengths = lengths[by_end]
        del by_end
    running = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=running[1:])
    del lengths
    return StageImage(
        version=version,
        keys=list(key_index),
        stages=list(stage_index),
        origin=origin,
        unit=unit,
        span=span,
        entered=entered,
        left=left,
        lengths=running,
    )


_NO_MOMENT = "0000-00-00 00:00:00.000000"  # a stay not ended, in the text form (-1 once parsed)
_WIDTH = len(_NO_MOMENT) + 1  # with its comma
_SEPARATORS = {4: "-", 7: "-", 10: " ", 13: ":", 16: ":", 19: ".", 26: ","}
_DIGITS = [column for column in range(_WIDTH - 1) if column not in _SEPARATORS]


def _weighted(digits: npt.NDArray[np.uint8], terms: list[tuple[int, int]]) -> Ints:
    total = np.zeros(len(digits), dtype=np.int64)
    for column, weight in terms:
        total += digits[:, column].astype(np.int64) * weight
    return total


def _terms() -> list[list[tuple[int, int]]]:
    """For year, month, day, second of the day and microsecond: (digit column, weight) each."""
    fields = [((0, 4), 1), ((5, 7), 1), ((8, 10), 1), ((11, 13), 3600), ((14, 16), 60)]
    fields += [((17, 19), 1), ((20, 26), 1)]
    targets = [0, 1, 2, 3, 3, 3, 4]  # hours, minutes and seconds go to the second of the day
    terms: list[list[tuple[int, int]]] = [[] for _ in range(5)]
    for ((first, last), scale), target in zip(fields, targets, strict=True):
        for column in range(first, last):
            terms[target].append((_DIGITS.index(column), scale * 10 ** (last - 1 - column)))
    return terms


_TERMS = _terms()


def _add_groups(offsets: Ints, group: npt.NDArray[np.int32], span: int) -> None:
    """offsets += group * span, in place, in steps (a bounded temporary)."""
    for first in range(0, len(offsets), _PARSED_AT_ONCE):
        part = slice(first, first + _PARSED_AT_ONCE)
        offsets[part] += group[part].astype(np.int64) * span


def micros_of_texts(texts: Iterable[str]) -> Ints:
    """Microseconds since 1970 of comma-separated moments in SQLAlchemy's SQLite form
    (`YYYY-MM-DD HH:MM:SS.ffffff`), `_NO_MOMENT` as -1; ValueError for any other text."""
    joined = ",".join([*texts, ""])  # each moment with its comma
    raw = joined.encode("ascii", errors="replace")
    del joined
    if len(raw) % _WIDTH:
        raise ValueError("a moment not in SQLAlchemy's SQLite form")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _WIDTH)
    for column, separator in _SEPARATORS.items():
        if (table[:, column] != ord(separator)).any():
            raise ValueError("a moment not in SQLAlchemy's SQLite form")
    micros = np.empty(len(table), dtype=np.int64)
    for first in range(0, len(table), _PARSED_AT_ONCE):  # bounds the float temporaries
        part = slice(first, first + _PARSED_AT_ONCE)
        micros[part] = _micros_of_table(table[part])
    return micros


def _micros_of_table(table: npt.NDArray[np.uint8]) -> Ints:
    digits = table[:, _DIGITS] - np.uint8(ord("0"))  # wraps: a non-digit is above 9
    if (digits > 9).any():
        raise ValueError("a moment not in SQLAlchemy's SQLite form")
    # year, month, day, second of the day, microsecond: sums of digits times powers of ten
    year, month, day, second, micro = (_weighted(digits, terms) for terms in _TERMS)
    missing = year == 0
    month = np.where(missing, 1, month)
    day = np.where(missing, 1, day)
    if ((month < 1) | (month > 12) | (day < 1) | (day > 31)).any():
        raise ValueError("a moment not in SQLAlchemy's SQLite form")
    micros = (_days_since_1970(year, month, day) * 86_400 + second) * 1_000_000 + micro
    result: Ints = np.where(missing, -1, micros)
    return result


def _days_since_1970(year: Ints, month: Ints, day: Ints) -> Ints:
    """Days from 1970-01-01 to each proleptic Gregorian date (Howard Hinnant's
    days_from_civil, in integer arithmetic)."""
    year = year - (month <= 2)
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    days: Ints = era * 146_097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719_468
    return days


def current(connection: Connection, version: int) -> StageImage | None:
    """The store's copy at `version` (see `kpi.images.current`)."""
    return images.current(connection, version, "stages", load)
