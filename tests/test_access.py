"""Access control fails closed, tried as a hostile tester would: the real Bolt app over HTTP
against the loopback Slack, with lookups that fail, time out or change under it, shared
channels, and every request the app answers, scanned for data outside the asker's set."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.access import Asker, Workspace, identify, split_email
from bot.channel_audience import check_post_channels
from bot.formatting import format_value
from bot.slack_app import web_client
from bot.slack_facts import SlackFacts
from kpi.engine import KpiEngine
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store, open_store
from settings.app import AppConfig, parse_config
from settings.base import ConfigError
from settings.periods import parse_period
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.fake_slack import FakeSlack
from tests.slack_bot import TODAY, Bot, start_bot

NAMES = {"P1": "Acme Corp", "P2": "Northwind Traders", "P3": "Globex Industries"}
REFUSED_PROFILE = "I could not check your Slack profile just now"

ACCESS = {
    "users": ["U1"],
    "usergroups": ["S1"],
    "channels": ["CALLOWED"],
    "external": {
        "domains": {"acme.example": "P1"},
        "users": {"UMAPPED": "P2"},
        "channels": {"CSHARED": "P1"},
    },
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite only: access control does not depend on the database (the audit log's writes are
    the store's, tested on both)."""
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.engine.dispose()


def seed(store: Store) -> None:
    """Three partners whose amounts differ (each partner's figures are its own), and direct
    deals, whose figures only staff may see."""
    partners = [
        Partner(id=pid, name=name, joined_on=date(2024, 1, 1)) for pid, name in NAMES.items()
    ]
    deals: list[Deal] = []
    for n, pid in enumerate([*NAMES, None], start=1):
        for i in range(6):
            deals.append(
                Deal(
                    id=f"D-{pid or 'direct'}-{i}",
                    partner_id=pid,
                    name=f"Deal {pid or 'direct'} {i}",
                    amount=Decimal(1000 * n + 137 * n * (i + 1)),
                    status=DealStatus.WON if i % 3 != 2 else DealStatus.LOST,
                    created_on=date(2026, 8, 1 + 3 * n + i),
                    closed_on=date(2026, 10, 1 + 2 * n + i),
                )
            )
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})


def app_config(**extra: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "access": ACCESS,
            "kpi": {"tiers": [{"name": "Gold", "min_score": 90}, {"name": "Base", "min_score": 0}]},
            **extra,
        }
    )


def people(fake: FakeSlack) -> None:
    fake.add_user("U1", "ann", email="ann@ourco.example")  # on the list
    fake.add_user("U2", "bob", email="bob@ourco.example")  # a member off the lists
    fake.add_user("UG", "gil", email="gil@ourco.example")  # in user group S1
    fake.add_usergroup("S1", ["UG"])
    fake.add_user("UGUEST", "gus", email="gus@acme.example", is_restricted=True)
    fake.add_user("UX", "pat", email="pat@acme.example", team_id="T2", is_stranger=True)
    fake.add_user("UMAPPED", "max", email="max@elsewhere.example", team_id="T3")
    fake.add_user("UY", "yan", email="yan@unknown.example", team_id="T4", is_stranger=True)
    fake.add_user("UNOMAIL", "nox", team_id="T2", is_stranger=True)
    fake.add_user("UDEL", "del", email="del@ourco.example", deleted=True)
    fake.add_user("UAPP", "robot", is_bot=True, bot_id="B9", app_id="A9")
    fake.add_channel("CSHARED", "acme-connect", connected_teams=["T2"])
    fake.add_channel("CEXT", "vendors-connect", connected_teams=["T9"])
    fake.add_channel("CPENDING", "soon-shared", pending_teams=["T9"])
    fake.add_channel("CORG", "org-wide", org_shared=True)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        people(server)
        yield server


@pytest.fixture
def slack_bot(store: Store, fake: FakeSlack) -> Iterator[Bot]:
    seed(store)
    yield from start_bot(store, fake, app_config(slack={"api_timeout_seconds": 1}))


