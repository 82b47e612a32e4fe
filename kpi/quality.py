"""The quality score and rank of kpi-spec.md section 4: partners ranked against each other.

Percentiles need every active partner's values at once, which SQL cannot do portably, so this
finishes in Python what `kpi.aggregates` summed in the database. Every scorecard ranks all
partners (2,000 in the benchmark), so the per-partner work runs as numpy array operations,
each the same IEEE operation, in the same order, as the plain arithmetic it replaces.

Scores are compared unrounded and exactly: percentiles are rationals (`100 * (i + j) /
(2 * (n - 1))` for a tie spanning sorted positions i..j) and weights are the decimals written in
app.yaml, so two partners whose percentiles are a permutation of each other tie even where their
float scores differ in the last bit. Floats order partners; exact fractions are computed only
for scores within float error of each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import numpy.typing as npt

#: Float scores closer than this (relative) are compared exactly.
_NEAR = 1e-9

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Standing:
    score: float | None
    rank: int | None


class Percentiles:
    """One component's percentiles over n partners: `100 * (r - 1) / (m - 1)` with r the
    ascending rank among the m partners that have a value, ties sharing their mean rank; a lone
    value gets 100. Kept as integer numerators (i + j over 2 * (m - 1) for a tie spanning sorted
    positions i..j; -1 where a partner has no value), so the float and the exact value are both
    correctly rounded from the same rational, and a Fraction is only built when asked for."""

    def __init__(self, values: Floats) -> None:
        present = ~np.isnan(values)
        self.count = int(present.sum())
        self.denominator = 2 * (self.count - 1)
        self.numerators: Ints = np.full(values.shape, -1, dtype=np.int64)
        if self.count:
            _, positions, ties = np.unique(values[present], return_inverse=True, return_counts=True)
            first = np.cumsum(ties) - ties
            self.numerators[present] = (2 * first + ties - 1)[positions]
        #: the float percentile of each partner (NaN where it has no value)
        self.values: Floats = np.where(
            present,
            100.0 if self.denominator == 0 else (100 * self.numerators) / self.denominator,
            np.nan,
        )

    def exact_of(self, numerator: int) -> Fraction:
        if self.denominator == 0:
            return Fraction(100)
        return Fraction(100 * numerator, self.denominator)


def standings_of_columns(
    partners: list[str], columns: Mapping[str, Floats], weights: Mapping[str, float]
) -> dict[str, Standing]:
    """Scores and ranks of the active `partners` from one array per component, position i
    being `partners[i]`'s value (NaN where it has none); partners not listed (not active in the
    period) have no score."""
    ranked = {name: Percentiles(columns[name]) for name in weights if name in columns}
    ranked = {name: column for name, column in ranked.items() if column.count}
    weighted = np.zeros(len(partners))
    total_weight = np.zeros(len(partners))
    for name, column in ranked.items():  # in the weights' order, as a plain sum would add
        has = column.numerators >= 0
        weighted = np.where(has, weighted + weights[name] * column.values, weighted)
        total_weight = np.where(has, total_weight + weights[name], total_weight)
    scored = total_weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        # A weighted mean of percentiles lies in [0, 100]; clipping only removes float error.
        scores = np.clip(weighted / total_weight, 0.0, 100.0)
    exact_weights = {name: Fraction(str(weight)) for name, weight in weights.items()}

    @cache
    def exact_of(signature: tuple[tuple[str, int], ...]) -> Fraction:
        """The exact score of a set of (component, percentile numerator): partners with the
        same one (idle partners, often hundreds) share one computation."""
        total = sum(exact_weights[name] for name, _ in signature)
        weighted = sum(
            exact_weights[name] * ranked[name].exact_of(numerator) for name, numerator in signature
        )
        return Fraction(weighted) / total

    def exact_score(index: int) -> Fraction:
        return exact_of(
            tuple(
                (name, int(column.numerators[index]))
                for name, column in ranked.items()
                if column.numerators[index] >= 0
            )
        )

    indexes = np.flatnonzero(scored)
    final, ranks = _ranks(indexes, scores[indexes], exact_score)
    result = dict.fromkeys(partners, Standing(None, None))
    for index, score, rank in zip(indexes.tolist(), final, ranks, strict=True):
        result[partners[index]] = Standing(score, rank)
    return result


def _ranks(
    indexes: Ints, scores: Floats, exact: Callable[[int], Fraction]
) -> tuple[list[float], list[int]]:
    """Each score (as shown) and rank: 1 + the number of strictly higher scores, so ties share
    the better rank.

    Scores within float error of each other are replaced by their exact value rounded once, so
    partners that tie show the same number."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    near = np.abs(ordered[1:] - ordered[:-1]) <= _NEAR * np.maximum(
        1.0, np.maximum(np.abs(ordered[1:]), np.abs(ordered[:-1]))
    )
    shown = scores.tolist()
    ranks = [0] * len(shown)
    # runs of near scores: each starts where the previous pair is not near
    starts = [0, *(np.flatnonzero(~near) + 1).tolist()]
    stops = [*starts[1:], len(shown)]
    positions = order.tolist()
    for start, stop in zip(starts, stops, strict=True):
        if stop - start == 1:
            ranks[positions[start]] = start + 1
            continue
        group = positions[start:stop]
        values = {position: exact(int(indexes[position])) for position in group}
        # Highest first: the strictly higher ones are those before a run of equal scores
        # (sorting keeps this O(n log n) when many partners tie, as idle ones do).
        descending = sorted(group, key=values.__getitem__, reverse=True)
        higher = 0
        for rank_index, position in enumerate(descending):
            if rank_index and values[position] != values[descending[rank_index - 1]]:
                higher = rank_index
            ranks[position] = start + 1 + higher
            shown[position] = float(values[position])
    return shown, ranks
