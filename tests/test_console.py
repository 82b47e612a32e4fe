"""The local console, driven with scripted input as a person would type, and the manifest."""

from __future__ import annotations

import io
import json
from datetime import date

import yaml

from bot.answers import Answers
from bot.console import Console, run_console
from bot.manifest import manifest
from kpi.store import Store
from settings.app import AppConfig
from settings.slack import SlackConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.demo_run import DemoRun
from tests.test_slack_app import seed

TODAY = date(2026, 11, 22)


def console_session(store: Store, lines: list[str]) -> str:
    out = io.StringIO()
    console = Console(Answers(store, AppConfig(), lambda: TODAY), "/partner-kpi", out)
    script = iter(lines)

    def read(prompt: str) -> str:
        out.write(prompt)
        return next(script)  # StopIteration never happens: the script ends with quit

    run_console(console, read)
    return out.getvalue()


def test_console_answers_as_slack_would(store: Store) -> None:
    seed(store)
    text = console_session(store, ["/partner-kpi acme", "json", "quit"])
    assert "Acme Corp · last-90d" in text
    assert "Won revenue: $4,000" in text
    assert "[1] ◀ Previous period" in text
    payload = json.loads(text[text.index('{\n  "text"') : text.rindex("}") + 1])
    assert payload["blocks"][0]["type"] == "header"


def test_console_buttons_and_lists(store: Store) -> None:
    seed(store)
    text = console_session(store, ["northwind", "2", "top 2", "help", "exit"])
    assert "“northwind” matches 2 partners" in text
    assert text.count("Northwind Traders · last-90d") == 1  # button 2, sorted by name
    assert "Top 2 by quality score" in text
    assert "compare Acme vs Globex" in text


def test_q_exit_and_quit_leave_the_console(store: Store) -> None:
    seed(store)
    for word in ("q", "Q", "exit", "quit"):
        text = console_session(store, [word, "acme"])  # "acme" is never read
        assert "No partner" not in text and "Acme Corp" not in text


def test_a_text_ending_in_an_unreadable_period_says_so(store: Store) -> None:
    seed(store)
    text = console_session(store, ["acme last-quater", "acme Q5", "top 3 last fortnight", "q"])
    assert text.count("is not a period. Use one of: last-30d") == 3
    assert '"last-quater" is not a period' in text and '"Q5" is not a period' in text
    assert "No partner" not in text


def test_the_periods_people_type_answer(store: Store) -> None:
    seed(store)
    text = console_session(
        store, ["acme last quarter", "acme Q3 2026", "acme Sept 2026", "top 2 ytd", "quit"]
    )
    assert "Acme Corp · last-quarter" in text and "Acme Corp · 2026-Q3" in text
    assert "Acme Corp · 2026-09" in text and "Top 2 by quality score · this-year" in text


def test_console_renders_escaped_names_readably(store: Store) -> None:
    seed(store)
    text = console_session(store, ["P4", "quit"])
    assert "<!channel> & <https://evil.example|click>" in text  # unescaped for the terminal


def test_demo_without_a_terminal_prints_its_showcase_and_exits(demo_run: DemoRun) -> None:
    assert "$ partner-kpi kpi 'Acme Corp'" in demo_run.stdout
    assert "partner-kpi console" in demo_run.stdout


def test_manifest_for_http_and_socket_mode() -> None:
    app = AppConfig(slack=SlackConfig(request_url="https://kpi.example.com"))
    http = manifest(app, socket_mode=False)
    command = http["features"]["slash_commands"][0]
    assert command["command"] == "/partner-kpi"
    assert command["url"] == "https://kpi.example.com/slack/events"
    assert http["settings"]["interactivity"]["request_url"] == command["url"]
    assert {"commands", "users:read", "users:read.email"} <= set(
        http["oauth_config"]["scopes"]["bot"]
    )
    # Access control's change events, and the scopes they and conversations.info need.
    events = http["settings"]["event_subscriptions"]
    assert events["request_url"] == command["url"]
    assert {"user_change", "team_join", "subteam_members_changed", "channel_shared"} <= set(
        events["bot_events"]
    )
    assert {"usergroups:read", "channels:read", "groups:read"} <= set(
        http["oauth_config"]["scopes"]["bot"]
    )
    socket = manifest(app, socket_mode=True)
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "url" not in socket["features"]["slash_commands"][0]
    assert "request_url" not in socket["settings"]["event_subscriptions"]
    assert yaml.safe_load(yaml.safe_dump(socket)) == socket


def test_the_console_sets_and_clears_goals_as_its_operator(store: Store) -> None:
    seed(store)
    text = console_session(
        store,
        [
            "goal acme won_revenue 8k 2026-Q4",
            "acme",
            "goal clear acme won_revenue 2026-Q4",
            "quit",
        ],
    )
    assert "Goal set: Acme Corp · 2026-Q4 won revenue at least $8,000" in text
    assert "2026-Q4 won revenue $4k of $8k (50%)" in text  # deals 0 and 2: 1,000 + 3,000
    assert "Goal cleared: Acme Corp · 2026-Q4 won revenue" in text
