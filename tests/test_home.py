"""The App Home tab end to end: the real Bolt app behind its HTTP server, app_home_opened and
block_actions signed as Slack sends them, and views.publish / views.open answered by the
loopback Slack, which checks a view as Slack does (100 blocks, text lengths, required fields)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from bot.blockkit import VIEW_MAX_BLOCKS, Message, fit
from bot.listeners.home import home_view, period_of
from bot.manifest import manifest
from kpi.store import Store
from settings.app import AppConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.fake_slack import Call, FakeSlack, app_home_opened_event, validate_view
from tests.slack_bot import Bot, start_bot
from tests.test_slack_app import fake, seed

__all__ = ["fake"]  # the fixture: U1 ann and U2 bob of ourco, UX pat of acme (external)

NAMES = {"P1": "Acme Corp", "P2": "Northwind Traders", "P3": "Globex <Ltd>"}
OWNERS = {"P2": "Ann@OurCo.example", "P3": "ann@ourco.example"}  # compared ignoring case


CONFIG = {
    "access": {"users": ["U1", "UX"], "external": {"domains": {"acme.example": "P1"}}},
    "digests": [{"name": "weekly", "channel": "C0DIGEST", "schedule": "0 9 * * mon"}],
    "surveys": [{"name": "nps", "schedule": "0 9 1 * *", "results_channel": "C0RESULTS"}],
}


@pytest.fixture
def home_bot(store: Store, fake: FakeSlack) -> Iterator[Bot]:
    seed(store, NAMES, OWNERS)
    yield from start_bot(store, fake, AppConfig.model_validate(CONFIG))


def published(fake: FakeSlack, user: str, count: int = 1) -> Call:
    """The `count`-th views.publish for `user`, once Slack accepted it."""

    def find() -> Call | None:
        calls = [c for c in fake.calls_to("views.publish") if c.body.get("user_id") == user]
        return calls[count - 1] if len(calls) >= count else None

    call = fake.wait_for(find, timeout=15, description=f"views.publish #{count} for {user}")
    assert call.ok, call.response
    return call


def texts(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_a_manager_gets_the_program_leaders_risks_and_own_partners(
    home_bot: Bot, fake: FakeSlack
) -> None:
    home_bot.event(app_home_opened_event("U1"))
    view = published(fake, "U1").body["view"]
    assert view["type"] == "home" and validate_view(view) == []
    assert view["blocks"][0]["text"]["text"] == "Partner program · Last 90 days"
    shown = texts(view)
    # last-90d as of 2026-11-22 holds every deal: 3 partners x (1,000 + 3,000) won, 4 of 8 won
    assert "*Partner revenue*\\n$12,000" in shown
    assert "*Close rate*\\n50%" in shown
    assert "Top partners by quality score" in shown
    # Ann owns P2 and P3 (owner_email, any case); the CRM's name is escaped for mrkdwn
    own = view["blocks"][
        [b.get("text", {}).get("text", "") for b in view["blocks"]].index("Your partners · 2") :
    ]
    own_text = json.dumps(own[:3], ensure_ascii=False)
    assert "Northwind Traders" in own_text and "Globex &lt;Ltd&gt;" in own_text
    assert "Acme Corp" not in own_text
    assert "Next digest *weekly* to C0DIGEST" in shown and "last sync: ok" in shown
    assert "Next survey round *nps*: <!date^" in shown
    assert home_bot.store.audit_entries(1)[0]["request"] == "home last-90d"


def test_an_external_user_sees_only_its_own_partner(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("UX"))
    view = published(fake, "UX").body["view"]
    assert validate_view(view) == []
    assert view["blocks"][0]["text"]["text"] == "Acme Corp · Last 90 days"
    shown = texts(view)
    assert "*Won revenue*\\n$4,000" in shown  # Acme's 1,000 + 3,000
    for other in ("Northwind", "Globex", "Partner program", "Next digest", "At risk"):
        assert other not in shown
    buttons = [b for b in view["blocks"] if b.get("block_id") == "home_own"]
    assert json.loads(buttons[0]["elements"][0]["value"])["partner_id"] == "P1"


def test_someone_off_the_access_list_is_told_so_in_the_tab(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U2"))
    view = published(fake, "U2").body["view"]
    assert "isn't open to you" in texts(view)
    assert "Partner program" not in texts(view)


def test_the_period_select_republishes_and_is_remembered(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U1"))
    published(fake, "U1")
    view = fake.home_view("U1")
    assert view is not None
    select = next(b for b in view["blocks"] if b.get("block_id") == "home_period")["elements"][0]
    assert select["initial_option"]["value"] == "last-90d"
    last_30 = next(o for o in select["options"] if o["value"] == "last-30d")
    home_bot.click("home_period", "", view=view, selected_option=last_30, block_id="home_period")
    picked = published(fake, "U1", 2).body["view"]
    assert picked["blocks"][0]["text"]["text"] == "Partner program · Last 30 days"
    # last-30d is [Oct 24, Nov 23): nothing closed; the previous 30 days hold the 12,000
    assert "*Partner revenue*\\n$0  ▼ -$12,000" in texts(picked)
    # Opening the tab again keeps the pick (Slack sends the view last published)
    home_bot.event(app_home_opened_event("U1", view=fake.home_view("U1")))
    again = published(fake, "U1", 3).body["view"]
    assert again["blocks"][0]["text"]["text"] == "Partner program · Last 30 days"


def test_a_partner_button_opens_its_scorecard_in_a_modal(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U1"))
    published(fake, "U1")
    view = fake.home_view("U1")
    assert view is not None
    button = next(
        b["accessory"]
        for b in view["blocks"]
        if "accessory" in b and "Northwind Traders" in b["text"]["text"]
    )
    home_bot.click("home_scorecard", button["value"], view=view)
    opened = fake.wait_for_call("views.open", timeout=15)
    assert opened.ok, opened.response
    modal = opened.body["view"]
    assert modal["type"] == "modal"
    assert modal["blocks"][0]["text"]["text"].startswith("Northwind Traders")
    assert all(b.get("block_id") != "scorecard_actions" for b in modal["blocks"])


def test_an_external_users_forged_button_opens_a_refusal(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("UX"))
    published(fake, "UX")
    view = fake.home_view("UX")
    forged = json.dumps({"partner_id": "P2", "period": "last-90d"})
    home_bot.click("home_scorecard", forged, user="UX", team_id="T2", view=view)
    modal = fake.wait_for_call("views.open", timeout=15).body["view"]
    assert "own partnership" in texts(modal) and "Northwind" not in texts(modal)
    assert home_bot.store.audit_entries(1)[0]["allowed"] is False


def test_opening_twice_at_once_builds_the_view_once(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U1"))
    home_bot.event(app_home_opened_event("U1"))
    first, second = published(fake, "U1", 1), published(fake, "U1", 2)
    assert first.body["view"]["blocks"] == second.body["view"]["blocks"]
    home = home_bot.services.home
    assert home is not None and home.builds == 1


def test_a_new_sync_is_shown_at_once(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U1"))
    published(fake, "U1")
    run = home_bot.store.start_sync("test", full=False)
    home_bot.store.finish_sync(run, "failed", {}, error="Salesforce refused the login")
    home_bot.event(app_home_opened_event("U1"))
    view = published(fake, "U1", 2).body["view"]
    assert "The last sync failed (Salesforce refused the login)" in texts(view)


def test_the_messages_tab_publishes_nothing(home_bot: Bot, fake: FakeSlack) -> None:
    home_bot.event(app_home_opened_event("U1", tab="messages"))
    home_bot.event(app_home_opened_event("U2"))  # a later event that does publish
    published(fake, "U2")
    assert [c.body["user_id"] for c in fake.calls_to("views.publish")] == ["U2"]


def test_a_two_thousand_partner_program_fits_a_views_limits(store: Store, fake: FakeSlack) -> None:
    names = {**NAMES, **{f"Q{n:04d}": f"Partner {n:04d} & Co" for n in range(2000)}}
    owners = {**OWNERS, **{pid: "ann@ourco.example" for pid in names if pid[0] == "Q"}}
    seed(store, names, owners, dealing=len(NAMES))
    for bot in start_bot(store, fake, AppConfig.model_validate(CONFIG)):
        bot.event(app_home_opened_event("U1"))
        view = published(fake, "U1").body["view"]
    assert validate_view(view) == [] and len(view["blocks"]) <= 100
    shown = texts(view)
    assert "Your partners · 2002" in shown and "… and 1977 more" in shown
    # The 2,000 without a deal won are at risk: 10 shown, the rest counted
    assert "At risk · 2000" in shown and "… and 1990 more at risk" in shown


def test_a_view_past_100_blocks_ends_with_and_n_more() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"{n}"}} for n in range(150)]
    fitted = fit(Message("t", blocks), VIEW_MAX_BLOCKS, None)
    assert len(fitted.blocks) == 100
    assert fitted.blocks[-1]["elements"][0]["text"] == "… and 51 more"
    assert validate_view(home_view(fitted, "last-90d")) == []


def test_the_manifest_turns_on_the_home_tab_and_its_event() -> None:
    found = manifest(AppConfig(), socket_mode=True)
    assert found["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in found["settings"]["event_subscriptions"]["bot_events"]


def test_the_overview_has_the_same_numbers_as_the_full_cards(store: Store) -> None:
    from kpi.engine import KpiEngine
    from settings.periods import parse_period

    seed(store, NAMES, OWNERS)
    engine = KpiEngine(store, AppConfig().kpi_settings)
    period = parse_period("last-90d", date(2026, 11, 22))
    program, cards = engine.overview(period)
    full = engine.all_partners(period)
    for key in ("kpis", "previous", "quality_score", "rank", "ranked_partners"):
        assert {pid: card[key] for pid, card in cards.items()} == {
            pid: card[key] for pid, card in full.items()
        }
    assert program["kpis"] == engine.program(period)["kpis"]
    assert program["kpis"]["partner_revenue"] == 12_000  # 3 x (1,000 + 3,000)


@pytest.mark.parametrize(
    ("metadata", "period"),
    [
        ('{"period": "last-30d"}', "last-30d"),
        ('{"period": "last-7d"}', "last-90d"),
        ("[1]", "last-90d"),
        ("", "last-90d"),
    ],
)
def test_the_remembered_period_is_one_of_the_selects(metadata: str, period: str) -> None:
    assert period_of({"private_metadata": metadata}) == period


# --- goals (kpi-spec.md section 9) on the Home ------------------------------------------------


def goal(partner: str, kpi: str, period: str, target: float) -> dict[str, object]:
    return {"partner": partner, "kpi": kpi, "period": period, "target": target}


GOALS = [
    # As of 2026-11-22, 53 of 2026-Q4's 92 days are past: Northwind won 2 of 4 deals, pace
    # 2 / (4 x 53/92) = 0.868, behind; Globex won 1,000 + 3,000 of 4,000, met.
    goal("Northwind Traders", "deal_count", "2026-Q4", 4),
    goal("P3", "won_revenue", "2026-Q4", 4000),
    # Acme closed nothing in November: 0 of 1, pace 0, at risk
    goal("Acme Corp", "deal_count", "2026-11", 1),
    # the program: 12,000 of 1.2M in 2026; a 2025 goal is not current
    goal("", "partner_revenue", "2026", 1_200_000),
    goal("Northwind Traders", "deal_count", "2025", 9),
]


def goals_bot(store: Store, fake: FakeSlack, goals: list[dict[str, object]]) -> Iterator[Bot]:
    seed(store, NAMES, OWNERS)
    config = {**CONFIG, "access": {**CONFIG["access"], "users": ["U1", "U2", "UX"]}}
    yield from start_bot(store, fake, AppConfig.model_validate({**config, "goals": goals}))


def goals_text(view: dict[str, Any]) -> str:
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section" and "text" in b]
    titles = ("*Goals*", "*Goals of your partners*", "*Program goals*")
    found = [text for text in sections if text.split("\n")[0] in titles]
    return "\n".join(found)


def test_a_manager_sees_the_goals_of_the_partners_they_own(store: Store, fake: FakeSlack) -> None:
    for bot in goals_bot(store, fake, GOALS):
        bot.event(app_home_opened_event("U1"))
        view = published(fake, "U1").body["view"]
    assert validate_view(view) == []
    lines = goals_text(view).split("\n")
    assert lines[0] == "*Goals of your partners*"
    assert lines[1] == (
        "`▓▓▓▓▓▓▓▓▓▓` *Globex &lt;Ltd&gt;*: 2026-Q4 won revenue $4k of $4k (100%) · pace 174%, met"
        " · forecast $4k"
    )
    assert lines[2].startswith(
        "`▓▓▓▓▓░░░░░` *Northwind Traders*: 2026-Q4 deals won 2 of 4 (50%) · pace 87%, behind"
    )
    assert len(lines) == 3  # not Acme's (Ann owns it not), not the program's, not 2025's


def test_an_external_viewer_sees_only_its_own_partners_goals(store: Store, fake: FakeSlack) -> None:
    for bot in goals_bot(store, fake, GOALS):
        bot.event(app_home_opened_event("UX"))
        view = published(fake, "UX").body["view"]
    assert validate_view(view) == []
    assert goals_text(view) == (
        "*Goals*\n`░░░░░░░░░░` 2026-11 deals won 0 of 1 (0%) · pace 0%, at risk · forecast 0"
        " · pipeline covers 0.0× what is left"
    )


def test_a_manager_who_owns_no_partner_sees_the_programs_goals(
    store: Store, fake: FakeSlack
) -> None:
    for bot in goals_bot(store, fake, GOALS):
        bot.event(app_home_opened_event("U2"))  # bob owns no partner
        view = published(fake, "U2").body["view"]
    # 12,000 of 1.2M; pace 12,000 / (1.2M x 326/365) = 0.011
    assert goals_text(view) == (
        "*Program goals*\n`░░░░░░░░░░` 2026 partner revenue $12k of $1.2M (1%) · pace 1%, at risk"
    )


def test_no_goal_no_section(store: Store, fake: FakeSlack) -> None:
    for bot in goals_bot(store, fake, [goal("Acme Corp", "deal_count", "2026-11", 1)]):
        bot.event(app_home_opened_event("U1"))  # Ann's partners have no goal
        view = published(fake, "U1").body["view"]
    assert goals_text(view) == "" and validate_view(view) == []


def test_past_ten_goals_the_rest_are_counted(store: Store, fake: FakeSlack) -> None:
    many = [
        goal("Northwind Traders", kpi, period, 5)
        for kpi in ("deal_count", "won_revenue", "registered_deals", "close_rate")
        for period in ("2026", "2026-Q4", "2026-11")
    ]
    for bot in goals_bot(store, fake, [*many, goal("P3", "deal_count", "2026", 3)]):
        bot.event(app_home_opened_event("U1"))
        view = published(fake, "U1").body["view"]
    lines = goals_text(view).split("\n")
    assert len(lines) == 1 + 10 + 1 and lines[-1] == "… and 3 more"
    assert "*Globex &lt;Ltd&gt;*: 2026 deals won 2 of 3" in lines[1]  # partner name order
    assert validate_view(view) == []
