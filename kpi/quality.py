"""The quality score and rank of kpi-spec.md section 4: partners ranked against each other.

Percentiles need every active partner's values at once, which SQL cannot do portably, so this
finishes in Python what `kpi.aggregates` summed in the database.

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

#: Float scores closer than this (relative) are compared exactly.
_NEAR = 1e-9


@dataclass(frozen=True)
class Standing:
    score: float | None
    rank: int | None
    percentiles: dict[str, float]  # component -> this partner's percentile


class Percentiles:
    """One component's percentiles: `100 * (r - 1) / (n - 1)` with r the ascending rank, ties
    sharing their mean rank; a lone value gets 100. Kept as integers (i + j over 2 * (n - 1)
    for a tie spanning sorted positions i..j), so the float and the exact value are both
    correctly rounded from the same rational, and a Fraction is only built when asked for."""

    def __init__(self, values: Mapping[str, float]) -> None:
        n = len(values)
        self.denominator = 2 * (n - 1)
        self.numerators: dict[str, int] = {}
        ordered = sorted(values.items(), key=lambda item: item[1])
        i = 0
        while i < n:
            j = i
            while j + 1 < n and ordered[j + 1][1] == ordered[i][1]:
                j += 1
            for key, _ in ordered[i : j + 1]:
                self.numerators[key] = i + j  # mean rank (i + 1 + j + 1) / 2, minus 1, doubled
            i = j + 1
        #: the float percentile of each key
        self.values: dict[str, float] = (
            dict.fromkeys(self.numerators, 100.0)
            if self.denominator == 0
            else {key: 100 * k / self.denominator for key, k in self.numerators.items()}
        )

    def __contains__(self, key: str) -> bool:
        return key in self.numerators

    def value(self, key: str) -> float:
        return self.values[key]

    def exact(self, key: str) -> Fraction:
        return self.exact_of(self.numerators[key])

    def exact_of(self, numerator: int) -> Fraction:
        if self.denominator == 0:
            return Fraction(100)
        return Fraction(100 * numerator, self.denominator)


def percentiles(values: Mapping[str, float]) -> dict[str, float]:
    ranked = Percentiles(values)
    return {key: ranked.value(key) for key in values}


def standings(
    components: Mapping[str, Mapping[str, float | None]],
    weights: Mapping[str, float],
) -> dict[str, Standing]:
    """Scores and ranks of the active partners.

    `components` maps each active partner to its component values (None where it has none);
    partners outside it (not active in the period) have no score.
    """
    by_component: dict[str, dict[str, float]] = {name: {} for name in weights}
    for partner, values in components.items():
        for name in weights:
            value = values.get(name)
            if value is not None:
                by_component[name][partner] = value
    ranked = {name: Percentiles(vals) for name, vals in by_component.items() if vals}
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

    def exact_score(partner: str) -> Fraction:
        return exact_of(
            tuple(
                (name, component.numerators[partner])
                for name, component in ranked.items()
                if partner in component.numerators
            )
        )

    scores: dict[str, float | None] = {}
    partner_percentiles: dict[str, dict[str, float]] = {}
    for partner in components:
        mine: dict[str, float] = {}
        weighted = total_weight = 0.0
        for name, component in ranked.items():
            pct = component.values.get(partner)
            if pct is not None:
                mine[name] = pct
                weighted += weights[name] * pct
                total_weight += weights[name]
        partner_percentiles[partner] = mine
        # A weighted mean of percentiles lies in [0, 100]; clamping only removes float error.
        scores[partner] = (
            min(100.0, max(0.0, weighted / total_weight)) if total_weight > 0 else None
        )
    scored = {p: s for p, s in scores.items() if s is not None}
    ranks = _ranks(scored, exact_score)  # also makes exact ties show the very same float
    return {
        partner: Standing(scored.get(partner), ranks.get(partner), partner_percentiles[partner])
        for partner, score in scores.items()
    }


def _ranks(scores: dict[str, float], exact: Callable[[str], Fraction]) -> dict[str, int]:
    """1 + the number of strictly higher scores, so ties share the better rank.

    Scores within float error of each other are replaced in `scores` by their exact value
    rounded once, so partners that tie show the same number.
    """
    order = sorted(scores, key=lambda partner: scores[partner], reverse=True)
    ranks: dict[str, int] = {}
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and _near(scores[order[stop - 1]], scores[order[stop]]):
            stop += 1
        group = order[start:stop]
        if len(group) == 1:
            ranks[group[0]] = start + 1
        else:
            values = {partner: exact(partner) for partner in group}
            scores.update({partner: float(value) for partner, value in values.items()})
            # Highest first: the strictly higher ones are those before a run of equal scores
            # (sorting keeps this O(n log n) when many partners tie, as idle ones do).
            descending = sorted(group, key=values.__getitem__, reverse=True)
            higher = 0
            for index, partner in enumerate(descending):
                if index and values[partner] != values[descending[index - 1]]:
                    higher = index
                ranks[partner] = start + 1 + higher
        start = stop
    return ranks


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= _NEAR * max(1.0, abs(a), abs(b))
