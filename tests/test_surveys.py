"""DM surveys end to end: the real Bolt app on loopback with signed interactive requests, its
Web API client and the survey sender pointed at the loopback Slack stand-in, the store on SQLite
(and PostgreSQL when configured). Time is moved by hand through an injected clock."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.slack_app import web_client
from bot.surveys.sender import SurveySender
from kpi import schema
from kpi import surveys as db
from kpi.engine import KpiEngine
from kpi.models import Partner, SurveyResponse
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig, parse_config
from settings.base import ConfigError
from settings.periods import parse_period
from tests.fake_slack import (
    FakeSlack,
    block_action_body,
    input_value,
    post_to_bot,
    view_submission_body,
)
from tests.slack_bot import SECRET, start_bot

EVIL = "<!channel> Acme & <https://evil.example|co>"
# The first Tuesday of each quarter, 09:00 in Berlin: 2026-10-06 07:00 UTC, 2027-01-05 08:00 UTC.
QUARTERLY = "0 9 * 1,4,7,10 tue#1"
ROUND_1 = "20261006T0700Z"
ROUND_2 = "20270105T0800Z"
IN_ROUND_1 = datetime(2026, 10, 6, 7, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def campaign(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "nps",
        "schedule": QUARTERLY,
        "timezone": "Europe/Berlin",
        "results_channel": "C0RESULTS",
        "remind_after_hours": 72,
        "close_after_hours": 168,
        **overrides,
    }


def seed(store: Store) -> None:
    partners = [
        Partner(
            id="P1",
            name=EVIL,
            tier="Gold",
            joined_on=date(2024, 1, 1),
            contact_emails=(
                "Ann@acme.example",
                "bob@acme.example",
                "dee@acme.example",
                "ghost@acme.example",
            ),
        ),
        Partner(
            id="P2",
            name="Northwind",
            tier="Silver",
            joined_on=date(2024, 1, 1),
            contact_emails=("cy@northwind.example",),
        ),
        Partner(
            id="P3",
            name="Gone Ltd",
            joined_on=date(2024, 1, 1),
            left_on=date(2026, 6, 1),
            contact_emails=("old@gone.example",),
        ),
    ]
    with store.transaction() as connection:
        store.upsert(connection, partners, "test")


@dataclass
class World:
    store: Store
    fake: FakeSlack
    clock: Clock
    config: LoadedConfig
    url: str
    services: Any
    settle: Callable[[], None]  # returns once the bot has finished all it started

    def sender(self, **options: Any) -> SurveySender:
        client = web_client("xoxb-test", self.fake.api_url)
        return SurveySender(self.store, self.config, client, clock=self.clock, **options)

    def dm(self, user: str, round_id: str = ROUND_1) -> tuple[str, dict[str, Any]]:
        delivery = db.get_delivery(self.store, "nps", round_id, user)
        assert delivery is not None and delivery.channel_id and delivery.message_ts
        message = next(
            m for m in self.fake.messages_in(delivery.channel_id) if m["ts"] == delivery.message_ts
        )
        return delivery.channel_id, message

    def click(
        self,
        recipient: str,
        action_id: str,
        by: str | None = None,
        round_id: str = ROUND_1,
        action_ts: str | None = None,
        times: int = 1,
        expect_update: bool | None = None,
        message: dict[str, Any] | None = None,
    ) -> str:
        """Clicks a button of `recipient`'s DM (as `by`), as it stands now or as `message`
        was (a client showing an old version); returns the response_url."""
        channel, current = self.dm(recipient, round_id)
        message = message or current
        button = next(
            element
            for block in message["blocks"]
            if block["type"] == "actions"
            for element in block["elements"]
            if element["action_id"] == action_id
        )
        response_url = self.fake.new_response_url()
        body = block_action_body(
            action_id,
            button["value"],
            user_id=by or recipient,
            channel_id=channel,
            response_url=response_url,
            message=message,
            action_ts=action_ts,
        )
        updates = len(self.fake.calls_to("chat.update"))
        for _ in range(times):
            reply = post_to_bot(self.url, body, SECRET)
            assert reply.status == 200, reply
        if expect_update is None:
            expect_update = (by or recipient) == recipient and action_id != "survey_comment"
        if expect_update:  # the DM is updated after the ack, once however often delivered
            self.fake.wait_for(lambda: len(self.fake.calls_to("chat.update")) >= updates + 1)
        return response_url

    def answers(self) -> list[SurveyResponse]:
        return self.store.records(SurveyResponse)

    def dms_to(self, user: str) -> list[Any]:
        """chat.postMessage calls that reached `user`'s DM and succeeded (replies excluded)."""
        channel = self.fake._open_im(user)[0].id  # the one DM between the bot and `user`
        return [
            c
            for c in self.fake.calls_to("chat.postMessage")
            if c.ok and c.response.get("channel") == channel and not c.body.get("thread_ts")
        ]


