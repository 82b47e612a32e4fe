"""The words app.yaml shares with the normalized records (kpi.models): a deal's type and a
lead's marketing channel."""

from __future__ import annotations

from enum import StrEnum


class DealType(StrEnum):
    NEW = "new"
    UPSELL = "upsell"
    RENEWAL = "renewal"


class Channel(StrEnum):
    PAID = "paid"
    EARNED = "earned"
    OWNED = "owned"
    OTHER = "other"


#: The numeric keys of a partner's `kpis` (kpi-spec sections 3 and 7), which alerts (and
#: goals) may name. The KPI core's own list (kpi.formulas.KPI_KEYS) must stay within it
#: (tests/test_alerts.py checks that), so that every key the engine computes can be watched.
PARTNER_KPI_KEYS = (
    "deal_count",
    "won_revenue",
    "avg_deal_size",
    "close_rate",
    "sales_cycle_days",
    "pipeline_count",
    "pipeline_value",
    "sales_velocity",
    "registered_deals",
    "deal_success",
    "upsell_rate",
    "net_new_revenue",
    "customer_satisfaction",
    "partner_nps",
    "survey_responses",
    "courses_completed",
    "customers_active",
    "customers_gained",
    "customers_lost",
    "portfolio_growth",
    "account_retention",
    "mrr_retention",
    "mrr_active",
    "onboarding_days",
    "tickets_per_customer",
    "referrals",
)

#: The keys only the program's `kpis` carry (section 5).
PROGRAM_ONLY_KPI_KEYS = (
    "active_partners",
    "partners_joined",
    "partners_left",
    "partner_count_change",
    "partner_revenue",
    "partner_revenue_share",
)
