"""What a person reads of section 7 and 8: the scorecard's Customers section and Training line,
the program's customers and trained-vs-untrained lines, and the at-risk reason for a partner
losing customers. Rendered through the bot's own answers, on a small store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bot.answers import Answers
from bot.digest import render_digest
from bot.intents import parse
from bot.messages import Message
from bot.terminal import scorecard as terminal_scorecard
from kpi.digest_data import build_digest
from kpi.engine import KpiEngine
from kpi.models import Customer, Deal, DealStatus, Partner, TrainingCompletion
from kpi.store import Store
from settings.app import AppConfig
from settings.digests import DigestConfig, DigestPartnerFilter
from settings.periods import parse_period
from tests.kpi_reference import Dataset
from tests.test_kpi_engine import load
from tests.test_templates import assert_valid

TODAY = date(2026, 10, 14)
APP = AppConfig()
EVIL_COURSE = "<!channel> Pricing & more"


def d(text: str) -> date:
    return date.fromisoformat(text)


def deal(did: str, status: str, created: str, closed: str) -> Deal:
    return Deal(
        id=did,
        partner_id="T",
        status=DealStatus(status),
        created_on=d(created),
        closed_on=d(closed),
        amount=Decimal(1000),
    )


def program(with_customers: bool) -> Dataset:
    partners = [
        Partner(id="T", name="Trained Co", joined_on=d("2025-01-01")),
        Partner(id="L", name="Leaky Co", joined_on=d("2025-01-01")),
    ]
    deals = [
        # before 09-03: 1 won of 3, 30-day cycle; after: 2 won of 2, 18-day cycles
        deal("b1", "won", "2026-07-01", "2026-07-31"),
        deal("b2", "lost", "2026-07-01", "2026-08-01"),
        deal("b3", "lost", "2026-07-01", "2026-08-02"),
        deal("a1", "won", "2026-08-20", "2026-09-07"),
        deal("a2", "won", "2026-09-01", "2026-09-19"),
    ]
    trainings = [
        TrainingCompletion(partner_id="T", course=EVIL_COURSE, completed_on=d("2026-09-03"))
    ]
    customers = []
    if with_customers:
        customers = [
            Customer(id=f"l{i}", partner_id="L", became_customer_on=d("2026-01-01"),
                     churned_on=d("2026-09-01") if i < 3 else None, mrr=Decimal(100))
            for i in range(4)
        ]  # fmt: skip
    return Dataset(partners=partners, deals=deals, trainings=trainings, customers=customers)


def texts(message: Message) -> list[str]:
    found = [message.text]
    for block in message.blocks:
        text: Any = block.get("text")
        if isinstance(text, dict):
            found.append(text["text"])
        found += [field["text"] for field in block.get("fields", [])]
        found += [
            e["text"]
            for e in block.get("elements", [])
            if "text" in e and isinstance(e["text"], str)
        ]
    return found


def ask(store: Store, question: str) -> Message:
    message = Answers(store, APP, lambda: TODAY).answer(parse(question, TODAY))
    assert_valid(message)
    return message


def test_the_training_line_reads_before_and_after(store: Store) -> None:
    load(store, program(with_customers=False))
    lines = [t for t in texts(ask(store, "Trained Co last-90d")) if t.startswith("*Training*")]
    assert lines == [
        "*Training* · after *&lt;!channel&gt; Pricing &amp; more* (Sep 3): close rate 100% vs"
        " 33% before, cycle 12 days faster; 42 of 90 days observed"
    ]


def test_no_customer_data_no_customers_section(store: Store) -> None:
    load(store, program(with_customers=False))
    assert not any("*Customers*" in t for t in texts(ask(store, "Leaky Co last-90d")))
    assert not any("Customers of partners" in t for t in texts(ask(store, "program")))
    assert not any("*Training*" in t for t in texts(ask(store, "Leaky Co last-90d")))


def test_the_customers_section_and_the_at_risk_reason(store: Store) -> None:
    load(store, program(with_customers=True))
    scorecard = texts(ask(store, "Leaky Co last-90d"))
    assert "*Customers*" in scorecard
    assert "*Customers lost*\n3  ▲ +3" in scorecard  # more lost reads as worse elsewhere
    assert "*Account retention*\n25%  ▼ -75 pts" in scorecard  # 1 of 4 still active; all before
    assert any("Customers of partners" in t for t in texts(ask(store, "program")))
    at_risk = texts(ask(store, "at-risk"))
    assert any("*Leaky Co*: " in t and "lost 3 customers, gained 0" in t for t in at_risk)


def test_the_program_compares_trained_and_untrained(store: Store) -> None:
    load(store, program(with_customers=False))
    program_texts = texts(ask(store, "program last-90d"))
    training = next(t for t in program_texts if t.startswith("*Training*"))
    # T's five deals all closed in [07-17, 10-15): 3 won of 5, cycles 30, 18 and 18 days
    trained = (
        "• trained: 1 partner(s), won revenue per partner $3,000, close rate 60%, cycle 22 days"
    )
    assert trained in training
    assert "• untrained: 1 partner(s), won revenue per partner $0, close rate n/a" in training


def test_the_digest_compares_trained_and_untrained(store: Store) -> None:
    load(store, program(with_customers=False))
    digest = DigestConfig.model_validate(
        {"name": "weekly", "channel": "C0DIGEST", "schedule": "0 9 * * mon", "period": "last-90d"}
    )
    data = build_digest(store, APP, digest, datetime(2026, 10, 14, 8, tzinfo=UTC))
    text = json.dumps(render_digest(data, "USD").blocks, ensure_ascii=False)
    assert (
        "*Trained partners* (a course in the last 365 days): 1, won revenue per partner $3,000,"
        " close rate 60% · untrained: 1, $0, n/a"
    ) in text
    filtered = digest.model_copy(update={"partners": DigestPartnerFilter(ids=["L"])})
    narrowed = build_digest(store, APP, filtered, datetime(2026, 10, 14, 8, tzinfo=UTC))
    assert "Trained partners" not in json.dumps(render_digest(narrowed, "USD").blocks)


def test_top_by_a_customer_kpi(store: Store) -> None:
    load(store, program(with_customers=True))
    lines = texts(ask(store, "top 5 by account_retention"))
    assert any("Leaky Co" in line and "25%" in line for line in lines)
    assert not any("Trained Co" in line for line in lines)  # no customers: no retention


def test_the_terminal_leaves_out_customer_rows_without_customer_data(store: Store) -> None:
    load(store, program(with_customers=False))
    engine = KpiEngine(store, APP.kpi_settings)
    period = parse_period("last-90d", TODAY)
    details = engine.scorecard("L", period)
    assert not details.has_customers
    text = terminal_scorecard(details.card, "USD", details.has_customers)
    assert "Won revenue" in text and "Active customers" not in text
    assert "Training: after " in terminal_scorecard(engine.scorecard("T", period).card, "USD")
    load(store, program(with_customers=True))
    details = engine.scorecard("L", period)
    text = terminal_scorecard(details.card, "USD", details.has_customers)
    assert "Active customers" in text and "Account retention" in text
