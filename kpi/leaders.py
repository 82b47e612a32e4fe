"""Ordering partners by a KPI: the leaderboard behind `top` and the digests."""

from __future__ import annotations

from typing import Any

from kpi.formulas import KPI_KEYS, LOWER_IS_BETTER

#: What partners can be ranked by: every per-partner KPI and the quality score.
RANKABLE = frozenset(KPI_KEYS) | {"quality_score"}


def value_of(card: dict[str, Any], key: str) -> Any:
    return card["quality_score"] if key == "quality_score" else card["kpis"][key]


def leaderboard(cards: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Best first (the shortest sales cycle leads); partners without a value are left out;
    ties keep name order."""
    with_value = [card for card in cards if value_of(card, key) is not None]
    ordered = sorted(with_value, key=lambda card: card["partner"]["name"].casefold())
    return sorted(ordered, key=lambda card: value_of(card, key), reverse=key not in LOWER_IS_BETTER)


#: `top --by attainment` ranks partners on their goal for one KPI instead of on a KPI.
ATTAINMENT = "attainment"


def goal_of(card: dict[str, Any], kpi: str) -> dict[str, Any] | None:
    """The card's first current `at_least` goal on `kpi` (section 9's order: the earliest
    start, then the earliest end), or None."""
    goals: list[dict[str, Any]] = card.get("goals", [])
    return next((g for g in goals if g["kpi"] == kpi and g["direction"] == "at_least"), None)


def attainment_leaderboard(
    cards: list[dict[str, Any]], kpi: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(card, goal) pairs, the highest attainment first; partners without such a goal, or
    whose attainment is null (target 0, or nothing to measure yet), are left out; ties keep
    name order."""
    pairs = [(card, goal) for card in cards if (goal := goal_of(card, kpi)) is not None]
    pairs = [(card, goal) for card, goal in pairs if goal["attainment"] is not None]
    ordered = sorted(pairs, key=lambda pair: pair[0]["partner"]["name"].casefold())
    return sorted(ordered, key=lambda pair: pair[1]["attainment"], reverse=True)
