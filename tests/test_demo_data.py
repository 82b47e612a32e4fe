"""The demo-data generator: deterministic, in the files-source format, realistic enough."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.demo_data import (
    DEMO_CURRENCY_RATES,
    DEMO_MARKER,
    DEMO_PIPELINE,
    DemoSummary,
    write_demo_data,
)
from kpi.models import (
    Customer,
    Deal,
    DealStatus,
    Partner,
    StageChange,
    SupportTicket,
    SurveyResponse,
    TrainingCompletion,
)

AS_OF = date(2026, 11, 22)
FILES = (
    "partners.csv",
    "deals.csv",
    "stage_changes.csv",
    "trainings.csv",
    "survey_responses.csv",
    "customers.csv",
    "tickets.csv",
)
HEADERS = {
    "partners.csv": [
        "id", "name", "tier", "joined_on", "left_on", "owner_email", "contact_emails", "region",
    ],
    "deals.csv": [
        "id", "partner_id", "name", "amount", "currency", "stage", "status", "created_on",
        "closed_on", "expected_close_on", "type", "lead_source", "channel", "registered",
        "registered_on", "csat",
    ],
    "stage_changes.csv": ["deal_id", "stage", "entered_at"],
    "trainings.csv": ["partner_id", "course", "completed_on"],
    "survey_responses.csv": [
        "id", "partner_id", "respondent", "campaign_id", "score", "comment", "submitted_at",
    ],
    "customers.csv": [
        "id", "partner_id", "name", "became_customer_on", "churned_on", "mrr", "currency",
        "onboarded_on", "referred_by",
    ],
    "tickets.csv": ["id", "customer_id", "opened_at"],
}  # fmt: skip

Row = dict[str, str | None]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    folder = tmp_path_factory.mktemp("demo") / "nested" / "demo-data"  # created if missing
    return folder, write_demo_data(folder, AS_OF)


def read(folder: Path, name: str) -> list[Row]:
    """The file's rows as dicts, empty cells as None."""
    with (folder / name).open(newline="", encoding="utf-8") as file:
        return [{k: v if v != "" else None for k, v in row.items()} for row in csv.DictReader(file)]


def parsed(row: Row, **parsers: Callable[[str], Any]) -> dict[str, Any]:
    """The row's cells (None when empty), those named in `parsers` parsed by them."""
    return {
        key: parsers[key](value) if key in parsers and value is not None else value
        for key, value in row.items()
    }


DATE = date.fromisoformat
TIMESTAMP = datetime.fromisoformat


def to_partner(row: Row) -> Partner:
    fields = parsed(
        row, joined_on=DATE, left_on=DATE, contact_emails=lambda text: tuple(text.split(";"))
    )
    return Partner(**{**fields, "contact_emails": fields["contact_emails"] or ()})


def to_deal(row: Row) -> Deal:
    fields = parsed(
        row,
        amount=Decimal,  # the model's amount is the converted one; here just the cell
        created_on=DATE,
        closed_on=DATE,
        expected_close_on=DATE,
        registered=lambda text: text == "true",
        registered_on=DATE,
        csat=int,
    )
    if fields["channel"] is None:  # the loader maps it from lead_source; not tested here
        del fields["channel"]
    return Deal(
        **{**fields, "name": fields["name"] or "", "registered": bool(fields["registered"])}
    )


def to_stage_change(row: Row) -> StageChange:
    return StageChange(**parsed(row, entered_at=TIMESTAMP))


def to_training(row: Row) -> TrainingCompletion:
    return TrainingCompletion(**parsed(row, completed_on=DATE))


def to_response(row: Row) -> SurveyResponse:
    return SurveyResponse(**parsed(row, score=int, submitted_at=TIMESTAMP))


def to_customer(row: Row) -> Customer:
    fields = parsed(
        row,
        became_customer_on=DATE,
        churned_on=DATE,
        onboarded_on=DATE,
        mrr=Decimal,  # the model's mrr is the converted one; here just the cell
    )
    return Customer(**{**fields, "name": fields["name"] or ""})


def to_ticket(row: Row) -> SupportTicket:
    return SupportTicket(**parsed(row, opened_at=TIMESTAMP))


PARSERS: dict[str, Callable[[Row], Any]] = {
    "partners.csv": to_partner,
    "deals.csv": to_deal,
    "stage_changes.csv": to_stage_change,
    "trainings.csv": to_training,
    "survey_responses.csv": to_response,
    "customers.csv": to_customer,
    "tickets.csv": to_ticket,
}


