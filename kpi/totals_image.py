"""An in-memory copy of the running totals per partner and day (`kpi_partner_days`), per
rollups version (see `kpi.images`).

Every partner's period totals are two rows per partner key: 4,000 index seeks at 2,000 partners,
and the ranking of one partner's card needs them all. This module keeps the columns a period
reads (`rollups.PERIOD_FIELDS`: the running totals, the open pipeline as created minus settled,
money as integer millionths) as numpy arrays sorted by (partner key, day), so a boundary for
every partner is one vectorized binary search, with exactly the integers the SQL would subtract.
Counts are kept as int32 when they fit, money as int64: 72 bytes per row, 54 MB for the 752,000
rows of the benchmark's 2,000 partners and 1,000,000 deals (see the README for its load time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Date, func, literal, select

from kpi import images, rollups, schema
from kpi.sqlfuncs import days_between

EPOCH = date(1970, 1, 1)
_ORDINAL = EPOCH.toordinal()  # a day's number is its ordinal (>= 1)
_SPAN = 4_000_000  # more than the ordinal of 9999-12-31: partner index * SPAN + day number
_KEYS_PER_CHUNK = 200

days = schema.kpi_partner_days
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TotalsImage:
    version: int
    keys: list[str]  # partner keys in order (DIRECT, '', for the direct deals)
    firsts: Ints  # each key's first row
    order: Ints  # key index * _SPAN + day number, ascending
    counts: npt.NDArray[np.int32] | Ints  # per row: the COUNT_FIELDS' running totals
    money: Ints  # per row: the MONEY_FIELDS' running totals in millionths

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {key: index for index, key in enumerate(self.keys)}

    def _sums(
        self, start: date | Ints, end: date | Ints, rows: Ints
    ) -> tuple[npt.NDArray[np.bool_], Ints, Ints, Ints]:
        """For key indexes `rows`: whether each has a row before `end`, and its counts and
        money over [start, end) (the open pipeline: at `end`), as int64; `start` and `end` are
        one date for every row, or each row's day ordinals."""
        base = rows * _SPAN
        at_end = np.searchsorted(self.order, base + _ordinals(end), side="left") - 1
        at_start = np.searchsorted(self.order, base + _ordinals(start), side="left") - 1
        firsts = self.firsts[rows]
        has_end = at_end >= firsts
        has_start = at_start >= firsts
        end_rows = np.where(has_end, at_end, 0)
        start_rows = np.where(has_start, at_start, 0)
        result = []
        for table, opens in ((self.counts, _OPEN_COUNTS), (self.money, _OPEN_MONEY)):
            ending = np.where(has_end[:, None], table[end_rows].astype(np.int64), 0)
            starting = np.where(has_start[:, None], table[start_rows].astype(np.int64), 0)
            sums = ending - starting
            sums[:, opens] = ending[:, opens]
            result.append(sums)
        return has_end, rows, result[0], result[1]

    def period_totals(
        self, start: date, end: date, partner_ids: Sequence[str | None] | None = None
    ) -> dict[str | None, tuple[Any, ...]]:
        """`rollups.period_totals`' result from the copy: the same keys (those with a row before
        `end`; None for the direct deals), the same integers and the same money quotients."""
        if partner_ids is None:
            rows = np.arange(len(self.keys), dtype=np.int64)
        else:
            wanted = (rollups.DIRECT if p is None else p for p in partner_ids)
            found = [self.index_of.get(key, -1) for key in dict.fromkeys(wanted)]
            rows = np.array([index for index in found if index >= 0], dtype=np.int64)
        has_end, rows, counts, money = self._sums(start, end, rows)
        keys = [
            None if key == rollups.DIRECT else key
            for key in (self.keys[index] for index in rows[has_end].tolist())
        ]
        columns: list[list[Any]] = [[] for _ in rollups.PERIOD_FIELDS]
        for position, column in zip(_COUNT_POSITIONS, counts[has_end].T.tolist(), strict=True):
            columns[position] = column
        for position, column in zip(_MONEY_POSITIONS, _quotients(money[has_end].T), strict=True):
            columns[position] = column
        return dict(zip(keys, zip(*columns, strict=True), strict=True))

    def windows_around(
        self, anchors: Mapping[str, date], window_days: int
    ) -> dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]:
        """`rollups.windows_around`' result from the copy, for each partner's day in `anchors`:
        the CLOSED_MEASURES over `[day - window_days, day)` and `[day, day + window_days)`, the
        same integers and money quotients; partners without rows are absent, as there."""
        chosen = [
            (pid, index, day.toordinal())
            for pid, day in anchors.items()
            if pid != rollups.DIRECT and (index := self.index_of.get(pid)) is not None
        ]
        if not chosen:
            return {}
        rows = np.array([index for _pid, index, _day in chosen], dtype=np.int64)
        anchor = np.array([day for _pid, _index, day in chosen], dtype=np.int64)
        sides = []
        for start, end in ((anchor - window_days, anchor), (anchor, anchor + window_days)):
            _has_end, _rows, counts, money = self._sums(start, end, rows)
            columns: list[list[Any]] = []
            for name in rollups.CLOSED_MEASURES:
                if name in MONEY_FIELDS:
                    columns.extend(_quotients(money[:, [MONEY_FIELDS.index(name)]].T))
                else:
                    columns.append(counts[:, COUNT_FIELDS.index(name)].tolist())
            sides.append(list(zip(*columns, strict=True)))
        return {
            pid: (before, after)
            for (pid, _index, _day), before, after in zip(chosen, *sides, strict=True)
        }

    def rank_table(self, start: date, end: date, partners: Sequence[str]) -> Floats:
        """The RANK_FIELDS of `partners` over [start, end) as floats, row i being
        `partners[i]`'s (zeros without rows): `rollups.rank_sums`' values, each money sum the same
        correctly rounded quotient of its millionths, with no Python object per partner."""
        found = np.array(
            [self.index_of.get(pid, -1) if pid != rollups.DIRECT else -1 for pid in partners],
            dtype=np.int64,
        )
        known = found >= 0
        _has_end, _rows, counts, money = self._sums(start, end, found[known])
        table = np.zeros((len(partners), len(rollups.RANK_FIELDS)), dtype=np.float64)
        for column, name in enumerate(rollups.RANK_FIELDS):
            if name in MONEY_FIELDS:
                values = np.zeros(len(partners), dtype=np.int64)
                values[known] = money[:, MONEY_FIELDS.index(name)]
                table[:, column] = values / rollups.MICROS
            else:
                table[known, column] = counts[:, COUNT_FIELDS.index(name)]
        return table