def make_world(
    store: Store, fake: FakeSlack, app_extra: dict[str, Any] | None = None, **overrides: Any
) -> Iterator[World]:
    seed(store)
    app = AppConfig.model_validate({"surveys": [campaign(**overrides)], **(app_extra or {})})
    clock = Clock(IN_ROUND_1)
    for bot in start_bot(store, fake, app):
        bot.services.now = clock
        yield World(store, fake, clock, bot.services.config, bot.url, bot.services, bot.settle)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(wall_clock_ts=True) as server:  # ts from the clock, as Slack's are
        server.add_user("UA", "ann", email="ann@acme.example")
        server.add_user("UB", "bob", email="bob@acme.example")
        server.add_user("UD", "dee", email="dee@acme.example")
        server.add_user("UC", "cy", email="cy@northwind.example")
        server.add_user("UO", "old", email="old@gone.example")
        server.add_user("UZ", "zed", email="zed@ourco.example")
        yield server


@pytest.fixture
def world(store: Store, fake: FakeSlack) -> Iterator[World]:
    yield from make_world(store, fake)


@pytest.fixture
def anonymous_world(store: Store, fake: FakeSlack) -> Iterator[World]:
    yield from make_world(store, fake, anonymous=True)


def scores_of(world: World) -> dict[str, int]:
    return {answer.respondent or answer.id: answer.score for answer in world.answers()}


# --- sending -----------------------------------------------------------------------------------


