"""The words app.yaml shares with the normalized records (kpi.models) and the KPI core: a
deal's type, a lead's marketing channel, and the names of the KPIs."""

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


#: The numeric keys of a partner's `kpis`, in the spec's order: section 3's (deals, surveys,
#: trainings), then section 7's (customer outcomes). The KPI core (kpi.formulas), alerts and
#: goals all name KPIs from these lists.
DEAL_KPI_KEYS = (
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
)
CUSTOMER_KPI_KEYS = (
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
PARTNER_KPI_KEYS = DEAL_KPI_KEYS + CUSTOMER_KPI_KEYS

#: The keys only the program's `kpis` carry (section 5).
PROGRAM_ONLY_KPI_KEYS = (
    "active_partners",
    "partners_joined",
    "partners_left",
    "partner_count_change",
    "partner_revenue",
    "partner_revenue_share",
)
