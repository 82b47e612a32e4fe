"""An in-memory copy of the running totals the ranking reads, per rollups version.

One partner's card ranks every partner, so a period it has not ranked before needs every
partner's running totals at the period's start and end: 8,000 index seeks into
`kpi_partner_days` at 2,000 partners (15-25 ms). This module keeps the seven columns the ranking
reads (`rollups.RANK_FIELDS`, money as integer millionths) as numpy arrays sorted by (partner,
day), so a boundary for every partner is one vectorized binary search (well under a
millisecond), with exactly the integers the SQL would subtract.

The copy is tied to the rollups' version (`rollups.version`, bumped by every rebuild in its own
transaction) read before the rows: a rebuild racing the load leaves the copy labelled with the
older version, so the next question sees the version moved and loads again; a copy is never
used once the stored version differs. One copy per store (shared by every `KpiEngine` of a
process). Its memory is 64 bytes per `kpi_partner_days` row: 48 MB for the 752,000 rows of the
benchmark's 2,000 partners and 1,000,000 deals, loaded in about 1 s of CPU at the first card
after a sync. Stores below `MIN_ROWS` rows are not copied: their seeks are cheap anyway.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Date, Engine, func, literal, select

from kpi import rollups, schema
from kpi.sqlfuncs import days_between

EPOCH = date(1970, 1, 1)
_ORDINAL = EPOCH.toordinal()  # a day's number is its ordinal (>= 1)
_SPAN = 4_000_000  # more than the ordinal of 9999-12-31: partner index * SPAN + day number
MIN_ROWS = 50_000
_CHUNK = 50_000

days = schema.kpi_partner_days
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TotalsImage:
    version: int
    keys: list[str]  # partner keys in order (not the direct deals')
    firsts: Ints  # each key's first row
    order: Ints  # key index * _SPAN + day number, ascending
    values: Ints  # one row per kpi_partner_days row: RANK_FIELDS' running totals

    @cached_property
    def index_of(self) -> dict[str, int]:
        return {key: index for index, key in enumerate(self.keys)}

    def rank_table(self, start: date, end: date, partners: Sequence[str]) -> Floats:
        """The RANK_FIELDS of `partners` over [start, end) as floats, row i being
        `partners[i]`'s (zeros without rows): `rollups.rank_sums`' values, each money sum the same
        correctly rounded quotient of its millionths, with no Python object per partner."""
        found = np.array([self.index_of.get(pid, -1) for pid in partners], dtype=np.int64)
        known = found >= 0
        rows = found[known]
        base = rows * _SPAN
        at_end = np.searchsorted(self.order, base + end.toordinal(), side="left") - 1
        at_start = np.searchsorted(self.order, base + start.toordinal(), side="left") - 1
        firsts = self.firsts[rows]
        has_end = at_end >= firsts
        has_start = at_start >= firsts
        ending = np.where(has_end[:, None], self.values[np.where(has_end, at_end, 0)], 0)
        starting = np.where(has_start[:, None], self.values[np.where(has_start, at_start, 0)], 0)
        sums = ending - starting
        sums[:, _OPEN] = ending[:, _OPEN]
        table = np.zeros((len(partners), sums.shape[1]), dtype=np.float64)
        table[known] = sums
        money = np.zeros(len(partners), dtype=np.int64)
        money[known] = sums[:, _MONEY]
        table[:, _MONEY] = money / rollups.MICROS
        return table


_OPEN = rollups.RANK_FIELDS.index("pipeline_count")
_MONEY = rollups.RANK_FIELDS.index("won_revenue")


def load(connection: Connection) -> TotalsImage | None:
    """The copy of the store's running totals (None below MIN_ROWS rows)."""
    version = rollups.version(connection)  # before the rows: see the module's docstring
    counts = connection.execute(
        select(days.c.partner_key, func.count())
        .where(days.c.partner_key != rollups.DIRECT)
        .group_by(days.c.partner_key)
        .order_by(days.c.partner_key)
    ).all()
    total = sum(int(count) for _key, count in counts)
    if total < MIN_ROWS:
        return None
    keys = [str(key) for key, _count in counts]
    sizes = np.array([int(count) for _key, count in counts], dtype=np.int64)
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    day_number = days_between(literal(EPOCH, Date), days.c.day)
    query = (
        select(
            day_number,
            days.c.won,
            days.c.lost,
            days.c.won_revenue,
            days.c.won_with_amount,
            days.c.cycle_days,
            days.c.created - days.c.settled,
            days.c.courses,
        )
        .where(days.c.partner_key != rollups.DIRECT)
        .order_by(days.c.partner_key, days.c.day)
    )
    table = np.empty((total, 1 + len(rollups.RANK_FIELDS)), dtype=np.int64)
    filled = 0
    # The driver's own cursor: its plain tuples go into numpy ten times faster than Rows.
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        while chunk := cursor.fetchmany(_CHUNK):
            rows = np.array(chunk, dtype=np.int64)
            if filled + len(rows) > total:  # rows written since the count: load another time
                return None
            table[filled : filled + len(rows)] = rows
            filled += len(rows)
    finally:
        cursor.close()
    if filled != total or rollups.version(connection) != version:
        return None  # a rebuild committed while the rows were read: they may not be `version`'s
    key_index = np.repeat(np.arange(len(keys), dtype=np.int64), sizes)
    order = key_index * _SPAN + table[:, 0] + _ORDINAL
    return TotalsImage(version, keys, firsts, order, np.ascontiguousarray(table[:, 1:]))


class _Holder:
    def __init__(self) -> None:
        self.image: TotalsImage | None = None
        self.small_at: int | None = None  # the version at which the store was too small
        self.lock = threading.Lock()


_holders: weakref.WeakKeyDictionary[Engine, _Holder] = weakref.WeakKeyDictionary()
_holders_lock = threading.Lock()


def current(connection: Connection, version: int) -> TotalsImage | None:
    """The store's copy at `version` (loaded now if it is older or missing), or None when the
    store is small, or another thread is loading it (the caller then reads the SQL)."""
    with _holders_lock:
        holder = _holders.get(connection.engine)
        if holder is None:
            holder = _holders[connection.engine] = _Holder()
    image = holder.image
    if image is not None and image.version == version:
        return image
    if holder.small_at == version or not holder.lock.acquire(blocking=False):
        return None
    try:
        holder.image = None  # the old copy's memory goes before the new one is loaded
        loaded = load(connection)
        holder.small_at = version if loaded is None else None
        holder.image = loaded
        return loaded if loaded is not None and loaded.version == version else None
    finally:
        holder.lock.release()
