"""An in-memory copy of the closed deals every partner's channel figures read, per rollups
version (see `kpi.images`).

Every partner's cards show the closed deals of each marketing channel. In SQL that is a range
of `ix_deals_closed` over the window, grouped through a temporary B-tree (0.16 to 0.26 s for
last-90d at a million deals). Here the won and lost deals with a close date are arrays sorted by
that date, each with its (partner, channel) group and what `ClosedTotals` sums of it: a window
is a slice, and every group's sums one `np.bincount` per field. Deals are written only with a
mark that bumps the rollups' version (their trigger marks their partner), so the copy is tied
to it.
Memory: 31 bytes per closed deal (29 MB for the benchmark's 928,000); its load, ~2 s of CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Date, Integer, and_, case, cast, func, literal, select

from kpi import images, rollups, schema
from kpi.aggregates import ClosedTotals
from kpi.sqlfuncs import days_between

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
_EPOCH = date(1970, 1, 1)
_DAYS_PER_CHUNK = 100
_SEPARATOR = "\x1f"  # between ids and channels in a list (ASCII's unit separator)

d = schema.deals

#: Bits of a deal's flags: ClosedTotals' count fields, each 1 when the deal counts in it.
_FLAGS = (
    "won",
    "lost",
    "won_with_amount",
    "registered_closed",
    "registered_won",
    "upsell_won",
    "csat_count",
)


@dataclass(frozen=True)
class DealImage:
    version: int
    groups: list[tuple[str | None, str]]  # (partner id, channel) of each group
    days: npt.NDArray[np.int32]  # each deal's close date (days since 1970), ascending
    group: npt.NDArray[np.int32]  # each deal's group
    flags: npt.NDArray[np.uint8]  # each deal's _FLAGS bits
    cycle: npt.NDArray[np.int32]  # a won deal's days from creation to close (>= 0), else 0
    csat: npt.NDArray[np.int16]  # a won deal's CSAT, else 0
    won_amount: Floats  # a won deal's amount (0 when null), else 0
    new_amount: Floats  # a won new deal's amount (0 when null), else 0

    def channels(self, start: date, end: date) -> list[tuple[str | None, str, ClosedTotals]]:
        """(partner id, channel, its ClosedTotals) of each group with a deal closed in
        [start, end)."""
        low, high = np.searchsorted(
            self.days, [(start - _EPOCH).days, (end - _EPOCH).days], side="left"
        )
        group = self.group[low:high]
        size = len(self.groups)
        present = np.flatnonzero(np.bincount(group, minlength=size))
        sums: dict[str, list[Any]] = {}
        flags = self.flags[low:high]
        for bit, name in enumerate(_FLAGS):
            counted = np.bincount(group, weights=(flags >> bit) & 1, minlength=size)
            sums[name] = counted[present].astype(np.int64).tolist()
        for name, column in (("cycle_days", self.cycle), ("csat_sum", self.csat)):
            total = np.bincount(group, weights=column[low:high], minlength=size)
            sums[name] = total[present].astype(np.int64).tolist()
        for name, amounts in (("won_revenue", self.won_amount), ("new_revenue", self.new_amount)):
            total = np.bincount(group, weights=amounts[low:high], minlength=size)
            sums[name] = total[present].tolist()
        rows = zip(*(sums[name] for name in _CLOSED_FIELDS), strict=True)
        return [
            (*self.groups[index], ClosedTotals(*row))
            for index, row in zip(present.tolist(), rows, strict=True)
        ]


_CLOSED_FIELDS = [item.name for item in fields(ClosedTotals)]


def load(connection: Connection) -> DealImage | None:
    """The copy of the store's closed deals (None below `images.MIN_ROWS` of them), read as one
    row per close date with its deals' values as lists (a covering index's range, in order)."""
    version = rollups.version(connection)  # before the rows: see kpi.images
    won = d.c.status == "won"
    has_amount = d.c.amount.is_not(None)
    registered = d.c.registered.is_(True)
    conditions = [
        won,
        d.c.status == "lost",
        and_(won, has_amount),
        registered,
        and_(won, registered),
        and_(won, d.c.type == "upsell"),
        and_(won, d.c.csat.is_not(None)),
    ]
    flags = sum(
        (case((condition, literal(1 << bit)), else_=literal(0)) for bit, condition in
         enumerate(conditions)),
        start=literal(0),
    )  # fmt: skip
    cycle = days_between(d.c.created_on, d.c.closed_on)
    exact = _exact_text(connection)
    numbers = [
        flags,
        case((and_(won, cycle > 0), cycle), else_=0),
        case((and_(won, d.c.csat.is_not(None)), cast(d.c.csat, Integer)), else_=0),
        exact(case((and_(won, has_amount), d.c.amount), else_=0.0)),
        exact(case((and_(won, has_amount, d.c.type == "new"), d.c.amount), else_=0.0)),
    ]
    names = [func.coalesce(d.c.partner_id, literal(rollups.DIRECT)), d.c.channel]
    query = (
        select(
            days_between(literal(_EPOCH, Date), d.c.closed_on),
            func.count(),
            *images.lists(connection, names, d.c.id, _SEPARATOR),
            *images.lists(connection, numbers, d.c.id),
        )
        .where(d.c.status.in_(("won", "lost")), d.c.closed_on.is_not(None))
        .group_by(d.c.closed_on)  # a range of ix_deals_closed, which covers every column
    )
    group_of: dict[tuple[str, str], int] = {}
    day_parts: list[Ints] = []
    group_parts: list[Ints] = []
    parts: list[list[npt.NDArray[Any]]] = [[] for _ in numbers]
    for rows in images.chunks(connection, query, _DAYS_PER_CHUNK):
        for row in rows:
            day_parts.append(np.full(int(row[1]), int(row[0]), dtype=np.int64))
            pairs = zip(row[2].split(_SEPARATOR), row[3].split(_SEPARATOR), strict=True)
            found = [group_of.setdefault(pair, len(group_of)) for pair in pairs]
            group_parts.append(np.array(found, dtype=np.int64))
        for index, part in enumerate(parts):
            parse = images.integers if index < 3 else images.floats
            part.append(parse(row[4 + index] for row in rows))
    if rollups.version(connection) != version:
        return None  # a rebuild committed while the rows were read: they may not be `version`'s
    days = np.concatenate(day_parts) if day_parts else np.zeros(0, dtype=np.int64)
    if len(days) < images.MIN_ROWS:
        return None
    flag, cycle_days, csat, won_amount, new_amount = (
        np.concatenate(part) if part else np.zeros(0) for part in parts
    )
    group = np.concatenate(group_parts) if group_parts else np.zeros(0, dtype=np.int64)
    if not len(days) == len(group) == len(flag) == len(won_amount):
        return None  # lists that do not line up (a separator inside a partner id)
    groups = [(None if key == rollups.DIRECT else key, channel) for key, channel in group_of]
    return DealImage(  # the rows came by close date: already in order
        version=version,
        groups=groups,
        days=days.astype(np.int32),
        group=group.astype(np.int32),
        flags=flag.astype(np.uint8),
        cycle=cycle_days.astype(np.int32),
        csat=csat.astype(np.int16),
        won_amount=won_amount.astype(np.float64),
        new_amount=new_amount.astype(np.float64),
    )


def _exact_text(connection: Connection) -> Callable[[Any], Any]:
    """A float column as text that reads back as the same float: 17 significant digits on
    SQLite; on PostgreSQL `images.lists`' cast gives its shortest exact form."""
    if connection.dialect.name == "postgresql":
        return lambda column: column
    return lambda column: func.printf("%!.17g", column)


def current(connection: Connection, version: int) -> DealImage | None:
    """The store's copy at `version` (see `kpi.images.current`)."""
    return images.current(connection, version, "deals", load)
