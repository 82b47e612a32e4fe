"""How KPI values read to a person: money, rates, days, trends. Shared by every front end
(terminal tables now, Slack templates as Jinja filters)."""

from __future__ import annotations

from typing import Any

from kpi.formulas import LOWER_IS_BETTER

NOT_AVAILABLE = "n/a"

#: Each KPI's label and kind of value; the kind chooses the formatting.
KPI_LABELS: dict[str, tuple[str, str]] = {
    "deal_count": ("Deals won", "count"),
    "won_revenue": ("Won revenue", "money"),
    "avg_deal_size": ("Avg deal size", "money"),
    "close_rate": ("Close rate", "rate"),
    "sales_cycle_days": ("Sales cycle", "days"),
    "pipeline_count": ("Open pipeline", "count"),
    "pipeline_value": ("Pipeline value", "money"),
    "sales_velocity": ("Sales velocity", "money_per_day"),
    "registered_deals": ("Registered deals", "count"),
    "deal_success": ("Deal success", "rate"),
    "upsell_rate": ("Upsell rate", "rate"),
    "net_new_revenue": ("Net-new revenue", "money"),
    "customer_satisfaction": ("Customer satisfaction", "score5"),
    "partner_nps": ("Partner NPS", "nps"),
    "survey_responses": ("Survey answers", "count"),
    "courses_completed": ("Courses completed", "count"),
    "active_partners": ("Active partners", "count"),
    "partners_joined": ("Partners joined", "count"),
    "partners_left": ("Partners left", "count"),
    "partner_count_change": ("Change in partners", "signed"),
    "partner_revenue": ("Partner revenue", "money"),
    "partner_revenue_share": ("Partner share of revenue", "rate"),
    "quality_score": ("Quality score", "score100"),
}

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(value: float, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency)
    sign = "-" if value < 0 else ""
    amount = f"{abs(value):,.0f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def format_value(key: str, value: Any, currency: str = "USD") -> str:
    """A KPI value as a person reads it; None is n/a."""
    if value is None:
        return NOT_AVAILABLE
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    if kind == "money":
        return money(value, currency)
    if kind == "money_per_day":
        return f"{money(value, currency)}/day"
    if kind == "rate":
        return f"{100 * value:.0f}%"
    if kind == "days":
        return f"{value:.0f} days"
    if kind == "nps":
        return f"{value:+.0f}"
    if kind == "score5":
        return f"{value:.1f}/5"
    if kind == "score100":
        return f"{value:.1f}"
    if kind == "signed":
        return f"{value:+d}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def format_change(key: str, current: Any, previous: Any, currency: str = "USD") -> str:
    """The trend `current - previous` with an arrow that points the way the number moved;
    empty when either side is n/a."""
    if current is None or previous is None:
        return ""
    change = current - previous
    if change == 0:
        return "= no change"
    arrow = "▲" if change > 0 else "▼"
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    if kind == "rate":
        text = f"{100 * change:+.0f} pts"
    elif kind in ("money", "money_per_day"):
        text = ("+" if change > 0 else "") + money(change, currency)
    elif kind == "days":
        text = f"{change:+.0f} days"
    elif kind in ("nps", "score100"):
        text = f"{change:+.1f}"
    elif kind == "score5":
        text = f"{change:+.2f}"
    elif isinstance(change, float):
        text = f"{change:+,.1f}"
    else:
        text = f"{change:+,}"
    return f"{arrow} {text}"


def is_improvement(key: str, current: Any, previous: Any) -> bool | None:
    """Whether the change is good news (a shorter sales cycle is); None when unknown or equal."""
    if current is None or previous is None or current == previous:
        return None
    better = current > previous
    return not better if key in LOWER_IS_BETTER else better


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