@pytest.fixture(scope="module")
def records(demo: tuple[Path, DemoSummary]) -> dict[str, list[Any]]:
    folder, _ = demo
    return {name: [PARSERS[name](row) for row in read(folder, name)] for name in FILES}


# --- determinism --------------------------------------------------------------------------


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_same_inputs_give_byte_identical_files_and_others_do_not(tmp_path: Path) -> None:
    first = write_demo_data(tmp_path / "a", AS_OF, seed=7)
    second = write_demo_data(tmp_path / "b", AS_OF, seed=7)
    assert first == second
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert set(file_bytes(tmp_path / "a")) == {*FILES, DEMO_MARKER}

    write_demo_data(tmp_path / "c", AS_OF, seed=8)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    # Another date shifts the dates (surveys follow fixed calendar quarters and may not change).
    write_demo_data(tmp_path / "d", AS_OF + timedelta(days=1), seed=7)
    for name in ("partners.csv", "deals.csv", "stage_changes.csv", DEMO_MARKER):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "d" / name).read_bytes()


def test_rewriting_a_folder_replaces_its_files(tmp_path: Path) -> None:
    write_demo_data(tmp_path / "reused", AS_OF, seed=1)
    write_demo_data(tmp_path / "reused", AS_OF, seed=2)
    write_demo_data(tmp_path / "fresh", AS_OF, seed=2)
    assert file_bytes(tmp_path / "reused") == file_bytes(tmp_path / "fresh")


# --- format -------------------------------------------------------------------------------


def test_marker_names_the_generator_and_the_date(demo: tuple[Path, DemoSummary]) -> None:
    folder, _ = demo
    text = (folder / DEMO_MARKER).read_text(encoding="utf-8")
    assert "partner-kpi demo" in text
    assert AS_OF.isoformat() in text


def test_headers_are_exactly_the_spec_fields(demo: tuple[Path, DemoSummary]) -> None:
    folder, _ = demo
    for name in FILES:
        with (folder / name).open(newline="", encoding="utf-8") as file:
            assert next(csv.reader(file)) == HEADERS[name], name


def test_summary_counts_the_rows_and_lies_in_the_expected_ranges(
    demo: tuple[Path, DemoSummary],
) -> None:
    folder, summary = demo
    counts = [len(read(folder, name)) for name in FILES]
    assert counts == [
        summary.partners,
        summary.deals,
        summary.stage_changes,
        summary.trainings,
        summary.survey_responses,
        summary.customers,
        summary.tickets,
    ]
    assert 55 <= summary.partners <= 65
    assert 5_000 <= summary.deals <= 8_000
    assert 3 * summary.deals <= summary.stage_changes <= 7 * summary.deals
    assert 150 <= summary.trainings <= 800
    assert 200 <= summary.survey_responses <= 1_000
    assert 500 <= summary.customers <= 2_000
    assert summary.customers <= summary.tickets <= 6 * summary.customers


def test_every_row_parses_into_a_record(records: dict[str, list[Any]]) -> None:
    assert all(records[name] for name in FILES)
    ids = {name: [getattr(r, "id", None) for r in records[name]] for name in FILES}
    for name in (
        "partners.csv",
        "deals.csv",
        "survey_responses.csv",
        "customers.csv",
        "tickets.csv",
    ):
        assert len(set(ids[name])) == len(ids[name]), f"repeated ids in {name}"
    trainings = [(t.partner_id, t.course, t.completed_on) for t in records["trainings.csv"]]
    assert len(set(trainings)) == len(trainings)


# --- partners -----------------------------------------------------------------------------


def test_partners_look_like_a_real_program(records: dict[str, list[Any]]) -> None:
    partners: list[Partner] = records["partners.csv"]
    names = [p.name for p in partners]
    assert "Acme Corp" in names
    assert sum("Northwind" in name for name in names) >= 2
    assert all(p.id.startswith("0015g00000") and len(p.id) == 15 for p in partners)
    assert {p.tier for p in partners} >= {"Gold", "Silver", "Registered"}
    assert 3 <= sum(p.left_on is not None for p in partners) <= 4
    assert sum(p.joined_on > AS_OF - timedelta(days=90) for p in partners) >= 3
    assert min(p.joined_on for p in partners) < AS_OF - timedelta(days=2 * 365)
    assert all(
        p.joined_on <= AS_OF and (p.left_on is None or p.joined_on < p.left_on <= AS_OF)
        for p in partners
    )
    for partner in partners:
        assert 1 <= len(partner.contact_emails) <= 3
        assert all(email.endswith(".example") for email in partner.contact_emails)


