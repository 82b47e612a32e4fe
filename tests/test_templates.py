"""Every template renders valid Block Kit within Slack's limits for the largest realistic
inputs, and CRM or user text can never ping, link or format."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from bot.answers import Answers
from bot.blockkit import MAX_TOTAL_CHARS, Message, fit, violations
from bot.intents import parse
from bot.messages import escape_mrkdwn, render
from kpi.models import Deal, DealStatus, Partner, StageChange, SurveyResponse
from kpi.store import Store
from settings.app import AppConfig
from settings.kpi import TierConfig
from tests.databases import sqlite_only  # noqa: F401 (the fixture: SQLite only)

TODAY = date(2026, 11, 22)
EVIL = "<!channel> & <https://evil.example|click>"
APP = AppConfig(
    stages=["Prospecting", "Proposal", "Closed Won", "Closed Lost"],
    kpi={"tiers": [TierConfig(name="Gold", min_score=80), TierConfig(name="Silver", min_score=60)]},
)


def long_name(i: int) -> str:
    return (f"{EVIL} Partner {i:02d} " + "Großhandel & Söhne " * 12)[:200]


@pytest.fixture
def big_store(store: Store) -> Store:
    """60 partners with 200-character names full of Slack control characters, with deals."""
    partners = [
        Partner(id=f"P{i:02d}", name=long_name(i), tier="Silver", joined_on=date(2024, 1, 1))
        for i in range(60)
    ]
    deals, changes = [], []
    for i in range(60):
        for j in range(i % 5 + 1):
            won = j % 2 == 0
            deal_id = f"D{i:02d}-{j}"
            deals.append(
                Deal(
                    id=deal_id,
                    partner_id=f"P{i:02d}",
                    name=f"{EVIL} deal {j} " + "x" * 150,
                    amount=Decimal(1000 * (i + 1) + j),
                    status=DealStatus.WON if won else DealStatus.LOST,
                    created_on=date(2026, 9, 1),
                    closed_on=date(2026, 10, 1 + j),
                )
            )
            changes.append(
                StageChange(
                    deal_id=deal_id,
                    stage="Prospecting",
                    entered_at=datetime(2026, 9, 1, 9, tzinfo=UTC),
                )
            )
    answers = [
        SurveyResponse(
            id="s1",
            partner_id="P00",
            score=9,
            comment=EVIL,
            submitted_at=datetime(2026, 10, 1, tzinfo=UTC),
        )
    ]
    with store.transaction() as connection:
        store.upsert(connection, [*partners, *deals, *changes, *answers], "test")
        store.refresh_stays(connection)
    return store


def answers_for(store: Store) -> Answers:
    return Answers(store, APP, lambda: TODAY)


def assert_valid(message: Message) -> None:
    assert message.text, "every message has a plain-text fallback"
    assert violations(message.blocks) == []
    assert len(json.dumps(message.blocks, ensure_ascii=False)) <= MAX_TOTAL_CHARS
    for block in message.blocks:
        assert block["type"] in {"header", "section", "context", "actions", "divider", "image"}
    assert_escaped(message)


def assert_escaped(message: Message) -> None:
    """No mrkdwn text carries a raw `<!channel>` or a link the CRM put there."""
    texts = [message.text]
    for block in message.blocks:
        if block["type"] == "section":
            texts.append(block.get("text", {}).get("text", ""))
            texts += [f["text"] for f in block.get("fields", [])]
        if block["type"] == "context":
            texts += [e["text"] for e in block["elements"] if e["type"] == "mrkdwn"]
    for text in texts:
        assert "<!channel>" not in text
        assert "<https://evil.example|click>" not in text


@pytest.mark.parametrize(
    "question",
    ["", "help", "P07", "Partner 0", "nobody at all here", "top 50", "top 50 by won_revenue",
     "compare P01 vs P02", "program", "at-risk", "top 3 by nonsense", "compare P01"],
)  # fmt: skip
def test_every_answer_fits_slack(big_store: Store, question: str) -> None:
    assert_valid(answers_for(big_store).answer(parse(question, TODAY)))


def test_button_answers_fit_slack(big_store: Store) -> None:
    answers = answers_for(big_store)
    value = json.dumps({"partner_id": "P04", "period": "last-90d"})
    for action_id in ("scorecard_previous", "scorecard_compare", "scorecard_why"):
        assert_valid(answers.press(action_id, value, lambda deal: f"https://crm.example/{deal}"))


def test_a_long_leaderboard_says_how_many_more(big_store: Store) -> None:
    message = answers_for(big_store).answer(parse("top 20", TODAY))
    assert message.blocks[-1]["type"] == "context"
    assert "and 40 more" in message.blocks[-1]["elements"][0]["text"]


def test_partner_names_are_plain_text_in_headers_and_buttons(big_store: Store) -> None:
    message = answers_for(big_store).answer(parse("Partner 0", TODAY))  # ambiguous: buttons
    buttons = message.blocks[-1]["elements"]
    assert all(b["text"]["type"] == "plain_text" for b in buttons)
    assert all(len(b["text"]["text"]) <= 75 for b in buttons)
    card = answers_for(big_store).answer(parse("P07", TODAY))
    header = card.blocks[0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("<!channel> & <https://evil.example|click>"[:30])


def test_the_scorecard_escapes_crm_text_in_mrkdwn(big_store: Store) -> None:
    card = answers_for(big_store).answer(parse("P07", TODAY))
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in card.text


def test_escape_mrkdwn() -> None:
    assert escape_mrkdwn("a & b <@U1> <!here>") == "a &amp; b &lt;@U1&gt; &lt;!here&gt;"


def test_fit_cuts_long_lists_and_texts() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 5000}}] * 80
    fitted = fit(Message("t" * 5000, [dict(b, text=dict(b["text"])) for b in blocks]))
    assert violations(fitted.blocks) == []
    assert "more" in fitted.blocks[-1]["elements"][0]["text"]
    assert len(fitted.text) <= 3000


def test_error_messages_escape_user_text() -> None:
    message = render(
        "error", sentence="cannot_rank_by", words="<!everyone>", known="x", command="/partner-kpi"
    )
    assert "<!everyone>" not in message.text and "&lt;!everyone&gt;" in message.text
