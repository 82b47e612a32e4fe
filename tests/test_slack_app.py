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
from pathlib import Path

import pytest

import bot.answers
from bot.server import http_server
from bot.slack_app import build_app
from kpi.config import AppConfig, LoadedConfig
from kpi.models import Deal, DealStatus, Partner
from kpi.store import Store
from tests.fake_slack import (
    FakeSlack,
    block_action_body,
    post_to_bot,
    slash_command_body,
)

SECRET = "test-signing-secret"
TODAY = date(2026, 11, 22)
EVIL = "<!channel> & <https://evil.example|click>"


def seed(store: Store) -> None:
    names = {"P1": "Acme Corp", "P2": "Northwind Traders", "P3": "Northwind Digital", "P4": EVIL}
    partners = [
        Partner(id=pid, name=name, joined_on=date(2024, 1, 1)) for pid, name in names.items()
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
        for pid in names
        for i in range(4)
    ]
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals], "test")
    run = store.start_sync("test", full=True)
    store.finish_sync(run, "ok", {})


class Bot:
    def __init__(self, url: str, fake: FakeSlack, store: Store) -> None:
        self.url, self.fake, self.store = url, fake, store

    def command(self, text: str, user: str = "U1", channel: str = "C1", **headers: str):  # type: ignore[no-untyped-def]
        response_url = self.fake.new_response_url()
        body = slash_command_body(
            text=text, user_id=user, channel_id=channel, response_url=response_url
        )
        return post_to_bot(self.url, body, SECRET, headers=headers or None), response_url

    def click(
        self,
        action_id: str,
        value: str,
        user: str = "U1",
        retry_num: int | None = None,
        action_ts: str = "1700000001.000001",
    ):  # type: ignore[no-untyped-def]
        response_url = self.fake.new_response_url()
        body = block_action_body(
            action_id, value, user_id=user, response_url=response_url, action_ts=action_ts
        )
        return post_to_bot(self.url, body, SECRET, retry_num=retry_num), response_url


def start_bot(store: Store, fake: FakeSlack, app_config: AppConfig) -> Iterator[Bot]:
    config = LoadedConfig(app_config, None, Path("."), "unused")
    app, _ = build_app(
        store, config, token="xoxb-test", signing_secret=SECRET, api_url=fake.api_url,
        today=lambda: TODAY,
    )  # fmt: skip
    server = http_server(app, store, "127.0.0.1", 0, "/slack/events")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bot(f"http://127.0.0.1:{server.server_port}/slack/events", fake, store)
    finally:
        server.shutdown()
        server.server_close()


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


def test_ack_is_fast_even_when_the_answer_is_slow(
    slack_bot: Bot, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bot.answers.Answers.scorecard

    def slow(self, partner_id, period):  # type: ignore[no-untyped-def]
        time.sleep(3.5)
        return original(self, partner_id, period)

    monkeypatch.setattr(bot.answers.Answers, "scorecard", slow)
    started = time.monotonic()
    reply, url = slack_bot.command("acme")
    assert reply.status == 200
    assert time.monotonic() - started < 1.0
    assert fake.wait_for_response(url, timeout=10).ok


def test_forged_and_stale_requests_get_401_and_cause_nothing(
    slack_bot: Bot, fake: FakeSlack
) -> None:
    url = fake.new_response_url()
    body = slash_command_body(text="acme", response_url=url)
    assert post_to_bot(slack_bot.url, body, "not-the-secret").status == 401
    stale = int(time.time()) - 600
    assert post_to_bot(slack_bot.url, body, SECRET, timestamp=stale).status == 401
    time.sleep(0.5)
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


def test_a_retried_share_click_posts_once(slack_bot: Bot, fake: FakeSlack) -> None:
    value = json.dumps({"partner_id": "P1", "period": "last-90d"})
    _, first = slack_bot.click("scorecard_share", value)
    assert fake.wait_for_response(first).body["response_type"] == "in_channel"
    _, again = slack_bot.click("scorecard_share", value, retry_num=1)
    time.sleep(1.0)
    assert fake.responses(again) == []
    shared = [r for r in fake.responses() if r.body.get("response_type") == "in_channel"]
    assert len(shared) == 1


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
