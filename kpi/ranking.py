"""The period-wide ranking of kpi-spec.md section 4 (every active partner's quality components,
score and rank), computed as numpy columns and cached per window and data version.

A scorecard ranks its partner among all partners, so each one needs every partner's period
sums. `rank` turns those sums into the six components column-wise (each value the same IEEE
operation, in the same order, as `kpi.formulas.kpis_of` does on one partner's totals, so
scores and ties are unchanged) and hands the columns to `kpi.quality`.

`RankingCache` keeps the rankings of the last few windows for one engine (the bot's answers,
the App Home), each with what it was computed from: the rollups' version (`kpi.rollups.version`,
bumped by every rebuild, i.e. by a sync's writes once refreshed), the partners as read (ids,
names' order, join and leave dates) and the window's survey sums as read. A lookup compares all
three with the current ones, so any write that could change a ranking (a sync, a survey answer
from Slack, a hand-made edit) makes the entry miss: the cache never serves a stale ranking.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

import numpy as np

from kpi.quality import Floats, Standing, standings_of_columns
from kpi.rollups import RANK_FIELDS

#: The sums `rank` reads per partner, in this order: the running totals' part, then the surveys'.
RANK_SUMS = (*RANK_FIELDS, "survey_responses", "promoters", "detractors")
#: Rankings kept per engine: the Home's four periods and the bot's usual ones.
CACHED_WINDOWS = 8
#: Integers up to this are exact as floats: sums beyond it take the plain Python path.
_EXACT = 2.0**53

RankRow = tuple[float, ...]  # a partner's RANK_SUMS


@dataclass
class Ranking:
    """Every active partner's components and standing for one period."""

    partners: list[str]  # the active partners, in the partners' order
    columns: dict[str, Floats]  # component name -> one value per partner (NaN: none)
    standings: dict[str, Standing]

    @property
    def ranked(self) -> int:
        return sum(1 for s in self.standings.values() if s.score is not None)

    @cached_property
    def components(self) -> dict[str, dict[str, Any]]:
        """Each active partner's components as `kpis_of` gives them (what the tier lever
        reads): built only when asked for."""
        lists = {name: column.tolist() for name, column in self.columns.items()}
        result = {}
        for index, partner_id in enumerate(self.partners):
            values: dict[str, Any] = {}
            for name, column in lists.items():
                value = column[index]
                values[name] = None if value != value else value  # NaN: none
            values["courses_completed"] = int(values["courses_completed"])
            result[partner_id] = values
        return result


def rank(
    partners: Sequence[str], sums: Mapping[str, RankRow], weights: Mapping[str, float]
) -> Ranking:
    """The ranking of `partners` (the active ones, in order) from their RANK_SUMS (a partner
    absent from `sums` has all zeros). An empty period (no deal closed, no survey answer, no
    course) ranks nobody: equal zeros would tie everyone at "1st"."""
    zeros = (0.0,) * len(RANK_SUMS)
    table = np.array([sums.get(pid, zeros) for pid in partners], dtype=np.float64)
    return rank_table(partners, table.reshape(len(partners), len(RANK_SUMS)), weights)


def rank_table(partners: Sequence[str], table: Floats, weights: Mapping[str, float]) -> Ranking:
    """`rank` from a table of RANK_SUMS, row i being `partners[i]`'s."""
    if np.abs(table).max(initial=0.0) >= _EXACT:
        raise ValueError("sums too large to rank as floats")  # callers never get near this
    won, lost, revenue, with_amount, cycle, pipeline, courses, answers, promoters, detractors = (
        table.T
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        close_rate = np.where(won + lost != 0, won / (won + lost), np.nan)
        avg_deal_size = np.where(with_amount != 0, revenue / with_amount, np.nan)
        cycle_days = np.where(won != 0, cycle / won, np.nan)
        velocity = np.where(
            np.isnan(close_rate)
            | np.isnan(avg_deal_size)
            | np.isnan(cycle_days)
            | (cycle_days == 0),
            np.nan,
            pipeline * close_rate * avg_deal_size / cycle_days,
        )
        nps = np.where(answers != 0, 100 * ((promoters - detractors) / answers), np.nan)
    columns = {
        "won_revenue": revenue,
        "close_rate": close_rate,
        "avg_deal_size": avg_deal_size,
        "sales_velocity": velocity,
        "partner_nps": nps,
        "courses_completed": courses,
    }
    active = bool(((won != 0) | (lost != 0) | (answers != 0) | (courses != 0)).any())
    ordered = list(partners)
    return Ranking(
        partners=ordered,
        columns=columns,
        standings=standings_of_columns(ordered, columns, weights) if active else {},
    )


@dataclass(frozen=True)
class _Entry:
    rollups: int
    partners: tuple[Any, ...]
    surveys: tuple[Any, ...]
    ranking: Ranking


@dataclass
class RankingCache:
    """The rankings of the last `size` windows, each valid while what it was computed from is
    unchanged (see the module's docstring). About 1 MB per window at 2,000 partners (measured
    with tracemalloc on the benchmark's store), so at most about 8.5 MB per engine."""

    size: int = CACHED_WINDOWS
    hits: int = 0
    misses: int = 0
    _entries: OrderedDict[tuple[date, date], _Entry] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the bot answers in threads

    def get(
        self,
        window: tuple[date, date],
        rollups: int,
        partners: Iterable[Any],
        surveys: Iterable[Any],
    ) -> Ranking | None:
        with self._lock:
            entry = self._entries.get(window)
            if entry is not None:
                self._entries.move_to_end(window)
        if (
            entry is None
            or entry.rollups != rollups
            or entry.partners != tuple(partners)
            or entry.surveys != tuple(surveys)
        ):
            self.misses += 1
            return None
        self.hits += 1
        return entry.ranking

    def put(
        self,
        window: tuple[date, date],
        rollups: int,
        partners: Iterable[Any],
        surveys: Iterable[Any],
        ranking: Ranking,
    ) -> None:
        entry = _Entry(rollups, tuple(partners), tuple(surveys), ranking)
        with self._lock:
            self._entries[window] = entry
            self._entries.move_to_end(window)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