def text_of(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


def last_audit(store: Store) -> dict[str, Any]:
    return store.audit_entries(limit=1)[0]


# --- who asks: every failure to learn it is a refusal ---------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        {"error": "fatal_error"},
        {"error": "ratelimited", "retry_after": 0, "times": 4},  # past the client's 3 retries
        {"error": "internal_error", "status": 500},
    ],
    ids=["error", "429-after-retries", "http-500"],
)
def test_a_failed_profile_lookup_refuses_and_is_audited(
    slack_bot: Bot, fake: FakeSlack, failure: dict[str, Any]
) -> None:
    fake.fail_next("users.info", **failure)
    body = slack_bot.answer("top", user="UGUEST", channel="CALLOWED")
    assert REFUSED_PROFILE in body["text"] and body["response_type"] == "ephemeral"
    assert "Acme" not in text_of(body) and "Globex" not in text_of(body)
    entry = last_audit(slack_bot.store)
    assert (entry["user_id"], entry["allowed"], entry["request"]) == (
        "UGUEST",
        False,
        "/partner-kpi top",
    )
    assert "users.info" in entry["reason"]


def test_a_profile_lookup_that_times_out_refuses(slack_bot: Bot, fake: FakeSlack) -> None:
    fake.stall_next("users.info", 3.0, times=3)  # the client gives up after 1 s
    started = time.monotonic()
    body = slack_bot.answer("program", user="U2")
    assert REFUSED_PROFILE in body["text"]
    assert time.monotonic() - started < 8
    entry = last_audit(slack_bot.store)
    assert entry["allowed"] is False and "users.info" in entry["reason"]


def test_a_failure_is_never_cached(slack_bot: Bot, fake: FakeSlack) -> None:
    fake.fail_next("users.info", error="fatal_error")
    assert REFUSED_PROFILE in slack_bot.answer("acme", user="UX")["text"]
    # The guest asks again once Slack answers: the lookup is made again, and the guest is
    # limited to its own partner, not treated as the member the failure once made it.
    body = slack_bot.answer("northwind traders", user="UX")
    assert "No partner matches" in body["text"]
    assert len(fake.calls_to("users.info")) == 2


@pytest.mark.parametrize(
    ("user", "sentence", "reason"),
    [
        ("UNOMAIL", "shows no email address", "without a usable email"),
        ("UDEL", "isn't open to you", "deactivated"),
        ("UAPP", "answers people, not apps", "bot user"),
        ("UY", "isn't linked to a partner", "no partner mapping"),
    ],
)
def test_askers_a_rule_cannot_place_are_refused(
    slack_bot: Bot, user: str, sentence: str, reason: str
) -> None:
    body = slack_bot.answer("acme", user=user, channel="CALLOWED")
    assert sentence in body["text"] and "Acme Corp ·" not in text_of(body)
    entry = last_audit(slack_bot.store)
    assert entry["allowed"] is False and reason in entry["reason"]


def test_a_user_group_that_cannot_be_read_lets_nobody_in(slack_bot: Bot, fake: FakeSlack) -> None:
    fake.fail_next("usergroups.users.list", error="ratelimited", retry_after=0, times=4)
    body = slack_bot.answer("acme", user="UG")
    assert REFUSED_PROFILE in body["text"]
    assert "usergroups.users.list" in last_audit(slack_bot.store)["reason"]
    assert slack_bot.answer("acme", user="UG")["blocks"][0]["text"]["text"].startswith("Acme Corp")


# --- caching, revocation and Slack's change events ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_group_member_is_refused_within_a_minute(slack_bot: Bot, fake: FakeSlack) -> None:
    clock = Clock()
    facts = SlackFacts(slack_bot.services.client, clock=clock)
    facts.learn_workspace()
    slack_bot.services.facts = facts
    assert slack_bot.answer("acme", user="UG")["blocks"][0]["text"]["text"].startswith("Acme")
    fake.add_usergroup("S1", [])  # removed in Slack; no event reaches the bot
    clock.now += 30
    assert "Acme Corp" in slack_bot.answer("acme", user="UG")["text"]  # within the minute
    clock.now += 31
    assert "isn't open to you" in slack_bot.answer("acme", user="UG")["text"]


