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
