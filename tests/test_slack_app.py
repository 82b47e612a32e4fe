"""The Slack app end to end: its real HTTP server on loopback, requests signed as Slack signs
them, and its Web API client and response_url answers going to a loopback stand-in for Slack."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

import bot.answers
from kpi import schema
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store
from settings.app import AppConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)
from tests.fake_slack import (
    RESPONSE_URL_OK,
    RESPONSE_URL_OK_PLAIN,
    FakeSlack,
    block_action_body,
    post_to_bot,
    slash_command_body,
)
from tests.slack_bot import SECRET, Bot, start_bot

EVIL = "<!channel> & <https://evil.example|click>"


NAMES = {"P1": "Acme Corp", "P2": "Northwind Traders", "P3": "Northwind Digital", "P4": EVIL}


def seed(
    store: Store,
    names: dict[str, str] = NAMES,
    owners: dict[str, str] | None = None,
    dealing: int | None = None,
) -> None:
    """Partners (with their `owners`' emails) and, for the first `dealing` of them (default
    all), won 1,000 (Oct 1), lost 2,000 (Oct 2), won 3,000 (Oct 3), lost 4,000 (Oct 4);
    then one good sync."""
    partners = [
        Partner(id=pid, name=name, joined_on=date(2024, 1, 1), owner_email=(owners or {}).get(pid))
        for pid, name in names.items()
    ]
    deals = [
        Deal(
            id=f"D-{pid}-{i}",
            partner_id=pid,
            name=f"Deal {i}",
            amount=Decimal(1000 * (i + 1)),
            status=DealStatus.WON if i % 2 == 0 else DealStatus.LOST,
            created_on=date(2026, 9, 1),
            closed_on=date(2026, 10, 1 + i),
        )
        for pid in list(names)[:dealing]
        for i in range(4)
    ]
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        server.add_user("U1", "ann", email="ann@ourco.example")
        server.add_user("U2", "bob", email="bob@ourco.example")
        server.add_user("UX", "pat", email="pat@acme.example", team_id="T2", is_stranger=True)
        yield server


@pytest.fixture
def slack_bot(store: Store, fake: FakeSlack) -> Iterator[Bot]:
    seed(store)
    app_config = AppConfig.model_validate(
        {"access": {"users": ["U1", "UX"], "external": {"domains": {"acme.example": "P1"}}}}
    )
    yield from start_bot(store, fake, app_config)


def test_scorecard_arrives_through_response_url(slack_bot: Bot, fake: FakeSlack) -> None:
    reply, url = slack_bot.command("acme")
    assert reply.status == 200
    posted = fake.wait_for_response(url)
    assert posted.ok, posted.reply
    body = posted.body
    assert body["response_type"] == "ephemeral"
    assert body["blocks"][0]["text"]["text"].startswith("Acme Corp")
    assert "won revenue $4,000" in body["text"]  # deals 0 and 2: 1,000 + 3,000
    synced = slack_bot.store.data_as_of()
    assert synced is not None
    footer = json.dumps(body["blocks"], ensure_ascii=False)
    assert f"Data as of {synced:%Y-%m-%d %H:%M} UTC (just now)" in footer


def test_ack_is_fast_even_when_the_answer_is_slow(
    slack_bot: Bot, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bot.answers.Answers.scorecard
    answer_may_finish = threading.Event()

    def slow(self, partner_id, period):  # type: ignore[no-untyped-def]
        answer_may_finish.wait(10)  # an answer slower than Slack's 3 seconds, until released
        return original(self, partner_id, period)

    monkeypatch.setattr(bot.answers.Answers, "scorecard", slow)
    started = time.monotonic()
    reply, url = slack_bot.command("acme")
    assert reply.status == 200
    assert time.monotonic() - started < 1.0
    assert fake.responses(url) == []  # acked while the answer is still being worked out
    answer_may_finish.set()
    assert fake.wait_for_response(url, timeout=10).ok


def test_forged_and_stale_requests_get_401_and_cause_nothing(
    slack_bot: Bot, fake: FakeSlack
) -> None:
    url = fake.new_response_url()
    body = slash_command_body(text="acme", response_url=url)
    assert post_to_bot(slack_bot.url, body, "not-the-secret").status == 401
    stale = int(time.time()) - 600
    assert post_to_bot(slack_bot.url, body, SECRET, timestamp=stale).status == 401
    slack_bot.settle()
    assert fake.responses(url) == []
    assert slack_bot.store.audit_entries() == []


def test_a_partner_name_reaches_slack_escaped(slack_bot: Bot, fake: FakeSlack) -> None:
    _, url = slack_bot.command("P4")
    posted = fake.wait_for_response(url)
    raw = json.dumps(posted.body, ensure_ascii=False)
    assert posted.ok
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in posted.body["text"]
    mrkdwn = [
        b["text"]["text"] for b in posted.body["blocks"] if b["type"] == "section" and "text" in b
    ]
    assert all("<!channel>" not in text for text in mrkdwn)
    assert "link_names" not in raw


def test_a_user_outside_the_list_is_refused_and_audited(slack_bot: Bot, fake: FakeSlack) -> None:
    _, url = slack_bot.command("acme", user="U2")
    posted = fake.wait_for_response(url)
    assert "isn't open to you" in posted.body["text"]
    entry = slack_bot.store.audit_entries()[0]
    assert (entry["user_id"], entry["allowed"]) == ("U2", False)
    assert entry["request"] == "/partner-kpi acme"


def test_an_external_user_sees_only_its_own_partner(slack_bot: Bot, fake: FakeSlack) -> None:
    _, own = slack_bot.command("acme", user="UX")
    assert fake.wait_for_response(own).body["blocks"][0]["text"]["text"].startswith("Acme Corp")
    _, other = slack_bot.command("northwind traders", user="UX")
    assert "No partner matches" in fake.wait_for_response(other).body["text"]
    _, top = slack_bot.command("top", user="UX")
    assert "your own partnership" in fake.wait_for_response(top).body["text"]


def test_ambiguity_buttons_pick_a_partner(slack_bot: Bot, fake: FakeSlack) -> None:
    _, url = slack_bot.command("northwind")
    choice = fake.wait_for_response(url).body
    buttons = choice["blocks"][-1]["elements"]
    assert sorted(b["text"]["text"] for b in buttons) == ["Northwind Digital", "Northwind Traders"]
    traders = next(b for b in buttons if b["text"]["text"] == "Northwind Traders")
    reply, picked = slack_bot.click(traders["action_id"], traders["value"])
    assert reply.status == 200
    posted = fake.wait_for_response(picked).body
    assert posted["replace_original"] is True
    assert posted["blocks"][0]["text"]["text"].startswith("Northwind Traders")


def redeliver(bot: Bot, action_id: str, value: str) -> tuple[str, str]:
    """One click delivered twice, as Slack redelivers it: the same payload (action_ts,
    trigger_id, response_url), the second time with X-Slack-Retry-Num. Returns the
    response_url and the click's trigger_id."""
    response_url = bot.fake.new_response_url()
    trigger_id = "1337.42.redelivered"
    body = block_action_body(
        action_id,
        value,
        response_url=response_url,
        action_ts="1700000002.000002",
        trigger_id=trigger_id,
    )
    assert post_to_bot(bot.url, body, SECRET).status == 200
    bot.fake.wait_for_response(response_url)
    assert post_to_bot(bot.url, body, SECRET, retry_num=1).status == 200
    bot.settle()  # a second answer, were there one, has come by now
    return response_url, trigger_id