@pytest.mark.parametrize("kind", ["user_change", "team_join"])
def test_a_user_change_event_ends_access_at_once(
    slack_bot: Bot, fake: FakeSlack, kind: str
) -> None:
    assert "Globex" in slack_bot.answer("globex", user="U1")["text"]
    fake.add_user("U1", "ann", email="ann@acme.example", is_restricted=True)  # made a guest
    assert "Globex" in slack_bot.answer("globex", user="U1")["text"]  # cached, no event yet
    reply = slack_bot.event({"type": kind, "user": {"id": "U1", "is_restricted": True}})
    assert reply.status == 200
    body = slack_bot.answer("globex", user="U1")
    assert "No partner matches" in body["text"] and "Globex Industries" not in text_of(body)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "subteam_members_changed", "subteam_id": "S1", "team_id": "T1",
         "removed_users": ["UG"], "removed_users_count": "1", "added_users": []},
        {"type": "subteam_updated", "subteam": {"id": "S1", "team_id": "T1", "users": [],
         "user_count": 0, "is_usergroup": True, "handle": "partner-team"}},
    ],
    ids=["subteam_members_changed", "subteam_updated"],
)  # fmt: skip
def test_a_subteam_event_ends_a_group_members_access(
    slack_bot: Bot, fake: FakeSlack, event: dict[str, Any]
) -> None:
    assert "Acme Corp" in slack_bot.answer("acme", user="UG")["text"]
    fake.add_usergroup("S1", [])
    assert slack_bot.event(event).status == 200
    assert "isn't open to you" in slack_bot.answer("acme", user="UG")["text"]


def test_a_channel_shared_event_stops_shares_at_once(slack_bot: Bot, fake: FakeSlack) -> None:
    fake.add_channel("CTEAM", "partner-team")
    assert share(slack_bot, "P2", "CTEAM")[0]["response_type"] == "in_channel"
    fake.add_channel("CTEAM", "partner-team", connected_teams=["T9"])  # now Slack Connect
    event = {"type": "channel_shared", "connected_team_id": "T9", "channel": "CTEAM",
             "event_ts": "1561064063.001100"}  # fmt: skip
    assert slack_bot.event(event).status == 200
    (refused,) = share(slack_bot, "P2", "CTEAM")
    assert refused["response_type"] == "ephemeral" and "shared with another" in refused["text"]


# --- the bot's own workspace -----------------------------------------------------------------


def test_auth_test_failing_at_start_refuses_until_it_recovers(store: Store) -> None:
    seed(store)
    with FakeSlack() as fake:
        people(fake)
        # A Slack Connect user who is no guest: only the team comparison tells it is external.
        fake.add_user("UC", "cy", email="cy@acme.example", team_id="T2")
        fake.fail_next("auth.test", error="ratelimited", retry_after=0, times=4)
        for bot in start_bot(store, fake, app_config(), workspace_retry=3.0):
            body = bot.answer("top", user="UC", channel="CALLOWED")
            assert "still connecting to Slack" in body["text"] and "Acme" not in text_of(body)
            status, health = health_of(bot)
            assert status == 503 and "auth.test answered ratelimited" in health["slack"]
            entry = last_audit(store)
            assert entry["allowed"] is False and "auth.test" in entry["reason"]
            fake.wait_for(lambda: bot.services.facts.workspace is not None, timeout=10)
            assert bot.services.facts.workspace == Workspace("T1", None)
            assert health_of(bot)[0] == 200 and health_of(bot)[1]["slack"] == "ok"
            body = bot.answer("top", user="UC", channel="CALLOWED")
            assert "your own partnership" in body["text"]  # external: limited, not a member
            assert "Acme Corp" in bot.answer("acme", user="UC")["text"]


