"""Renders the Jinja templates of templates/ into Block Kit messages.

A template builds its message as data (`{% do blocks.append({...}) %}`) and ends with
`{{ message(text, blocks) }}`, so no template ever writes JSON punctuation by hand. Every text
from the CRM or from a user goes through the `mrkdwn` filter before it reaches a mrkdwn field.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from bot.blockkit import VIEW_MAX_BLOCKS, Message, fit, truncate
from bot.formatting import (
    KPI_LABELS,
    age,
    as_of,
    format_change,
    format_value,
    is_improvement,
    ordinal,
)
from bot.goal_text import goal_line, progress_bar, status_word
from templates import word_table

_MARKER = "\x00partner-kpi-message\x00"


def escape_mrkdwn(text: Any) -> str:
    """Slack's three control characters, escaped: `<!channel>` pings no one, `<url|x>` links
    nowhere."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pass_context
def _kpi(context: Context, value: Any, key: str) -> str:
    return format_value(key, value, context.get("currency", "USD"))


@pass_context
def _change(context: Context, current: Any, previous: Any, key: str) -> str:
    return format_change(key, current, previous, context.get("currency", "USD"))


@pass_context
def _goal_line(context: Context, goal: dict[str, Any]) -> str:
    return goal_line(goal, context.get("currency", "USD"))


def _goal_bar(goal: dict[str, Any]) -> str:
    return progress_bar(goal["attainment"])


def _label(key: str) -> str:
    return KPI_LABELS.get(key, (key.replace("_", " ").capitalize(), ""))[0]


def _span(period: dict[str, str]) -> str:
    """The inclusive dates of the half-open period [start, end)."""
    last = date.fromisoformat(period["end"]) - timedelta(days=1)
    return f"{period['start']} – {last.isoformat()}"


def _short_day(text: str) -> str:
    """An ISO date as a message reads it: `2026-09-03` is "Sep 3"."""
    day = date.fromisoformat(text)
    return f"{word_table('month_names')[str(day.month)]} {day.day}"


def _json_value(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _message(text: str, blocks: list[dict[str, Any]]) -> str:
    return _MARKER + json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("templates", ""),
        autoescape=False,  # noqa: S701 - the output is Block Kit JSON, not HTML
        undefined=StrictUndefined,
        extensions=["jinja2.ext.do"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        mrkdwn=escape_mrkdwn,
        kpi=_kpi,
        change=_change,
        label=_label,
        ordinal=ordinal,
        span=_span,
        short_day=_short_day,
        age=age,
        as_of=as_of,
        value_json=_json_value,
        from_json=json.loads,  # an element a macro wrote as JSON, back into data
        truncate_to=truncate,
        goal_line=_goal_line,
        goal_bar=_goal_bar,
        goal_status=status_word,
    )
    env.tests["improvement"] = lambda pair, key: is_improvement(key, *pair) is True
    env.tests["worsening"] = lambda pair, key: is_improvement(key, *pair) is False
    env.globals["message"] = _message
    return env


ENVIRONMENT = _environment()


def render(name: str, **context: Any) -> Message:
    """The message of `templates/<name>.json.j2`, fitted into Block Kit's limits."""
    return fit(_rendered(name, context))


def render_view(name: str, **context: Any) -> Message:
    """The blocks of `templates/<name>.json.j2` for a view (a modal, the Home tab), fitted into
    a view's limits: 100 blocks, ending with "… and N more" past them."""
    return fit(_rendered(name, context), VIEW_MAX_BLOCKS, None)


def _rendered(name: str, context: dict[str, Any]) -> Message:
    output = ENVIRONMENT.get_template(f"{name}.json.j2").render(**context)
    start = output.rfind(_MARKER)
    if start < 0:
        raise ValueError(f"template {name} did not end with message(text, blocks)")
    data = json.loads(output[start + len(_MARKER) :])
    return Message(data["text"], data["blocks"])