def _ordinals(day: date | Ints) -> int | Ints:
    return day.toordinal() if isinstance(day, date) else day


def _quotients(micros: Ints) -> list[list[float]]:
    """Each millionths sum as a currency amount, the quotient Python's int division gives (numpy's
    is the same below 2**53, where the int converts to a float exactly), row by row."""
    if micros.size == 0 or int(np.abs(micros).max()) < _EXACT:
        quotients: list[list[float]] = (micros / rollups.MICROS).tolist()
        return quotients
    return [[value / rollups.MICROS for value in row] for row in micros.tolist()]


_EXACT = 2**53

#: The columns the copy keeps, as `rollups.PERIOD_FIELDS` names them: money apart, in int64.
MONEY_FIELDS = ("won_revenue", "new_revenue", "pipeline_value")
COUNT_FIELDS = tuple(name for name in rollups.PERIOD_FIELDS if name not in MONEY_FIELDS)
_COUNT_POSITIONS = tuple(rollups.PERIOD_FIELDS.index(name) for name in COUNT_FIELDS)
_MONEY_POSITIONS = tuple(rollups.PERIOD_FIELDS.index(name) for name in MONEY_FIELDS)
_OPEN_COUNTS = COUNT_FIELDS.index("pipeline_count")
_OPEN_MONEY = MONEY_FIELDS.index("pipeline_value")
_INT32 = np.iinfo(np.int32)


def _column(name: str) -> Any:
    """The running total of one of the copy's fields in a kpi_partner_days row."""
    if name == "pipeline_count":
        return days.c.created - days.c.settled
    if name == "pipeline_value":
        return days.c.created_value - days.c.settled_value
    return days.c[name]


def load(connection: Connection) -> TotalsImage | None:
    """The copy of the store's running totals (None below `images.MIN_ROWS` rows), read as one
    row per partner key with its days' values as comma-separated lists, in the key's order."""
    version = rollups.version(connection)  # before the rows: see kpi.images
    day_number = days_between(literal(EPOCH, Date), days.c.day)
    values = [day_number, *(_column(name) for name in (*COUNT_FIELDS, *MONEY_FIELDS))]
    query = (
        select(days.c.partner_key, func.count(), *images.lists(connection, values, days.c.day))
        .group_by(days.c.partner_key)
        .order_by(days.c.partner_key)
    )
    keys: list[str] = []
    sizes: list[int] = []
    parts: list[list[Ints]] = [[] for _ in values]
    for rows in images.chunks(connection, query, _KEYS_PER_CHUNK):
        for row in rows:
            keys.append(str(row[0]))
            sizes.append(int(row[1]))
        for index, part in enumerate(parts):
            part.append(images.integers(row[2 + index] for row in rows))
    if rollups.version(connection) != version:
        return None  # a rebuild committed while the rows were read: they may not be `version`'s
    total = sum(sizes)
    if total < images.MIN_ROWS:
        return None
    day = np.concatenate(parts[0]) if parts[0] else np.zeros(0, dtype=np.int64)
    key_index = np.repeat(np.arange(len(keys), dtype=np.int64), np.array(sizes, dtype=np.int64))
    order = key_index * _SPAN + day + _ORDINAL
    del key_index, day
    if len(order) > 1 and (np.diff(order) <= 0).any():
        return None  # lists not in the days' order: never read a boundary from them
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    counts = _columns(parts[1 : 1 + len(COUNT_FIELDS)], total, narrow=True)
    money = _columns(parts[1 + len(COUNT_FIELDS) :], total, narrow=False)
    return TotalsImage(version, keys, firsts, order, counts, money)


def _columns(parts: list[list[Ints]], total: int, narrow: bool) -> Any:
    """One 2-D array of the columns listed in `parts` (emptied as they are copied), int32 when
    `narrow` and every value fits, else int64."""
    fits = narrow and all(
        piece.size == 0 or (piece.min() >= _INT32.min and piece.max() <= _INT32.max)
        for part in parts
        for piece in part
    )
    table = np.empty((total, len(parts)), dtype=np.int32 if fits else np.int64)
    for index, part in enumerate(parts):
        table[:, index] = np.concatenate(part) if part else 0
        part.clear()
    return table


def current(connection: Connection, version: int) -> TotalsImage | None:
    """The store's copy at `version` (see `kpi.images.current`)."""
    return images.current(connection, version, "totals", load)
