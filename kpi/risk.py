"""Partners at risk: rules over a period's cards that a partner manager would act on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kpi.engine import KpiEngine
from settings.periods import Period
from templates import word


@dataclass(frozen=True)
class RiskRules:
    close_rate_drop_points: float = 15.0  # close rate down more than this, in points
    detractor_nps: float = 0.0  # NPS below this
    stale_pipeline_share: float = 0.5  # more than this share of open deals past their date
    customers_lost: int = 2  # at least this many customers lost, and more lost than gained


@dataclass(frozen=True)
class AtRisk:
    card: dict[str, Any]
    reasons: tuple[str, ...]


def partners_at_risk(
    cards: list[dict[str, Any]],
    active_ids: set[str],
    stale_open: dict[str, int],
    rules: RiskRules = RiskRules(),
) -> list[AtRisk]:
    """Active partners that won nothing in the period, whose close rate fell sharply, whose
    partners are detractors, whose pipeline is mostly past its close dates, or who are losing
    customers (lost at least two, more than they gained); most reasons first."""
    found = []
    for card in cards:
        partner_id = card["partner"]["id"]
        if partner_id not in active_ids:
            continue
        now, before = card["kpis"], card["previous"]
        reasons = []
        if now["deal_count"] == 0:
            reasons.append(f"no deal won in {card['period']['name']}")
        if now["close_rate"] is not None and before["close_rate"] is not None:
            drop = 100 * (before["close_rate"] - now["close_rate"])
            if drop > rules.close_rate_drop_points:
                reasons.append(f"close rate down {drop:.0f} points")
        if now["partner_nps"] is not None and now["partner_nps"] < rules.detractor_nps:
            reasons.append(f"partner NPS {now['partner_nps']:+.0f}")
        stale = stale_open.get(partner_id, 0)
        if now["pipeline_count"] and stale / now["pipeline_count"] > rules.stale_pipeline_share:
            reasons.append(f"{stale} of {now['pipeline_count']} open deals past their close date")
        lost, gained = now["customers_lost"], now["customers_gained"]
        if lost >= rules.customers_lost and lost > gained:
            reasons.append(word("risk_losing_customers", lost=lost, gained=gained))
        if reasons:
            found.append(AtRisk(card, tuple(reasons)))
    return sorted(found, key=lambda item: (-len(item.reasons), item.card["partner"]["name"]))


def risks_in(
    engine: KpiEngine, period: Period, cards: list[dict[str, Any]], rules: RiskRules = RiskRules()
) -> list[AtRisk]:
    """`partners_at_risk` over `cards` of `period`, with the partners active at its end and
    their open deals past the close date read from the store."""
    active = {p.id for p in engine.partners() if p.active_at(period.end)}
    stale = {key: count for key, count in engine.open_past_close(period).items() if key}
    return partners_at_risk(cards, active, stale, rules)