def test_a_round_is_sent_once_to_each_resolvable_contact(world: World, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", "ratelimited", retry_after=1)  # retried after Retry-After
    sender = world.sender()
    sender.tick()
    sender.tick()
    world.sender(replica="other").tick()  # a second replica finds nothing left to do
    for user in ("UA", "UB", "UD", "UC"):
        assert len(world.dms_to(user)) == 1, user
    assert world.dms_to("UO") == []  # Gone Ltd left the program
    assert world.dms_to("UZ") == []  # not a contact
    delivered = db.deliveries(world.store, "nps", ROUND_1)
    assert sorted(d.slack_user_id for d in delivered) == ["UA", "UB", "UC", "UD"]
    assert {d.partner_id for d in delivered if d.slack_user_id == "UC"} == {"P2"}
    # the DM: eleven buttons 0-10, the question, the partner's name escaped
    _, message = world.dm("UA")
    ids = [
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert [i for i in ids if i.startswith("survey_score_")] == [
        f"survey_score_{n}" for n in range(11)
    ]
    assert "survey_stop" in ids
    intro = message["blocks"][0]["text"]["text"]
    assert "How likely are you to recommend partnering with us to a peer?" in intro
    assert "<!channel>" not in intro and "&lt;!channel&gt;" in intro
    # the unresolved contact is listed, not dropped
    from bot.cli_survey import status_lines

    lines = status_lines(sender, sender.campaign("nps"), world.clock())  # type: ignore[arg-type]
    text = "\n".join(lines)
    assert "unresolved: ghost@acme.example" in text
    assert f"Round {ROUND_1} (open" in text and "sent 4, answered 0" in text
    # lookups are cached in the database: sending the round again looks nobody up
    lookups = len(fake.calls_to("users.lookupByEmail"))
    assert lookups == 5  # ann, bob, dee, ghost and cy; old@gone.example left with its partner
    report = world.sender(replica="third").send_round(
        sender.campaign("nps"),  # type: ignore[arg-type]
        sender.current_round(sender.campaign("nps"), world.clock()),  # type: ignore[arg-type]
    )
    assert (report.sent, report.already, report.unresolved) == (0, 4, 1)
    assert len(fake.calls_to("users.lookupByEmail")) == lookups


# --- answering ---------------------------------------------------------------------------------


def test_an_answer_and_a_changed_answer_give_one_counted_answer(world: World) -> None:
    world.sender().tick()
    world.click("UA", "survey_score_3")
    # committed before the ack: the row is there as soon as the request returned
    assert scores_of(world) == {"ann@acme.example": 3}
    _, message = world.dm("UA")
    assert "Your answer: *3* out of 10" in json.dumps(message)
    assert any(c.ok for c in world.fake.calls_to("chat.update"))
    world.click("UA", "survey_change")  # the DM shows the scale again, with the answer so far
    assert "Your answer so far: *3*" in json.dumps(world.dm("UA")[1])
    world.click("UA", "survey_score_9")
    assert scores_of(world) == {"ann@acme.example": 9}
    assert len(world.answers()) == 1
    answer = world.answers()[0]
    assert (answer.partner_id, answer.campaign_id) == ("P1", "nps")


def test_a_duplicated_delivery_of_a_click_gives_one_answer(world: World) -> None:
    world.sender().tick()
    world.click("UB", "survey_score_8", action_ts="1759737600.000001", times=3)
    assert scores_of(world) == {"bob@acme.example": 8}
    world.settle()  # more updates, were there any, have come by now
    assert len(world.fake.calls_to("chat.update")) == 1  # the DM shows the answer once
    world.click("UB", "survey_comment", action_ts="1759737600.000003", times=2)
    world.settle()
    assert len(world.fake.calls_to("views.open")) == 1
    # and deliveries that arrive at the same time
    channel, message = world.dm("UC")
    value = f"nps|{ROUND_1}|UC"
    body = block_action_body(
        "survey_score_7", value, user_id="UC", channel_id=channel, message=message,
        response_url=world.fake.new_response_url(), action_ts="1759737600.000002",
    )  # fmt: skip
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(post_to_bot(world.url, body, SECRET).status)
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert scores_of(world) == {"bob@acme.example": 8, "cy@northwind.example": 7}


def test_a_click_by_another_user_is_refused(world: World) -> None:
    world.sender().tick()
    url = world.click("UA", "survey_score_0", by="UZ")
    posted = world.fake.wait_for_response(url)
    assert "sent to someone else" in posted.body["text"]
    assert posted.body["response_type"] == "ephemeral"
    assert world.answers() == []
    world.click("UA", "survey_stop", by="UB")
    assert db.opted_out(world.store, "nps") == set()


def test_a_click_after_the_close_is_refused(world: World) -> None:
    world.sender().tick()
    asked = world.dm("UC")[1]
    world.click("UC", "survey_score_10")
    world.clock.now = IN_ROUND_1 + timedelta(days=8)  # closed after 7 days
    for url in (
        world.click("UC", "survey_score_2", expect_update=False, message=asked),
        world.click("UC", "survey_change", expect_update=False),
        world.click("UB", "survey_score_5", expect_update=False),
    ):
        posted = world.fake.wait_for_response(url)
        assert "round closed" in posted.body["text"]
    assert scores_of(world) == {"cy@northwind.example": 10}  # the last answer before the close


def test_a_comment_is_kept_and_shown_escaped_in_the_results(world: World) -> None:
    world.sender().tick()
    world.click("UA", "survey_score_10")
    world.click("UA", "survey_comment")
    view = world.fake.wait_for(lambda: world.fake.views[-1] if world.fake.views else None)
    comment = "Great team <!here> & more"
    body = view_submission_body(
        values={"survey_comment": {"comment": input_value(comment)}}, user_id="UA", view=view
    )
    reply = post_to_bot(world.url, body, SECRET)
    assert reply.status == 200
    assert [a.comment for a in world.answers()] == [comment]
    # someone else submitting that modal is refused with an error on the field
    forged = view_submission_body(
        values={"survey_comment": {"comment": input_value("spam")}}, user_id="UZ", view=view
    )
    refused = post_to_bot(world.url, forged, SECRET).json()
    assert refused["response_action"] == "errors"
    assert [a.comment for a in world.answers()] == [comment]
    world.clock.now = IN_ROUND_1 + timedelta(days=7, minutes=1)
    world.sender().tick()
    results = world.fake.messages_in("C0RESULTS")
    assert len(results) == 1
    raw = json.dumps(results[0]["blocks"])
    assert "Great team &lt;!here&gt; &amp; more" in raw and "<!here>" not in raw


def test_opting_out_stops_later_rounds(world: World) -> None:
    world.sender().tick()
    world.click("UA", "survey_stop")
    assert "won't get these surveys again" in json.dumps(world.dm("UA")[1])
    world.clock.now = datetime(2027, 1, 5, 8, 5, tzinfo=UTC)  # the next quarter's round
    world.sender().tick()
    assert len(world.dms_to("UA")) == 1  # the first round's DM only
    assert len(world.dms_to("UB")) == 2
    assert db.get_delivery(world.store, "nps", ROUND_2, "UA") is None
    assert db.get_delivery(world.store, "nps", ROUND_2, "UB") is not None


def test_a_restart_in_the_middle_of_sending_finishes_without_duplicates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.sender(replica="first")
    posts = {"n": 0}
    real_post = first.client.chat_postMessage  # type: ignore[union-attr]

    def dies_at_the_third(**kwargs: Any) -> Any:
        posts["n"] += 1
        if posts["n"] == 3:
            raise RuntimeError("the process died")  # after its claim, before its post
        return real_post(**kwargs)

    monkeypatch.setattr(first.client, "chat_postMessage", dies_at_the_third)
    # and the second DM is posted but the process dies before marking it sent
    real_mark = world.store.mark_sent
    marks = {"n": 0}

    def mark_dies_once(key: str, ts: str | None) -> None:
        marks["n"] += 1
        if marks["n"] == 2:
            raise RuntimeError("the process died")
        real_mark(key, ts)

    monkeypatch.setattr(world.store, "mark_sent", mark_dies_once)
    nps = first.campaign("nps")
    assert nps is not None
    times = first.current_round(nps, world.clock())
    assert times is not None
    with pytest.raises(RuntimeError):  # dies after posting bob's DM, before marking it
        first.send_round(nps, times)
    monkeypatch.setattr(world.store, "mark_sent", real_mark)
    with pytest.raises(RuntimeError):  # restarted, dies again with dee's claim, before the post
        first.send_round(nps, times)
    assert posts["n"] == 3
    assert [len(world.dms_to(u)) for u in ("UA", "UB", "UD", "UC")] == [1, 1, 0, 0]
    unmarked = world.store.claim_state(f"survey:nps:{ROUND_1}:UB")
    assert unmarked is not None and unmarked["posted_at"] is None
    # a new replica, once the dead one's claims are stale
    second = world.sender(replica="second", stale=timedelta(microseconds=1))
    second.tick()
    second.tick()
    for user in ("UA", "UB", "UC", "UD"):
        assert len(world.dms_to(user)) == 1, user
    for user in ("UA", "UB", "UC", "UD"):
        state = world.store.claim_state(f"survey:nps:{ROUND_1}:{user}")
        assert state is not None and state["posted_at"] is not None


def test_a_dm_slack_accepted_just_before_its_sender_died_is_not_sent_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.sender(replica="first")
    real_delivered = db.delivered

    def dies_after_slack_answered(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died")  # Slack has the DM; its ts is recorded nowhere

    monkeypatch.setattr(db, "delivered", dies_after_slack_answered)
    nps = first.campaign("nps")
    assert nps is not None
    times = first.current_round(nps, world.clock())
    assert times is not None
    with pytest.raises(RuntimeError):
        first.send_round(nps, times)
    monkeypatch.setattr(db, "delivered", real_delivered)
    (asked,) = [u for u in ("UA", "UB", "UC", "UD") if world.dms_to(u)]
    key = f"survey:nps:{ROUND_1}:{asked}"
    unmarked = world.store.claim_state(key)
    assert unmarked is not None and unmarked["posted_at"] is None
    # a new replica, once the dead one's claim is stale: it finds the DM in the DM's history
    second = world.sender(replica="second", stale=timedelta(microseconds=1))
    second.tick()
    for user in ("UA", "UB", "UC", "UD"):
        assert len(world.dms_to(user)) == 1, user
    (dm,) = world.dms_to(asked)
    assert dm.body["metadata"]["event_payload"] == {"key": key}
    state = world.store.claim_state(key)
    assert state is not None and state["slack_ts"] == dm.response["ts"]
    world.click(asked, "survey_score_9")  # the recorded DM can be answered
    assert len(world.answers()) == 1


def test_without_im_history_a_stale_claim_is_sent_and_the_missing_scope_said(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"survey:nps:{ROUND_1}:UA"
    assert world.store.claim(key, "survey", "crashed-replica")  # died before its post
    world.fake.fail_next(
        "conversations.history",
        error="missing_scope",
        extra={"needed": "im:history", "provided": "chat:write,im:write"},
    )
    with caplog.at_level(logging.WARNING, logger="partner_kpi.surveys"):
        world.sender(replica="second", stale=timedelta(microseconds=1)).tick()
    assert len(world.dms_to("UA")) == 1
    (line,) = [r.getMessage() for r in caplog.records if "missing_scope" in r.getMessage()]
    assert "im:history" in line and "reinstall" in line


def test_a_dm_slack_refuses_is_retried_at_the_next_tick(world: World) -> None:
    world.fake.fail_next("chat.postMessage", "internal_error", times=1)
    sender = world.sender()
    nps = sender.campaign("nps")
    assert nps is not None
    times = sender.current_round(nps, world.clock())
    assert times is not None
    report = sender.send_round(nps, times)
    assert (report.sent, report.failed) == (3, 1)
    world.sender().tick()
    assert [len(world.dms_to(u)) for u in ("UA", "UB", "UC", "UD")] == [1, 1, 1, 1]


# --- reminder, close, results ------------------------------------------------------------------


def test_one_reminder_to_those_who_have_not_answered_and_one_summary(world: World) -> None:
    world.sender().tick()
    world.click("UA", "survey_score_9")
    world.clock.now = IN_ROUND_1 + timedelta(hours=73)
    world.sender().tick()
    world.sender(replica="other").tick()
    reminders = [c for c in world.fake.calls_to("chat.postMessage") if c.body.get("thread_ts")]
    channels = sorted(c.response["channel"] for c in reminders if c.ok)
    expected = sorted(
        str(d.channel_id)
        for d in db.deliveries(world.store, "nps", ROUND_1)
        if d.slack_user_id != "UA"
    )
    assert channels == expected and len(channels) == 3
    world.clock.now = IN_ROUND_1 + timedelta(hours=169)
    world.sender().tick()
    world.sender(replica="other").tick()
    results = world.fake.messages_in("C0RESULTS")
    assert len(results) == 1
    assert "1 of 4 answered (25%)" in json.dumps(results[0]["blocks"])


def test_the_scorecards_partner_nps_equals_the_nps_worked_out_by_hand(world: World) -> None:
    world.sender().tick()
    given = {"UA": 10, "UB": 9, "UD": 5, "UC": 7}
    for user, score in given.items():
        world.click(user, f"survey_score_{score}")
    world.click("UD", "survey_change")
    world.click("UD", "survey_score_4")  # a changed answer: still a detractor, counted once
    given["UD"] = 4
    partner_of = {"UA": "P1", "UB": "P1", "UD": "P1", "UC": "P2"}

    def by_hand(scores: list[int]) -> float:
        promoters = len([s for s in scores if s in (9, 10)])
        detractors = len([s for s in scores if 0 <= s <= 6])
        return 100 * (promoters - detractors) / len(scores)

    engine = KpiEngine(world.store, world.config.app.kpi_settings)
    period = parse_period("last-30d", date(2026, 10, 20))
    for pid in ("P1", "P2"):
        scores = [given[u] for u in given if partner_of[u] == pid]
        card = engine.partner(pid, period)
        assert card["kpis"]["partner_nps"] == pytest.approx(by_hand(scores))
        assert card["kpis"]["survey_responses"] == len(scores)
    # and the results summary says the same
    world.clock.now = IN_ROUND_1 + timedelta(days=7)
    world.sender().tick()
    (summary,) = world.fake.messages_in("C0RESULTS")
    text = json.dumps(summary["blocks"])
    assert f"NPS *{by_hand(list(given.values())):+.0f}*" in text  # overall: (2 - 2) / 4
    assert "Northwind: NPS +0 (1 answer)" in text


def test_an_anonymous_round_keeps_only_partner_and_score(anonymous_world: World) -> None:
    world = anonymous_world
    world.sender().tick()
    world.click("UA", "survey_score_6")
    world.click("UA", "survey_change")
    world.click("UA", "survey_score_10")
    world.click("UB", "survey_score_2", times=2)
    answers = world.answers()
    assert sorted(a.score for a in answers) == [2, 10]
    for answer in answers:
        assert answer.respondent is None and answer.comment is None
        assert "UA" not in answer.id and "UB" not in answer.id
        assert answer.submitted_at == IN_ROUND_1.replace(minute=0)  # the round's start
    delivered = db.deliveries(world.store, "nps", ROUND_1)
    assert all(d.score is None for d in delivered)
    _, message = world.dm("UA")
    assert "survey_comment" not in json.dumps(message)
    world.clock.now = IN_ROUND_1 + timedelta(days=7)
    world.sender().tick()
    the_round = db.get_round(world.store, "nps", ROUND_1)
    assert the_round is not None and the_round.salt is None  # no link to people any more
    with world.store.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(schema.survey_responses)
        ).scalar_one()
    assert count == 2


# --- configuration -----------------------------------------------------------------------------


def config_error(surveys: list[dict[str, Any]]) -> str:
    text = json.dumps({"surveys": surveys})
    with pytest.raises(ConfigError) as error:
        parse_config(text, Path("app.yaml"))
    return str(error.value)


def test_a_campaign_validates_with_defaults() -> None:
    loaded = parse_config(json.dumps({"surveys": [campaign()]}), Path("app.yaml"))
    (nps,) = loaded.app.surveys
    assert nps.question == "How likely are you to recommend partnering with us to a peer?"
    assert nps.audience.all and not nps.anonymous
    tiers = parse_config(
        json.dumps({"surveys": [campaign(audience={"tiers": ["gold"]})]}), Path("app.yaml")
    )
    assert not tiers.app.surveys[0].audience.all


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schedule": "every tuesday"}, "surveys[0].schedule: 'every tuesday' is not a cron"),
        ({"timezone": "Mars/Base"}, "app.yaml: surveys[0].timezone: unknown timezone 'Mars/Base'"),
        ({"audence": {}}, "app.yaml: surveys[0].audence: unknown field; expected one of name,"),
        ({"audience": {"tier": ["x"]}}, "audience.tier: unknown field; expected one of all,"),
        ({"audience": {"all": True, "tiers": ["x"]}}, "surveys[0].audience: use either all: true"),
        ({"remind_after_hours": 200}, "surveys[0]: remind_after_hours (200) must be less than"),
        ({"close_after_hours": 0}, "surveys[0].close_after_hours: Input should be greater than 0"),
        ({"results_channel": None}, "surveys[0].results_channel:"),
        ({"name": "has space"}, "surveys[0].name: String should match pattern"),
    ],
)  # fmt: skip
def test_a_bad_campaign_names_the_field(change: dict[str, Any], expected: str) -> None:
    bad = campaign(**change)
    if change.get("results_channel", "") is None:
        del bad["results_channel"]
    assert expected in config_error([bad])


def test_two_campaigns_with_one_name_are_refused() -> None:
    assert "two surveys are named 'nps'" in config_error([campaign(), campaign(name="NPS")])


# --- the command line --------------------------------------------------------------------------


def command_line_world(
    tmp_path: Path, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Store]:
    """An app.yaml with the campaign, its store seeded, and the environment aimed at `fake`."""
    from kpi.store import open_store

    database = tmp_path / "kpi.db"
    config_file = tmp_path / "app.yaml"
    config_file.write_text(
        json.dumps({"database_url": f"sqlite:///{database}", "surveys": [campaign()]})
    )
    store = open_store(f"sqlite:///{database}")
    seed(store)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", fake.api_url)
    return config_file, store


def test_survey_send_dry_run_send_and_status_on_the_command_line(
    tmp_path: Path,
    fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import main

    config_file, store = command_line_world(tmp_path, fake, monkeypatch)
    store.engine.dispose()

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(["--config", str(config_file), *args])
            status = 0
        except SystemExit as done:
            status = int(done.code or 0)
        out = capsys.readouterr()
        return status, out.out, out.err

    status, out, _ = run("survey", "send", "nps", "--dry-run")
    assert status == 0
    assert "4 would be asked." in out
    assert "ghost@acme.example" in out and "not in Slack" in out
    assert fake.calls_to("chat.postMessage") == []
    status, out, _ = run("survey", "send", "nps", "--send")
    assert status == 0 and "4 sent" in out and "1 not found in Slack" in out
    assert len([c for c in fake.calls_to("chat.postMessage") if c.ok]) == 4
    status, out, _ = run("survey", "send", "nps", "--send")
    assert "0 sent, 4 asked before" in out
    status, out, _ = run("survey", "status")
    assert status == 0
    assert "sent 4, answered 0, response rate 0%" in out
    assert "unresolved: ghost@acme.example" in out
    status, _, err = run("survey", "status", "nope")
    assert status == 2 and "no survey campaign is named 'nope'; the campaigns are nps." in err
    status, out, _ = run("jobs")
    (line,) = [row for row in out.splitlines() if row.startswith("survey:nps")]
    assert "C0RESULTS" in line and QUARTERLY in line and "Europe/Berlin" in line
    assert f"{first_tuesday_of_a_quarter_from_now():%Y-%m-%d} 09:00 CE" in line


def first_tuesday_of_a_quarter_from_now() -> date:
    """The day of QUARTERLY's next 09:00 in Berlin, found by walking the calendar."""
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    day = now.date() if now.hour < 9 else now.date() + timedelta(days=1)
    while not (day.month in (1, 4, 7, 10) and day.day <= 7 and day.weekday() == 1):
        day += timedelta(days=1)
    return day


@pytest.mark.parametrize("mapped", [False, True])
def test_results_into_a_shared_channel_show_its_partner_alone_or_nothing(
    store: Store, fake: FakeSlack, mapped: bool
) -> None:
    fake.add_channel("CSHARED", "northwind-connect", connected_teams=["T9"])
    access = {"external": {"channels": {"CSHARED": "P2"}}} if mapped else {}
    for world in make_world(store, fake, {"access": access}, results_channel="CSHARED"):
        world.sender().tick()
        world.click("UA", "survey_score_10")  # Acme's contact (P1)
        world.click("UC", "survey_score_6")  # Northwind's (P2)
        world.clock.now = IN_ROUND_1 + timedelta(hours=169)
        world.sender().tick()
        results = world.fake.messages_in("CSHARED")
        if not mapped:
            assert results == []
            entry = store.audit_entries(limit=1)[0]
            assert (entry["allowed"], entry["request"]) == (False, "survey nps results to CSHARED")
            assert "shared with another organisation" in entry["reason"]
            continue
        (posted,) = results
        raw = json.dumps(posted["blocks"], ensure_ascii=False)
        assert "Northwind" in raw and "1 of 1 answered" in raw
        assert "!channel" not in raw and "2 answered" not in raw  # nothing of Acme (P1)


def test_a_round_sent_from_the_command_line_is_the_round(
    tmp_path: Path,
    fake: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli import main

    config_file, store = command_line_world(tmp_path, fake, monkeypatch)
    started = datetime(2026, 11, 10, 10, 0, 20, tzinfo=UTC)  # between two scheduled rounds
    clock = Clock(started)
    monkeypatch.setattr("bot.cli_survey.utc_now", clock)

    def send() -> str:
        try:
            main(["--config", str(config_file), "survey", "send", "nps", "--send"])
        except SystemExit as done:
            assert not done.code
        return capsys.readouterr().out

    assert "Round 20261110T1000Z of nps: 4 sent" in send()
    clock.now = started + timedelta(minutes=1)
    assert "Round 20261110T1000Z of nps: 0 sent, 4 asked before" in send()
    dms = [
        c.response["channel"]
        for c in fake.calls_to("chat.postMessage")
        if c.ok and not c.body.get("thread_ts")
    ]
    assert len(dms) == 4 and len(set(dms)) == 4  # one DM per person

    config = LoadedConfig(
        AppConfig.model_validate({"surveys": [campaign()]}), None, Path("."), "unused"
    )
    client = web_client("xoxb-test", fake.api_url)
    for hours in (73, 74, 169, 170):  # the reminder is due at 72 h, the close at 168 h
        clock.now = started + timedelta(hours=hours)
        SurveySender(store, config, client, clock=clock).tick()
        SurveySender(store, config, client, clock=clock, replica="other").tick()
    reminders = [c for c in fake.calls_to("chat.postMessage") if c.ok and c.body.get("thread_ts")]
    assert sorted(c.response["channel"] for c in reminders) == sorted(dms)
    (results,) = fake.messages_in("C0RESULTS")
    assert "0 of 4 answered" in json.dumps(results["blocks"])
    store.engine.dispose()