def health_of(bot: Bot) -> tuple[int, dict[str, Any]]:
    url = bot.url.replace("/slack/events", "/health")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_request_team_makes_a_user_external() -> None:
    workspace = Workspace("T1", "E1")
    member = {"id": "U1", "team_id": "T1", "profile": {"email": "a@ourco.example"}}
    grid = {**member, "team_id": "T7", "enterprise_user": {"enterprise_id": "E1"}}
    for user, request, external in [
        (member, ("T1", "E1"), False),
        (member, ("T2", None), True),  # the request says another team
        (member, ("T1", "E2"), True),  # ... or another org
        (grid, ("T7", "E1"), False),  # another workspace of the same Enterprise Grid org
        ({**member, "team_id": "T2"}, ("T1", None), True),
    ]:
        asker = identify(user, workspace, None, None, request)
        assert isinstance(asker, Asker) and asker.external is external, (user, request)


def test_an_email_is_one_local_part_and_one_domain() -> None:
    assert split_email(" Pat@Acme.Example ") == ("pat", "acme.example")
    for bad in ["pat@evil.example@acme.example", "@acme.example", "pat@", "pat", "pat@.acme",
                "pa t@acme.example", "pat@acme..example", None, ""]:  # fmt: skip
        assert split_email(bad) is None, bad


def test_an_email_with_two_ats_maps_to_nothing(slack_bot: Bot, fake: FakeSlack) -> None:
    fake.add_user(
        "UZ", "zed", email="zed@evil.example@acme.example", team_id="T9", is_stranger=True
    )
    body = slack_bot.answer("acme", user="UZ")
    assert "shows no email address" in body["text"] and "Acme Corp ·" not in text_of(body)


# --- shared channels ------------------------------------------------------------------------


def share(bot: Bot, partner_id: str, channel: str, user: str = "U1") -> list[Any]:
    """Clicks "Share in channel"; returns what reached the channel and what the asker saw."""
    value = json.dumps({"partner_id": partner_id, "period": "last-90d"})
    _, url = bot.click("scorecard_share", value, user=user, channel=channel,
                       action_ts=f"{time.time():.6f}")  # fmt: skip
    return [post.body for post in [bot.fake.wait_for_response(url, timeout=15)]]


@pytest.mark.parametrize("channel", ["CEXT", "CPENDING"])
def test_no_share_into_an_unmapped_shared_channel(slack_bot: Bot, channel: str) -> None:
    (body,) = share(slack_bot, "P1", channel)
    assert (
        body["response_type"] == "ephemeral" and "shared with another organisation" in body["text"]
    )
    entry = last_audit(slack_bot.store)
    assert entry["allowed"] is False and "shared externally" in entry["reason"]


def test_a_mapped_shared_channel_takes_its_partner_alone_in_the_partner_view(
    slack_bot: Bot,
) -> None:
    (refused,) = share(slack_bot, "P2", "CSHARED")
    assert refused["response_type"] == "ephemeral" and "Northwind" not in text_of(refused)
    (posted,) = share(slack_bot, "P1", "CSHARED")
    assert posted["response_type"] == "in_channel"
    assert posted["blocks"][0]["text"]["text"].startswith("Acme Corp")
    assert "Against direct deals" not in text_of(posted)
    assert "scorecard_compare" not in text_of(posted)
    for channel in ("CORG", "C1"):  # shared inside our org, or not at all: the staff view
        (internal,) = share(slack_bot, "P2", channel)
        assert internal["response_type"] == "in_channel" and "Against direct deals" in text_of(
            internal
        )


def test_a_share_is_refused_when_the_channel_cannot_be_checked(
    slack_bot: Bot, fake: FakeSlack
) -> None:
    fake.fail_next("conversations.info", error="ratelimited", retry_after=0, times=4)
    (body,) = share(slack_bot, "P1", "C1")
    assert (
        body["response_type"] == "ephemeral"
        and "could not check whether this channel" in body["text"]
    )


# --- the partner view and a probing session -------------------------------------------------


def figures_of(store: Store, app: AppConfig, partner_ids: list[str | None]) -> set[str]:
    """Each partner's (None: the direct deals') money figures as the bot writes them."""
    engine = KpiEngine(store, app.kpi_settings)
    period = parse_period("last-90d", TODAY)
    details = engine.scorecard("P1", period)
    found: set[str] = set()
    for pid in partner_ids:
        kpis = details.baseline if pid is None else engine.partner(pid, period)["kpis"]
        for key in ("won_revenue", "avg_deal_size", "pipeline_value"):
            if kpis.get(key):
                found.add(format_value(key, kpis[key]))
    return found