# --- deals --------------------------------------------------------------------------------


def test_deals_follow_the_partners_lifetime(records: dict[str, list[Any]]) -> None:
    partners = {p.id: p for p in records["partners.csv"]}
    for deal in records["deals.csv"]:
        if deal.partner_id is None:
            continue
        partner = partners[deal.partner_id]
        assert deal.created_on >= partner.joined_on, deal.id
        if partner.left_on is not None:
            assert deal.created_on <= partner.left_on, deal.id
            assert deal.closed_on is not None and deal.closed_on <= partner.left_on, deal.id


def test_deals_are_consistent_and_carry_the_intended_warts(records: dict[str, list[Any]]) -> None:
    deals: list[Deal] = records["deals.csv"]
    final = {DealStatus.WON: "Closed Won", DealStatus.LOST: "Closed Lost"}
    for deal in deals:
        assert deal.stage in DEMO_PIPELINE
        assert deal.stage == final.get(deal.status, deal.stage)
        if deal.status is DealStatus.OPEN:
            assert deal.stage in DEMO_PIPELINE[:5] and deal.expected_close_on is not None
            assert deal.closed_on is None
        assert deal.created_on <= AS_OF and (deal.closed_on is None or deal.closed_on <= AS_OF)
    direct = sum(d.partner_id is None for d in deals) / len(deals)
    assert 0.28 <= direct <= 0.42
    currencies = [d.currency for d in deals]
    assert "CHF" not in DEMO_CURRENCY_RATES and 0 < currencies.count("CHF") < 0.02 * len(deals)
    assert 0.06 <= currencies.count("EUR") / len(deals) <= 0.14
    assert 0 < sum(d.amount is None for d in deals) < 0.05 * len(deals)
    backdated = [d for d in deals if d.closed_on is not None and d.closed_on < d.created_on]
    assert 3 <= len(backdated) <= 8 and all(d.status is DealStatus.WON for d in backdated)
    open_deals = [d for d in deals if d.status is DealStatus.OPEN]
    assert any(d.expected_close_on is not None and d.expected_close_on < AS_OF for d in open_deals)
    assert any(d.expected_close_on is not None and d.expected_close_on > AS_OF for d in open_deals)
    sources = {d.lead_source for d in deals}
    assert {"Partner Referral", "Web", "Trade Show", "Webinar", "Podcast", None} <= sources
    won = [d for d in deals if d.status is DealStatus.WON]
    assert 0.3 <= sum(d.csat is not None for d in won) / len(won) <= 0.7


def test_channel_is_mostly_left_to_the_lead_source(demo: tuple[Path, DemoSummary]) -> None:
    folder, _ = demo
    channels = [row["channel"] for row in read(folder, "deals.csv")]
    explicit = [channel for channel in channels if channel is not None]
    assert 0 < len(explicit) < 0.1 * len(channels)
    assert set(explicit) <= {"paid", "earned", "owned", "other"}


def won_revenue(
    records: dict[str, list[Any]], periods: tuple[tuple[date, date], ...]
) -> dict[tuple[str, tuple[date, date]], Decimal]:
    """Each partner's won amount in each of `periods` ([first, end) date pairs)."""
    revenue: dict[tuple[str, tuple[date, date]], Decimal] = defaultdict(Decimal)
    for deal in records["deals.csv"]:
        if deal.partner_id and deal.status is DealStatus.WON and deal.amount is not None:
            for period in periods:
                if period[0] <= deal.closed_on < period[1]:
                    revenue[deal.partner_id, period] += deal.amount
    return revenue


def test_some_partner_is_declining(records: dict[str, list[Any]]) -> None:
    end = AS_OF + timedelta(days=1)
    recent = (end - timedelta(days=90), end)
    year_before = (recent[0] - timedelta(days=365), recent[1] - timedelta(days=365))
    revenue = won_revenue(records, (recent, year_before))
    declining = [
        p.id
        for p in records["partners.csv"]
        if p.left_on is None and revenue[p.id, recent] < revenue[p.id, year_before] / 2
    ]
    assert declining


# --- stage changes, trainings, surveys ----------------------------------------------------


