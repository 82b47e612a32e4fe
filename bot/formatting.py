"""How KPI values read to a person: money, rates, days, trends. Shared by every front end
(terminal tables now, Slack templates as Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime
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


#: The decimals each kind of value is shown with (a rate in percentage points).
SHOWN_DECIMALS = {
    "money": 0, "money_per_day": 0, "rate": 0, "days": 0, "nps": 0, "score5": 1, "score100": 1,
}  # fmt: skip


def shown(key: str, value: float) -> float:
    """`value` as it reads once formatted (a rate in points): trends are worked out from these,
    so `62% vs 72%` reads `-10 pts` and `50 days vs 50 days` reads `no change`."""
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    scaled = 100 * value if kind == "rate" else value
    if isinstance(value, int) and kind != "rate":
        return value
    return float(f"{scaled:.{SHOWN_DECIMALS.get(kind, 1)}f}")


def format_change(key: str, current: Any, previous: Any, currency: str = "USD") -> str:
    """The trend from `previous` to `current` as both read, with an arrow that points the way
    the number moved (a sales cycle reads faster or slower); empty when either side is n/a."""
    if current is None or previous is None:
        return ""
    change = shown(key, current) - shown(key, previous)
    if change == 0:
        return "= no change"
    arrow = "▲" if change > 0 else "▼"
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    if kind == "rate":
        text = f"{change:+.0f} pts"
    elif kind in ("money", "money_per_day"):
        text = ("+" if change > 0 else "") + money(change, currency)
    elif kind == "days":
        text = f"{abs(change):.0f} days {'slower' if change > 0 else 'faster'}"
    elif kind == "nps":
        text = f"{change:+.0f}"
    elif kind in ("score100", "score5") or isinstance(change, float):
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


def age(moment: str | datetime | None, now: datetime | None = None) -> str:
    """How old the data is, as a person says it: `12 minutes ago`, `3 days ago`."""
    if moment is None:
        return "never synced"
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def as_of(moment: str | datetime | None, now: datetime | None = None) -> str:
    """When the data was last synced, in every front end alike:
    `2026-12-02 20:37 UTC (8 minutes ago)`."""
    if moment is None:
        return "never: no sync has finished yet (run partner-kpi sync)"
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({age(when, now)})"