SCORECARD_BUTTON = json.dumps({"partner_id": "P1", "period": "last-90d"})


@pytest.mark.parametrize(
    "action_id",
    ["scorecard_share", "scorecard_previous", "scorecard_compare", "scorecard_why"],
)
def test_a_redelivered_click_posts_once_and_is_marked_posted(
    slack_bot: Bot, fake: FakeSlack, action_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    response_url, trigger_id = redeliver(slack_bot, action_id, SCORECARD_BUTTON)
    assert len(fake.responses(response_url)) == 1
    state = slack_bot.store.claim_state(f"click:U1:1700000002.000002:{trigger_id}")
    assert state is not None and state["posted_at"] is not None
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_redelivered_pick_from_a_list_answers_once(slack_bot: Bot, fake: FakeSlack) -> None:
    _, url = slack_bot.command("northwind")
    buttons = fake.wait_for_response(url).body["blocks"][-1]["elements"]
    response_url, _ = redeliver(slack_bot, buttons[0]["action_id"], buttons[0]["value"])
    assert len(fake.responses(response_url)) == 1


def test_two_clicks_of_one_button_both_answer(slack_bot: Bot, fake: FakeSlack) -> None:
    _, first = slack_bot.click("scorecard_share", SCORECARD_BUTTON, action_ts="1700000003.1")
    _, second = slack_bot.click("scorecard_share", SCORECARD_BUTTON, action_ts="1700000004.1")
    assert fake.wait_for_response(first).ok and fake.wait_for_response(second).ok


@pytest.mark.parametrize("accepted_with", [RESPONSE_URL_OK, RESPONSE_URL_OK_PLAIN])
def test_any_2xx_from_response_url_is_a_posted_share(
    store: Store, accepted_with: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store)
    app_config = AppConfig.model_validate({"access": {"users": ["U1"]}})
    with FakeSlack(response_url_accepts_with=accepted_with) as fake:
        fake.add_user("U1", "ann", email="ann@ourco.example")
        for bot in start_bot(store, fake, app_config):
            _, url = bot.click("scorecard_share", SCORECARD_BUTTON, action_ts="1700000005.1")
            assert fake.wait_for_response(url).body["response_type"] == "in_channel"
            bot.settle()  # the bot records the post after Slack's answer
    (row,) = [r for r in store_rows(store) if r["key"].startswith("click:U1:1700000005.1:")]
    assert row["posted_at"] is not None
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_refused_reply_is_logged_and_not_marked_posted(
    slack_bot: Bot, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next("response_url", "expired_url", status=404)
    _, url = slack_bot.click("scorecard_share", SCORECARD_BUTTON, action_ts="1700000006.1")
    assert fake.wait_for_response(url).status == 404
    slack_bot.settle()
    (row,) = [r for r in store_rows(slack_bot.store) if "1700000006.1" in r["key"]]
    assert row["posted_at"] is None
    assert any("Slack refused a reply (HTTP 404): expired_url" in r.message for r in caplog.records)


def store_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(schema.send_log))]