def test_stage_changes_walk_the_pipeline(records: dict[str, list[Any]]) -> None:
    history: dict[str, list[StageChange]] = defaultdict(list)
    for change in records["stage_changes.csv"]:
        assert change.entered_at.utcoffset() == timedelta(0)
        history[change.deal_id].append(change)
    for deal in records["deals.csv"]:
        changes = history.pop(deal.id)  # every deal has a history
        stamps = [c.entered_at for c in changes]
        assert stamps == sorted(set(stamps)), deal.id  # strictly increasing
        stages = [c.stage for c in changes]
        assert stages[0] == "Prospecting" and stages[-1] == deal.stage
        positions = [DEMO_PIPELINE.index(s) for s in stages]
        assert positions == sorted(positions), deal.id
        if deal.closed_on is not None:
            assert stamps[-1].date() == deal.closed_on, deal.id
        if deal.closed_on is None or deal.closed_on >= deal.created_on:
            assert stamps[0].date() == deal.created_on, deal.id
    assert not history  # and no history of an unknown deal


def test_trainings_and_surveys(records: dict[str, list[Any]]) -> None:
    partners = {p.id: p for p in records["partners.csv"]}
    for training in records["trainings.csv"]:
        assert partners[training.partner_id].joined_on <= training.completed_on <= AS_OF
    responses: list[SurveyResponse] = records["survey_responses.csv"]
    for response in responses:
        partner = partners[response.partner_id]
        assert response.respondent in partner.contact_emails
        assert response.campaign_id is not None and response.campaign_id.startswith("nps-")
        assert partner.joined_on <= response.submitted_at.date() <= AS_OF
    assert responses[0].id == "demo-sr-00001"
    scores = [r.score for r in responses]
    assert min(scores) <= 6 and max(scores) == 10  # detractors and promoters
    comments = [r.comment for r in responses if r.comment]
    assert any("&" in c and "<b>" in c for c in comments)
    acme = next(p.id for p in partners.values() if p.name == "Acme Corp")
    assert any(r.partner_id == acme for r in responses)


def test_customers_follow_their_partners(records: dict[str, list[Any]]) -> None:
    partners = {p.id: p for p in records["partners.csv"]}
    customers = records["customers.csv"]
    ids = {c.id for c in customers}
    for customer in customers:
        assert customer.became_customer_on <= AS_OF
        assert customer.churned_on is None or customer.churned_on <= AS_OF
        assert customer.referred_by is None or customer.referred_by in ids
        partner = partners.get(customer.partner_id or "")
        if partner is not None:
            assert partner.joined_on <= customer.became_customer_on
            assert partner.left_on is None or customer.became_customer_on <= partner.left_on
    assert 0.05 <= sum(c.partner_id is None for c in customers) / len(customers) <= 0.3
    assert any(c.currency == "CHF" for c in customers)  # no rate: an empty MRR and a warning
    assert any(c.mrr is None for c in customers) and any(c.referred_by for c in customers)
    by_id = {c.id: c for c in customers}
    for ticket in records["tickets.csv"]:
        owner = by_id[ticket.customer_id]
        assert owner.became_customer_on <= ticket.opened_at.date() <= AS_OF


def test_declining_partners_lose_customers(records: dict[str, list[Any]]) -> None:
    """Partners whose won revenue fell by half (as in test_some_partner_is_declining) lost a
    larger share of their customers in the last six months than the other partners that stay:
    the customers tell the story the deals tell."""
    end = AS_OF + timedelta(days=1)
    recent, year_before = (
        (end - timedelta(days=90), end),
        (end - timedelta(days=455), end - timedelta(days=365)),
    )
    revenue = won_revenue(records, (recent, year_before))
    staying = [p.id for p in records["partners.csv"] if p.left_on is None]
    declining = {pid for pid in staying if revenue[pid, recent] < revenue[pid, year_before] / 2}
    half_year = AS_OF - timedelta(days=180)
    lost: dict[bool, list[bool]] = {True: [], False: []}
    for customer in records["customers.csv"]:
        active = customer.became_customer_on < half_year and (
            customer.churned_on is None or customer.churned_on >= half_year
        )
        if customer.partner_id in staying and active:
            lost[customer.partner_id in declining].append(customer.churned_on is not None)
    share = {group: sum(flags) / len(flags) for group, flags in lost.items()}
    assert share[True] > 2 * share[False], share
