"""Program tiers earned by quality score, and what a partner needs to reach the next one.

The lever is the single quality component whose improvement closes the gap with the smallest
change relative to that component's median across partners: the partner's percentile in each
component is recomputed as if its value rose just above each better partner's value in turn.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median

from settings.kpi import TierConfig


@dataclass(frozen=True)
class Lever:
    kpi: str
    current: float
    beat: float  # the value to rise above


@dataclass(frozen=True)
class TierStatus:
    earned: str | None  # the tier the score earns (None: below every tier, or no score)
    recorded: str | None  # the tier the CRM records
    next_tier: str | None
    gap: float | None  # quality-score points to the next tier
    lever: Lever | None
    next_min_score: float | None = None  # the published threshold of `next_tier`

    @property
    def differs(self) -> bool:
        return (
            self.earned is not None
            and self.recorded is not None
            and self.earned.casefold() != self.recorded.casefold()
        )


def tier_status(
    tiers: list[TierConfig],
    partner_id: str,
    score: float | None,
    recorded: str | None,
    components: Mapping[str, Mapping[str, float | None]],
    weights: Mapping[str, float],
) -> TierStatus:
    """`tiers` ascending by min_score; `components` holds every active partner's values."""
    if not tiers or score is None:
        return TierStatus(None, recorded, None, None, None)
    earned = _earned(tiers, score)
    above = [t for t in tiers if t.min_score > score]
    if not above:
        return TierStatus(earned.name if earned else None, recorded, None, None, None)
    target = above[0]
    lever = _lever(partner_id, score, target.min_score, components, weights)
    return TierStatus(
        earned.name if earned else None,
        recorded,
        target.name,
        target.min_score - score,
        lever,
        target.min_score,
    )


def earned_tier(tiers: list[TierConfig], score: float | None) -> str | None:
    """The name of the highest tier `score` reaches (`tiers` ascending), or None."""
    earned = _earned(tiers, score) if score is not None else None
    return earned.name if earned else None


def _earned(tiers: list[TierConfig], score: float) -> TierConfig | None:
    return next((t for t in reversed(tiers) if score >= t.min_score), None)


def _lever(
    partner_id: str,
    score: float,
    target: float,
    components: Mapping[str, Mapping[str, float | None]],
    weights: Mapping[str, float],
) -> Lever | None:
    mine = components[partner_id]
    having = [k for k in weights if mine.get(k) is not None]
    total_weight = sum(weights[k] for k in having)
    if total_weight <= 0:
        return None
    best: tuple[float, Lever] | None = None
    for kpi in having:
        current = float(mine[kpi])  # type: ignore[arg-type]
        others = sorted(
            float(v)
            for p, values in components.items()
            if p != partner_id and (v := values.get(kpi)) is not None
        )
        if not others or weights[kpi] == 0:
            continue
        n = len(others) + 1
        now = _percentile(others, current, n)
        for beat in sorted({v for v in others if v >= current}):
            # just above `beat`: every value up to and including it is below the partner
            pct = 100 * bisect_right(others, beat) / (n - 1)
            if score + weights[kpi] * (pct - now) / total_weight >= target - 1e-9:
                scale = abs(median(others)) or 1.0
                cost = (beat - current) / scale
                if best is None or cost < best[0]:
                    best = (cost, Lever(kpi, current, beat))
                break
    return best[1] if best else None


def _percentile(others: list[float], value: float, n: int) -> float:
    less = bisect_left(others, value)
    equal = bisect_right(others, value) - less
    rank = less + 1 + equal / 2
    return 100 * (rank - 1) / (n - 1)
