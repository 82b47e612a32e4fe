"""The KPI formulas of kpi-spec.md section 3, from the base aggregates of `kpi.aggregates`.

One function, one grain: `kpis_of` turns one partner's (or one pool's) totals into the KPI
values. A ratio or mean over nothing is None, never 0 or NaN; sums and counts over nothing are 0.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kpi.aggregates import ClosedTotals, CustomerTotals, Totals
from kpi.models import Channel
from settings.vocab import CUSTOMER_KPI_KEYS, DEAL_KPI_KEYS

#: The keys of `kpis` in the JSON contract, in the spec's order (section 3's, then section 7's).
DEAL_KEYS = DEAL_KPI_KEYS
CUSTOMER_KEYS = CUSTOMER_KPI_KEYS
KPI_KEYS = DEAL_KEYS + CUSTOMER_KEYS

#: The closed-deal figures of kpi-spec.md section 8 (training impact), in the spec's order.
CLOSED_KEYS = ("deal_count", "won_revenue", "avg_deal_size", "close_rate", "sales_cycle_days")

CLOSED_KEY_SET = frozenset(CLOSED_KEYS)

#: The keys of `kpis_of` that read the survey answers (the other keys skip their query).
SURVEY_KEYS = frozenset({"survey_responses", "partner_nps"})

CHANNEL_KEYS = ("deal_count", "won_revenue", "close_rate")

#: KPIs where a larger value is worse (for trend arrows and "better or worse" wording).
LOWER_IS_BETTER = frozenset(
    {"sales_cycle_days", "customers_lost", "onboarding_days", "tickets_per_customer"}
)


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def sales_velocity(
    pipeline_count: int,
    close_rate: float | None,
    avg_deal_size: float | None,
    cycle_days: float | None,
) -> float | None:
    """Money per day the pipeline is expected to turn into: count * rate * size / cycle.

    None when a factor is unknown or the cycle is 0; 0 when only the pipeline is empty.
    """
    if close_rate is None or avg_deal_size is None or cycle_days is None or cycle_days == 0:
        return None
    return pipeline_count * close_rate * avg_deal_size / cycle_days


def closed_kpis(closed: ClosedTotals) -> dict[str, Any]:
    """The KPIs of the deals closed in the period (also used for one marketing channel)."""
    return {
        "deal_count": closed.won,
        "won_revenue": float(closed.won_revenue),
        "avg_deal_size": ratio(closed.won_revenue, closed.won_with_amount),
        "close_rate": ratio(closed.won, closed.won + closed.lost),
        "sales_cycle_days": ratio(closed.cycle_days, closed.won),
    }


def kpis_of(totals: Totals) -> dict[str, Any]:
    """Every key of `kpis`, in KPI_KEYS' order (built in that order: no reordering copy, as
    every partner's cards call this 4,000 times)."""
    closed = totals.closed
    values = closed_kpis(closed)
    values["pipeline_count"] = totals.pipeline_count
    values["pipeline_value"] = float(totals.pipeline_value)
    values["sales_velocity"] = _velocity(totals, values)
    values["registered_deals"] = totals.registered
    values["deal_success"] = ratio(closed.registered_won, closed.registered_closed)
    values["upsell_rate"] = ratio(closed.upsell_won, closed.won)
    values["net_new_revenue"] = float(closed.new_revenue)
    values["customer_satisfaction"] = ratio(closed.csat_sum, closed.csat_count)
    values["partner_nps"] = _nps(totals)
    values["survey_responses"] = totals.survey_responses
    values["courses_completed"] = totals.courses
    values.update(customer_kpis(totals.customers))
    return values


def kpis_named(totals: Totals, keys: Collection[str]) -> dict[str, Any]:
    """The values `kpis_of(totals)` has for `keys` (each one of its keys), computed alone when
    they are all closed-deal figures (what a goal over its own range usually reads)."""
    values = closed_kpis(totals.closed) if CLOSED_KEY_SET.issuperset(keys) else kpis_of(totals)
    return {key: values.get(key) for key in keys}


def customer_kpis(sums: CustomerTotals) -> dict[str, Any]:
    """kpi-spec.md section 7 from one partner's (or one pool's) customer sums."""
    return {
        "customers_active": sums.active_at_end,
        "customers_gained": sums.gained,
        "customers_lost": sums.lost,
        "portfolio_growth": ratio(sums.active_at_end - sums.active_at_start, sums.active_at_start),
        "account_retention": ratio(sums.retained, sums.active_at_start),
        "mrr_retention": ratio(float(sums.mrr_retained), float(sums.mrr_at_start)),
        "mrr_active": float(sums.mrr_at_end),
        "onboarding_days": ratio(sums.onboarding_days, sums.onboarded),
        "tickets_per_customer": ratio(sums.tickets, sums.in_period),
        "referrals": sums.referrals,
    }


def channel_kpis(closed: ClosedTotals) -> dict[str, Any]:
    """CHANNEL_KEYS of `closed_kpis(closed)`, computed alone (12,000 per every partner's
    cards)."""
    return {
        "deal_count": closed.won,
        "won_revenue": float(closed.won_revenue),
        "close_rate": ratio(closed.won, closed.won + closed.lost),
    }


_CHANNELS = tuple(channel.value for channel in Channel)
_NO_DEALS = ClosedTotals()  # read only


def channels_of(totals: Totals) -> dict[str, dict[str, Any]]:
    """One entry per marketing channel, in Channel's order, even with no deal in it."""
    found = totals.channels
    return {name: channel_kpis(found.get(name, _NO_DEALS)) for name in _CHANNELS}


def stages_of(
    totals: Totals, pipeline: list[str], all_entries: dict[str, int]
) -> list[dict[str, Any]]:
    """One entry per pipeline stage, in order, even with nothing in it."""
    rows = []
    for stage in pipeline:
        mine = totals.stages.get(stage)
        entered = mine.entered if mine else 0
        rows.append(
            {
                "stage": stage,
                "entered": entered,
                "share": ratio(entered, all_entries.get(stage, 0)),
                "avg_days": ratio(mine.stay_days, mine.stays) if mine else None,
            }
        )
    return rows


def _velocity(totals: Totals, closed: dict[str, Any]) -> float | None:
    return sales_velocity(
        totals.pipeline_count,
        closed["close_rate"],
        closed["avg_deal_size"],
        closed["sales_cycle_days"],
    )


def nps(promoters: int, detractors: int, responses: int) -> float | None:
    """kpi-spec.md: 100 x (promoters (9-10) - detractors (0-6)) / responses; None without any."""
    share = ratio(promoters - detractors, responses)
    return None if share is None else 100 * share


def nps_of(scores: list[int]) -> float | None:
    """The NPS of these answers (0-10)."""
    return nps(sum(1 for s in scores if s >= 9), sum(1 for s in scores if s <= 6), len(scores))


def _nps(totals: Totals) -> float | None:
    return nps(totals.promoters, totals.detractors, totals.survey_responses)
