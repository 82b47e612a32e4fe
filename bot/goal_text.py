"""How a goal reads to a person: one line with a text progress bar, attainment, pace, status
and, for revenue and deal goals, the forecast and the pipeline's coverage of what is left, e.g.
`▓▓▓▓▓▓░░░░ 2026-Q4 won revenue $312k of $500k (62%) · pace 94%, behind · forecast $455k ·
pipeline covers 1.4x what is left`. The words are in templates/words.yaml."""

from __future__ import annotations

from typing import Any

from bot.formatting import CURRENCY_SYMBOLS, KPI_LABELS, NOT_AVAILABLE, format_value
from bot.terminal import table
from templates import word, word_table

BAR_CELLS = 10
FULL, EMPTY = "▓", "░"


def progress_bar(attainment: float | None) -> str:
    """Ten cells, one per tenth of the target reached (capped at the target)."""
    share = 0.0 if attainment is None else max(0.0, min(1.0, attainment))
    filled = int(share * BAR_CELLS + 1e-9)
    return FULL * filled + EMPTY * (BAR_CELLS - filled)


def short_value(key: str, value: Any, currency: str) -> str:
    """A KPI value, money in short form ($312k, $1.2M) so a goal fits on one line."""
    if value is None:
        return NOT_AVAILABLE
    kind = KPI_LABELS.get(key, ("", ""))[1]
    if kind != "money":
        if kind in ("count", "signed") and isinstance(value, float) and value.is_integer():
            value = int(value)  # a target of 8 deals reads 8, not 8.0
        return format_value(key, value, currency)
    symbol = CURRENCY_SYMBOLS.get(currency)
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            number = f"{value / limit:.1f}".removesuffix(".0") + suffix
            break
    else:
        number = f"{value:,.0f}"
    if symbol:
        return f"-{symbol}{number[1:]}" if number.startswith("-") else f"{symbol}{number}"
    return f"{number} {currency}"


def percent(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{100 * value:.0f}%"


def status_word(status: str) -> str:
    return word_table("goal_status")[status]


def goal_line(goal: dict[str, Any], currency: str) -> str:
    """One goal object of section 9 as a line of text (without the bar)."""
    key = goal["kpi"]
    label = KPI_LABELS.get(key, (key.replace("_", " "), ""))[0].lower()
    values = {
        "period": goal["period"]["name"],
        "kpi": label,
        "actual": short_value(key, goal["actual"], currency),
        "target": short_value(key, goal["target"], currency),
        "attainment": percent(goal["attainment"]),
    }
    at_most = goal["direction"] == "at_most"
    parts = [word("goal_line_at_most" if at_most else "goal_line", **values)]
    status = status_word(goal["status"])
    if goal["pace"] is not None:
        parts.append(word("goal_pace", pace=percent(goal["pace"]), status=status))
    else:
        parts.append(status)
    if goal["forecast"] is not None:
        parts.append(word("goal_forecast", forecast=short_value(key, goal["forecast"], currency)))
    if goal["coverage"] is not None:
        parts.append(word("goal_coverage", coverage=f"{goal['coverage']:.1f}"))
    return " · ".join(parts)


def goal_lines(goals: list[dict[str, Any]], currency: str) -> str:
    """The Goals section of a terminal scorecard: a heading, then a bar and a line per goal."""
    lines = [word("goals_heading")]
    lines += [f"  {progress_bar(g['attainment'])} {goal_line(g, currency)}" for g in goals]
    return "\n".join(lines)


def goal_table(goals: list[dict[str, Any]], currency: str) -> str:
    """`partner-kpi goals` as a table: one row per goal, in section 9's order."""
    headers = (
        "partner", "kpi", "period", "target", "actual", "attained", "pace", "status", "forecast",
    )  # fmt: skip
    rows = []
    for goal in goals:
        key = goal["kpi"]
        partner = goal["partner"]["name"] if goal["partner"] else word("program_name")
        rows.append(
            (
                partner,
                key,
                goal["period"]["name"],
                ("≤ " if goal["direction"] == "at_most" else "")
                + short_value(key, goal["target"], currency),
                short_value(key, goal["actual"], currency),
                percent(goal["attainment"]),
                percent(goal["pace"]) if goal["pace"] is not None else "",
                status_word(goal["status"]),
                "" if goal["forecast"] is None else short_value(key, goal["forecast"], currency),
            )
        )
    if not rows:
        return word("no_goals")
    return table(headers, rows, numeric={3, 4, 5, 6, 8})
