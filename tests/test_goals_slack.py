"""Goals set from Slack, through the real Bolt app against the loopback Slack: the `goal`
subcommand and the scorecard's "Set a goal" modal (views.open, view_submission) for an allowed
manager, a refused user, a bad amount, and the goal on the next scorecard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest

from kpi.goal_progress import GoalSpec
from kpi.goals import read_goals
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store
from settings.app import AppConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.fake_slack import FakeSlack, input_value, post_to_bot, view_submission_body
from tests.slack_bot import SECRET, Bot, start_bot

BUTTON = json.dumps({"partner_id": "P1", "period": "last-90d"})


def seed(store: Store) -> None:
    partners = [
        Partner(id="P1", name="Acme Corp", joined_on=date(2024, 1, 1)),
        Partner(id="P2", name="Globex", joined_on=date(2024, 1, 1)),
    ]
    deals = [  # as of 2026-11-22, Acme's Q4 won revenue is 1,000 + 3,000
        Deal(id="D1", partner_id="P1", amount=Decimal(1000), status=DealStatus.WON,
             created_on=date(2026, 9, 1), closed_on=date(2026, 10, 1)),
        Deal(id="D2", partner_id="P1", amount=Decimal(3000), status=DealStatus.WON,
             created_on=date(2026, 9, 1), closed_on=date(2026, 10, 3)),
    ]  # fmt: skip
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        server.add_user("U1", "ann", email="ann@ourco.example")  # a listed goal setter
        server.add_user("U2", "bob", email="bob@ourco.example")  # may ask, may not set
        server.add_user("U3", "cy", email="cy@ourco.example")  # a setter by user group
        server.add_user("UX", "pat", email="pat@acme.example", team_id="T2", is_stranger=True)
        server.add_usergroup("S1", ["U3"])
        yield server


@pytest.fixture
def bot(store: Store, fake: FakeSlack) -> Iterator[Bot]:
    seed(store)
    app_config = AppConfig.model_validate(
        {
            "access": {
                "external": {"domains": {"acme.example": "P1"}},
                "goal_setters": {"users": ["U1"], "usergroups": ["S1"]},
            }
        }
    )
    yield from start_bot(store, fake, app_config)


def slack_goals(store: Store) -> list[GoalSpec]:
    names = {p.id: p.name for p in store.partners()}
    with store.engine.connect() as connection:
        return [g for g in read_goals(connection, [], names).goals if g.source == "slack"]


def goals_section(body: dict[str, object]) -> str:
    blocks = body["blocks"]
    assert isinstance(blocks, list)
    found = [b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith(
        "*Goals*")]  # fmt: skip
    return found[0] if found else ""


def test_a_manager_sets_a_goal_that_shows_on_the_next_scorecard(bot: Bot) -> None:
    assert goals_section(bot.answer("acme")) == ""  # hidden while the partner has none
    answer = bot.answer("goal Acme Corp won_revenue 500k 2026-Q4")
    assert answer["text"].startswith("Goal set: Acme Corp · 2026-Q4 won revenue at least $500,000")
    [goal] = slack_goals(bot.store)
    assert (goal.partner_id, goal.kpi, goal.target, goal.set_by) == (
        "P1", "won_revenue", Decimal(500000), "U1",
    )  # fmt: skip
    section = goals_section(bot.answer("acme"))
    # elapsed: 10-01..11-22 is 53 of 92 days; pace 4,000 / (500,000 x 53/92) = 1.4%
    assert "2026-Q4 won revenue $4k of $500k (1%) · pace 1%, at risk · forecast $4k" in section
    assert "`░░░░░░░░░░`" in section
    entry = bot.store.audit_entries()[1]  # newest first: the second scorecard, the goal
    assert entry["request"] == "/partner-kpi goal Acme Corp won_revenue 500k 2026-Q4"
    assert entry["allowed"]
    cleared = bot.answer("goal clear Acme Corp won_revenue 2026-Q4")
    assert cleared["text"].startswith("Goal cleared: Acme Corp · 2026-Q4 won revenue")
    assert slack_goals(bot.store) == []


def test_a_user_group_member_may_set_the_programs_goal(bot: Bot) -> None:
    answer = bot.answer("goal program partner_revenue $1,200,000 2026", user="U3")
    assert answer["text"].startswith(
        "Goal set: the program · 2026 partner revenue at least $1,200,000"
    )
    # 1,000 + 3,000 won so far in 2026
    assert "2026 partner revenue $4k of $1.2M (0%)" in goals_section(bot.answer("program"))


def test_everyone_else_is_refused_in_one_sentence(bot: Bot, fake: FakeSlack) -> None:
    refused = bot.answer("goal Acme Corp won_revenue 500k 2026-Q4", user="U2")
    assert refused["text"] == (
        "Sorry, only the managers named in app.yaml under access.goal_setters may set or clear "
        "goals."
    )
    assert slack_goals(bot.store) == []
    entry = bot.store.audit_entries()[0]
    assert (entry["user_id"], entry["allowed"]) == ("U2", False)
    outside = bot.answer("goal clear Acme Corp won_revenue 2026-Q4", user="UX")
    assert outside["text"].startswith("Sorry, only the managers")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("goal Acme Corp won_revenue 5x00 2026-Q4", "'5x00' is not an amount"),
        ("goal Acme Corp won_revenue 45% 2026-Q4", "is a percentage, but won_revenue is not"),
        ("goal Acme Corp won_revenue 500k last-90d", "moves with the date"),
        ("goal Acme Corp partners_left 3 2026", "is a program KPI"),
        ("goal Acme Corp deal_count -3 2026", "negative"),
    ],
)
def test_a_bad_goal_is_one_sentence(bot: Bot, text: str, says: str) -> None:
    answer = bot.answer(text)
    assert answer["text"].startswith("That goal can't be set: ")
    assert says in answer["text"]
    assert slack_goals(bot.store) == []


def test_the_modal_sets_a_goal(bot: Bot, fake: FakeSlack) -> None:
    reply, _ = bot.click("scorecard_set_goal", BUTTON)
    assert reply.status == 200
    view = fake.wait_for(lambda: fake.views[-1] if fake.views else None)
    assert view["callback_id"] == "goal_modal"
    assert [b.get("block_id") for b in view["blocks"][1:]] == [
        "goal_kpi", "goal_period", "goal_target", "goal_direction",
    ]  # fmt: skip
    period_input = view["blocks"][2]["element"]
    assert period_input["initial_value"] == "2026-Q4"
    values = {
        "goal_kpi": {"kpi": input_value("deal_count", "static_select")},
        "goal_period": {"period": input_value("2026-Q4")},
        "goal_target": {"target": input_value("ten")},
        "goal_direction": {"direction": {"type": "static_select", "selected_option": None}},
    }
    bad = post_to_bot(bot.url, view_submission_body(values=values, view=view), SECRET).json()
    assert bad["response_action"] == "errors"
    assert "'ten' is not an amount" in bad["errors"]["goal_target"]
    values["goal_target"] = {"target": input_value("10")}
    values["goal_direction"] = {"direction": input_value("at_least", "static_select")}
    good = post_to_bot(bot.url, view_submission_body(values=values, view=view), SECRET)
    assert good.status == 200 and good.json() is None  # the modal closes
    [goal] = slack_goals(bot.store)
    assert (goal.kpi, goal.period.name, goal.target) == ("deal_count", "2026-Q4", Decimal(10))
    confirmation = fake.wait_for(lambda: fake.calls_to("chat.postEphemeral"))
    assert confirmation[0].body["user"] == "U1"
    assert "Goal set: Acme Corp · 2026-Q4 deals won at least 10" in confirmation[0].body["text"]
    assert "2026-Q4 deals won 2 of 10 (20%)" in goals_section(bot.answer("acme"))
    # someone else submitting that modal is refused on the field, and nothing changes
    forged = view_submission_body(values=values, view=view, user_id="U2")
    refused = post_to_bot(bot.url, forged, SECRET).json()
    assert refused["response_action"] == "errors"
    assert "only the managers" in refused["errors"]["goal_target"]


def test_the_modal_is_refused_to_others(bot: Bot, fake: FakeSlack) -> None:
    _, url = bot.click("scorecard_set_goal", BUTTON, user="U2")
    assert "only the managers" in fake.wait_for_response(url).body["text"]
    assert fake.calls_to("views.open") == []


def test_an_external_user_sees_only_its_own_partners_goals(bot: Bot) -> None:
    bot.answer("goal Acme Corp deal_count 10 2026-Q4")
    bot.answer("goal Globex deal_count 7 2026-Q4")
    own = bot.answer("acme", user="UX")
    assert "deals won 2 of 10" in goals_section(own)
    raw = json.dumps(own)
    assert "scorecard_set_goal" not in raw and "Globex" not in raw
    other = bot.answer("globex", user="UX")
    assert "deals won" not in json.dumps(other)


def test_top_by_attainment_in_slack(bot: Bot) -> None:
    bot.answer("goal Acme Corp won_revenue 8k 2026-Q4")  # 4,000 of 8,000: 50%
    bot.answer("goal Globex won_revenue 1k 2026-Q4")  # nothing won: 0%
    top = bot.answer("top by attainment")
    assert top["blocks"][0]["text"]["text"] == "Top 2 by attainment of their won revenue goal"
    assert "1. *Acme Corp* · 50%\n2. *Globex* · 0%" in json.dumps(top, ensure_ascii=False).replace(
        "\\n", "\n"
    )
    deals = bot.answer("top 3 by attainment deal_count")
    assert "No partner has a current goal on this KPI." in json.dumps(deals)
    bad = bot.answer("top by attainment nonsense")
    assert "can't rank by" in bad["text"]