def test_an_external_users_scorecard_holds_its_own_figures_only(slack_bot: Bot) -> None:
    app = app_config()
    own = figures_of(slack_bot.store, app, ["P1"])
    forbidden = figures_of(slack_bot.store, app, ["P2", "P3", None]) - own
    assert forbidden  # the data gives the scan something to find
    body = slack_bot.answer("acme", user="UX")
    text = text_of(body)
    assert body["blocks"][0]["text"]["text"].startswith("Acme Corp")
    assert own & set(figure for figure in own if figure in text)
    for name in ("Northwind", "Globex", "direct", "Direct"):
        assert name not in text, name
    for figure in forbidden:
        assert figure not in text, figure
    assert " of 3" not in text  # no rank unless access.external.show_rank


def test_the_audit_log_of_a_probing_session(slack_bot: Bot) -> None:
    probes = ["acme", "top", "program", "at-risk", "compare acme vs globex", "P2"]
    for probe in probes:
        slack_bot.answer(probe, user="UX")
    for action_id, partner in [("scorecard_why", "P2"), ("scorecard_compare", "P1"),
                               ("scorecard_previous", "P3")]:  # fmt: skip
        value = json.dumps({"partner_id": partner, "period": "last-90d"})
        _, url = slack_bot.click(action_id, value, user="UX", team_id="T2")
        assert "your own partnership" in slack_bot.fake.wait_for_response(url).body["text"]
    entries = list(reversed(slack_bot.store.audit_entries()))
    assert len(entries) == len(probes) + 3  # one record per request
    outcomes = [(e["request"], e["allowed"]) for e in entries]
    assert outcomes[0] == ("/partner-kpi acme", True)
    assert outcomes[-1] == (
        'button scorecard_previous {"partner_id": "P3", "period": "last-90d"}',
        False,
    )
    # "P2" reads as a name that does not exist for this asker: answered, no data, allowed.
    refused = [request for request, allowed in outcomes if not allowed]
    assert refused == [
        "/partner-kpi top",
        "/partner-kpi program",
        "/partner-kpi at-risk",
        "/partner-kpi compare acme vs globex",
        'button scorecard_why {"partner_id": "P2", "period": "last-90d"}',
        'button scorecard_compare {"partner_id": "P1", "period": "last-90d"}',
        'button scorecard_previous {"partner_id": "P3", "period": "last-90d"}',
    ]
    assert all("own partner P1" in e["reason"] for e in entries if not e["allowed"])


def test_show_rank_gives_partners_their_rank(store: Store, fake: FakeSlack) -> None:
    seed(store)
    access = {**ACCESS, "external": {**ACCESS["external"], "show_rank": True}}  # type: ignore[dict-item]
    for bot in start_bot(store, fake, app_config(access=access)):
        assert " of 3" in text_of(bot.answer("acme", user="UX"))


# --- the matrix: every asker, every request, nothing outside the asker's set ----------------

ASKERS: dict[str, tuple[str, str, set[str] | None]] = {
    # name: (user, channel, partners the asker may see; None: every one)
    "listed member": ("U1", "C1", None),
    "member in an allowed channel": ("U2", "CALLOWED", None),
    "group member": ("UG", "C1", None),
    "member off the lists": ("U2", "C1", set()),
    "guest mapped by domain": ("UGUEST", "CALLOWED", {"P1"}),
    "external mapped by domain": ("UX", "C1", {"P1"}),
    "external mapped by user": ("UMAPPED", "C1", {"P2"}),
    "external without a mapping": ("UY", "CALLOWED", set()),
    "failed lookup": ("UFAIL", "CALLOWED", set()),
}

COMMANDS = ["", "help", "acme", "northwind", "northwind traders", "globex", "P2", "P3", "top",
            "top 5 by close_rate", "compare acme vs northwind traders", "program", "at-risk",
            "acme last-quarter", "zzz"]  # fmt: skip
