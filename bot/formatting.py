"""How KPI values read to a person: money, rates, days, trends. Shared by every front end
(terminal tables now, Slack templates as Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kpi.formulas import LOWER_IS_BETTER
from templates import word, word_table

NOT_AVAILABLE = word("not_available")

#: Each KPI's kind of value, which chooses its formatting; its label is in templates/words.yaml.
KPI_KINDS: dict[str, str] = {
    "deal_count": "count",
    "won_revenue": "money",
    "avg_deal_size": "money",
    "close_rate": "rate",
    "sales_cycle_days": "days",
    "pipeline_count": "count",
    "pipeline_value": "money",
    "sales_velocity": "money_per_day",
    "registered_deals": "count",
    "deal_success": "rate",
    "upsell_rate": "rate",
    "net_new_revenue": "money",
    "customer_satisfaction": "score5",
    "partner_nps": "nps",
    "survey_responses": "count",
    "courses_completed": "count",
    "customers_active": "count",
    "customers_gained": "count",
    "customers_lost": "count",
    "portfolio_growth": "rate",
    "account_retention": "rate",
    "mrr_retention": "rate",
    "mrr_active": "money",
    "onboarding_days": "days",
    "tickets_per_customer": "number",
    "referrals": "count",
    "active_partners": "count",
    "partners_joined": "count",
    "partners_left": "count",
    "partner_count_change": "signed",
    "partner_revenue": "money",
    "partner_revenue_share": "rate",
    "quality_score": "score100",
}
#: Each KPI's label and kind of value.
KPI_LABELS: dict[str, tuple[str, str]] = {
    key: (word_table("kpi_labels")[key], kind) for key, kind in KPI_KINDS.items()
}

#: The kinds of value with a format of their own in words.yaml (others are plain numbers).
VALUE_FORMATS = frozenset(word_table("value_formats"))

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(value: float, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency)
    sign = "-" if value < 0 else ""
    amount = f"{abs(value):,.0f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def format_value(key: str, value: Any, currency: str = "USD") -> str:
    """A KPI value as a person reads it (templates/words.yaml `value_formats`); None is n/a."""
    if value is None:
        return NOT_AVAILABLE
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    if kind in ("money", "money_per_day"):
        return word(f"value_formats.{kind}", money=money(value, currency))
    if kind == "rate":
        return word("value_formats.rate", value=100 * value)
    if kind in VALUE_FORMATS:
        return word(f"value_formats.{kind}", value=value)
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
        return word("trend.no_change")
    arrow = word("trend.up" if change > 0 else "trend.down")
    kind = KPI_LABELS.get(key, ("", "number"))[1]
    if kind == "rate":
        text = word("trend.points", change=change)
    elif kind in ("money", "money_per_day"):
        text = ("+" if change > 0 else "") + money(change, currency)
    elif kind == "days":
        text = word("trend.slower" if change > 0 else "trend.faster", days=abs(change))
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
        return word("never_synced")
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return word(f"{unit}s_ago" if count != 1 else f"{unit}_ago", count=count)
    return word("just_now")


def as_of(moment: str | datetime | None, now: datetime | None = None) -> str:
    """When the data was last synced, in every front end alike:
    `2026-12-02 20:37 UTC (8 minutes ago)`."""
    if moment is None:
        return word("never_as_of")
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({age(when, now)})"