def test_unknown_words_get_help_or_suggestions(slack_bot: Bot, fake: FakeSlack) -> None:
    _, url = slack_bot.command("")
    assert "partner-kpi:" in fake.wait_for_response(url).body["text"]
    _, url = slack_bot.command("Acme Crp Xyz")
    assert "Did you mean" in fake.wait_for_response(url).body["text"]


def test_health_reports_freshness(slack_bot: Bot) -> None:
    import urllib.request

    health_url = slack_bot.url.replace("/slack/events", "/health")
    with urllib.request.urlopen(health_url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "ok" and body["last_sync_status"] == "ok"
    assert datetime.fromisoformat(body["data_as_of"]) <= datetime.now(UTC)


def test_a_refused_signature_logs_the_reason_and_header_names_never_the_body(
    slack_bot: Bot, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    url = fake.new_response_url()
    body = slash_command_body(text="acme", response_url=url)
    caplog.set_level(logging.DEBUG)
    assert post_to_bot(slack_bot.url, body, "not-the-secret").status == 401
    stale = int(time.time()) - 600
    assert post_to_bot(slack_bot.url, body, SECRET, timestamp=stale).status == 401
    spoiled = {"X-Slack-Request-Timestamp": "soon"}
    assert post_to_bot(slack_bot.url, body, SECRET, headers=spoiled).status == 401
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused a request: the signature does not match the signing secret" in logged
    assert "refused a request: its timestamp is more than 5 minutes away from now" in logged
    assert "no X-Slack-Request-Timestamp header with a number" in logged
    assert "x-slack-signature" in logged
    assert url not in logged and "response_url" not in logged and "acme" not in logged
    assert "v0=" not in logged  # nor the signature's value
