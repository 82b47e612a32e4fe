"""The quality score and rank of kpi-spec.md section 4: partners ranked against each other.

Percentiles need every active partner's values at once, which SQL cannot do portably, so this
finishes in Python what `kpi.aggregates` summed in the database.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Standing:
    score: float | None
    rank: int | None
    percentiles: dict[str, float]  # component -> this partner's percentile


def percentiles(values: Mapping[str, float]) -> dict[str, float]:
    """`100 * (r - 1) / (n - 1)` with r the ascending rank, ties sharing their mean rank;
    a lone value gets 100."""
    n = len(values)
    if n == 1:
        return dict.fromkeys(values, 100.0)
    ordered = sorted(values.items(), key=lambda item: item[1])
    result: dict[str, float] = {}
    i = 0
    while i < n:
        j = i
        while j + 1 < n and ordered[j + 1][1] == ordered[i][1]:
            j += 1
        mean_rank = (i + 1 + j + 1) / 2
        for key, _ in ordered[i : j + 1]:
            result[key] = 100 * (mean_rank - 1) / (n - 1)
        i = j + 1
    return result


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
    ranked = {name: percentiles(values) for name, values in by_component.items() if values}

    scores: dict[str, float | None] = {}
    partner_percentiles: dict[str, dict[str, float]] = {}
    for partner in components:
        mine = {name: ranked[name][partner] for name in ranked if partner in ranked[name]}
        partner_percentiles[partner] = mine
        total_weight = sum(weights[name] for name in mine)
        scores[partner] = (
            sum(weights[name] * pct for name, pct in mine.items()) / total_weight
            if total_weight > 0
            else None
        )
    scored = sorted(score for score in scores.values() if score is not None)
    return {
        partner: Standing(
            score=score,
            # 1 + the number of strictly higher scores, so ties share the better rank
            rank=None if score is None else 1 + len(scored) - bisect_right(scored, score),
            percentiles=partner_percentiles[partner],
        )
        for partner, score in scores.items()
    }