BUTTONS = ["scorecard_previous", "scorecard_compare", "scorecard_why", "choose_partner_1"]


def test_no_answer_holds_a_partner_outside_the_askers_set(store: Store, fake: FakeSlack) -> None:
    seed(store)
    app = app_config()
    figures = {pid: figures_of(store, app, [pid]) for pid in [*NAMES, None]}
    # UFAIL is unknown to the fake: its users.info fails (user_not_found).
    for bot in start_bot(store, fake, app):
        for asker, (user, channel, allowed) in ASKERS.items():
            visible = set(NAMES) if allowed is None else allowed
            outside = [pid for pid in NAMES if pid not in visible]
            forbidden = {NAMES[pid] for pid in outside} | {pid for pid in outside}
            own = set().union(*(figures[pid] for pid in visible)) if visible else set()
            forbidden |= set().union(*(figures[pid] for pid in outside)) - own
            if allowed is not None:  # partners' people never see the direct deals' figures
                forbidden |= figures[None] - own
            answers: list[tuple[str, str]] = []
            for text in COMMANDS:
                answers.append((f"/partner-kpi {text}", text_of(bot.answer(text, user, channel))))
            for action_id in BUTTONS:
                for pid in NAMES:
                    value = json.dumps({"partner_id": pid, "period": "last-90d"})
                    _, url = bot.click(action_id, value, user=user, channel=channel)
                    body = bot.fake.wait_for_response(url, timeout=15).body
                    answers.append((f"{action_id} {pid}", text_of(body)))
            for request, answer in answers:
                # What the asker typed may be echoed ("No partner matches “P2”").
                leaked = sorted(
                    word
                    for word in forbidden
                    if _mentions(answer, word) and word.lower() not in request.lower()
                )
                assert not leaked, f"{asker}: {request} shows {leaked}"
            if not visible:
                assert not any(NAMES["P1"] in answer for _, answer in answers), asker


def _mentions(answer: str, word: str) -> bool:
    """`word` in the answer, not as part of a longer id or figure (P2 in "P20", $1,000 in
    "$1,000,000")."""
    start = answer.find(word)
    while start >= 0:
        end = start + len(word)
        before = answer[start - 1] if start else " "
        after = answer[end] if end < len(answer) else " "
        if not (
            before.isalnum()
            or after.isalnum()
            or (after in ",." and answer[end + 1 : end + 2].isdigit())
        ):
            return True
        start = answer.find(word, start + 1)
    return False


def test_start_up_names_each_post_channel_shared_without_a_mapping(fake: FakeSlack) -> None:
    schedule = {"schedule": "0 9 * * 1", "timezone": "UTC"}
    app = app_config(
        digests=[
            {"name": "unmapped", "channel": "CEXT", **schedule},
            {"name": "mapped", "channel": "CSHARED", **schedule},
            {"name": "by-name", "channel": "#org-wide", **schedule},  # shared inside our org
        ],
        surveys=[{"name": "nps", "results_channel": "CPENDING", **schedule}],
    )
    facts = SlackFacts(web_client("xoxb-test", fake.api_url))
    problems = check_post_channels(facts, app)
    assert len(problems) == 2
    assert problems[0].startswith("digest unmapped: CEXT is shared with another organisation")
    assert problems[1].startswith("survey nps results: CPENDING is shared")
    assert "access.external.channels: {CPENDING: <partner id>}" in problems[1]
    fake.fail_next("conversations.list", error="missing_scope", extra={"needed": "channels:read"})
    (problem,) = [p for p in check_post_channels(SlackFacts(facts.client), app) if "by-name" in p]
    assert "could not check whether #org-wide is shared" in problem and "missing_scope" in problem


def test_a_shared_channel_mapping_names_a_channel_id(tmp_path: Path) -> None:
    text = "access:\n  external:\n    channels: {'#acme': P1}\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path / "app.yaml")
    assert "access.external.channels: '#acme' is not a channel id" in str(raised.value)
