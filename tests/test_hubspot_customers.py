"""Wire-level tests of HubSpot customers (companies in lifecyclestage customer) and their
tickets, partner owners through the owners API, deal types from several properties or the
pipeline, the explicit channel property, and a HubSpot source with a secondary files folder:
the real hubspot-api-client against the loopback fake of tests/fake_hubspot.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import SourceError
from connectors.hubspot import HubSpotSource
from connectors.hubspot.limiter import RateLimiter
from connectors.incremental import RetryPolicy
from connectors.normalize import Normalizer
from connectors.sync import run_sync, source_for
from kpi.engine import KpiEngine
from kpi.models import Customer, Deal, Partner, SupportTicket
from kpi.store import Store
from settings.app import AppConfig, LoadedConfig
from settings.periods import parse_period
from tests.fake_hubspot import FakeHubSpot, FakePortal, iso
from tests.test_hubspot import ENV, portal, server  # noqa: F401 - the fake and its portal

pytestmark = pytest.mark.usefixtures("server")

STAGES = [("open", "Open", False, 0.2), ("won", "Won", True, 1.0), ("lost", "Lost", True, 0.0)]
RENEWAL_STAGES = [("r-open", "Renewal open", False, 0.5), ("r-won", "Renewed", True, 1.0)]
CUSTOMER_PROPERTIES = ("mrr", "churn_date", "go_live_date", "referred_by_company", "mrr_currency")
CUSTOMERS: dict[str, Any] = {
    "churned_on": "churn_date",
    "mrr": "mrr",
    "currency": "mrr_currency",
    "onboarded_on": "go_live_date",
    "referred_by": "referred_by_company",
}
DEALS: dict[str, Any] = {
    "channel": "deal_channel",
    "type_by_pipeline": {"Renewals": "renewal"},
}
P1, P2 = 101, 102  # partner companies
C1, C2, C3, C4 = 201, 202, 203, 204  # customer companies
LEAD = 301  # a company in lifecyclestage lead


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T09:00:00+00:00")


def load(hub: FakePortal) -> None:
    """Two partners (owners 501 and 502), four customers, a lead, five tickets, four deals."""
    hub.define("companies", "type", [("Partner", "PARTNER"), ("Other", "OTHER")])
    for name in CUSTOMER_PROPERTIES:
        hub.define("companies", name)
    hub.define("deals", "deal_channel")
    hub.pipeline("Sales Pipeline", STAGES)
    hub.pipeline("Renewals", RENEWAL_STAGES, order=1)
    hub.owner(501, "ana.lopez@example.com")
    hub.owner(502, "ben.okafor@example.com")
    for company_id, name, owner in ((P1, "Northwind", "501"), (P2, "Contoso", "502")):
        hub.create(
            "companies",
            {"name": name, "type": "PARTNER", "hubspot_owner_id": owner},
            created=at("2025-01-01"),
            modified=at("2025-06-01"),
            object_id=company_id,
        )
    rows = [
        (C1, "Alpha", P1, "2026-01-10", None, "1000", "EUR", "2026-02-09", None),
        (C2, "Beta", P1, "2026-03-01", "2026-09-30", "500", None, None, str(C1)),
        (C3, "Gamma", None, "2026-04-15", None, None, None, "2026-04-20", None),
        (C4, "Delta", P2, "2026-05-01", None, "200", "GBP", None, None),
    ]
    for company_id, name, partner, since, churned, mrr, currency, live, referrer in rows:
        hub.create(
            "companies",
            {
                "name": name,
                "type": "OTHER",
                "lifecyclestage": "customer",
                "hs_lifecyclestage_customer_date": iso(at(since)),
                "churn_date": churned,
                "mrr": mrr,
                "mrr_currency": currency,
                "go_live_date": live,
                "referred_by_company": referrer,
            },
            created=at("2025-12-01"),
            modified=at("2026-06-01"),
            object_id=company_id,
        )
        if partner is not None:
            hub.associate("companies", company_id, "companies", partner)
    hub.create(
        "companies",
        {"name": "Epsilon", "lifecyclestage": "lead"},
        modified=at("2026-05-01"),
        object_id=LEAD,
    )
    for ticket_id, company, opened in (
        (401, C1, "2026-03-02"),
        (402, C1, "2026-07-15"),
        (403, C2, "2026-04-01"),
        (404, C4, "2026-06-01"),
        (405, LEAD, "2026-05-05"),
    ):
        hub.create(
            "tickets",
            {"subject": f"Ticket {ticket_id}"},
            created=at(opened),
            modified=at(opened),
            object_id=ticket_id,
        )
        hub.associate("tickets", ticket_id, "companies", company)
    deals = [
        # id, type, pipeline, stage, lead source, channel
        (601, "existingbusiness", "default", "won", "ORGANIC_SEARCH", None),
        (602, "existingbusiness", "pipeline1", "r-won", None, None),
        (603, "newbusiness", "default", "open", "ORGANIC_SEARCH", "Paid"),
        (604, None, "default", "open", "PAID_SEARCH", "billboards"),
    ]
    for deal_id, kind, pipeline, stage, source, channel in deals:
        hub.create(
            "deals",
            {
                "dealname": f"Deal {deal_id}",
                "amount": "100",
                "dealstage": stage,
                "pipeline": pipeline,
                "closedate": iso(at("2026-06-15")),
                "dealtype": kind,
                "hs_analytics_source": source,
                "deal_channel": channel,
            },
            created=at("2026-05-01"),
            modified=at("2026-06-15"),
            object_id=deal_id,
        )
        hub.associate("deals", deal_id, "companies", P1)


def app_config(fake: FakeHubSpot, **customers: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "source": "hubspot",
            "hubspot": {
                "base_url": fake.base_url,
                "partners": {"values": ["PARTNER"]},
                "deals": DEALS,
                "customers": {**CUSTOMERS, **customers},
            },
            "currency_rates": {"EUR": 1.08, "GBP": 1.25},
        }
    )


def sync(
    store: Store,
    fake: FakeHubSpot,
    full: bool = False,
    app: AppConfig | None = None,
    accept_deletes: bool = False,
) -> Any:
    fake.portal.tick(minutes=1)
    app = app or app_config(fake)
    source = HubSpotSource(
        app,
        Normalizer(app),
        env=ENV,
        retry=RetryPolicy(attempts=3, sleep=lambda _: None),
        limiter=RateLimiter(10**6, 10**6),
        now=fake.portal.clock,
    )
    return run_sync(store, source, full=full, accept_deletes=accept_deletes)


def customers(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.records(Customer)}


def tickets(store: Store) -> dict[str, str]:
    return {t.id: t.customer_id for t in store.records(SupportTicket)}


@pytest.fixture(autouse=True)
def _loaded(portal: FakePortal) -> None:  # noqa: F811 - the portal fixture of test_hubspot
    load(portal)


def test_a_full_sync_reads_customer_companies_and_their_tickets(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    report = sync(store, server, full=True)

    assert report.stopped_early is None
    assert report.objects["companies:customers"].new == 4
    assert report.objects["tickets"].new == 4  # the lead's ticket is no customer's
    assert customers(store) == {
        str(C1): Customer(
            id=str(C1),
            partner_id=str(P1),
            name="Alpha",
            became_customer_on=date(2026, 1, 10),
            mrr=Decimal("1080"),  # 1,000 EUR at 1.08
            original_mrr=Decimal("1000"),
            currency="EUR",
            onboarded_on=date(2026, 2, 9),
        ),
        str(C2): Customer(
            id=str(C2),
            partner_id=str(P1),
            name="Beta",
            became_customer_on=date(2026, 3, 1),
            churned_on=date(2026, 9, 30),
            mrr=Decimal("500"),
            original_mrr=Decimal("500"),
            referred_by=str(C1),
        ),
        str(C3): Customer(
            id=str(C3),
            name="Gamma",
            became_customer_on=date(2026, 4, 15),
            onboarded_on=date(2026, 4, 20),
        ),
        str(C4): Customer(
            id=str(C4),
            partner_id=str(P2),
            name="Delta",
            became_customer_on=date(2026, 5, 1),
            mrr=Decimal("250"),  # 200 GBP at 1.25
            original_mrr=Decimal("200"),
            currency="GBP",
        ),
    }
    assert tickets(store) == {"401": str(C1), "402": str(C1), "403": str(C2), "404": str(C4)}
    opened = {t.id: t.opened_at for t in store.records(SupportTicket)}
    assert opened["402"] == datetime(2026, 7, 15, 9, 0, tzinfo=UTC)


def test_partner_owners_come_from_the_owners_api(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    for n in range(10):  # 12 owners: two pages of 10
        server.portal.owner(900 + n, f"owner{n}@example.com")
    app = app_config(server)
    app.hubspot.page_size = 10
    sync(store, server, full=True, app=app)
    owners = {p.id: p.owner_email for p in store.records(Partner)}
    assert owners == {str(P1): "ana.lopez@example.com", str(P2): "ben.okafor@example.com"}
    assert server.portal.count("/crm/v3/owners", "GET") == 2


def test_deal_types_from_the_pipeline_and_an_explicit_channel(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    report = sync(store, server, full=True)
    deals = {d.id: d for d in store.records(Deal)}
    assert deals["601"].type == "upsell"  # existingbusiness, and its pipeline cannot tell
    assert deals["602"].type == "renewal"  # existingbusiness in the Renewals pipeline
    assert deals["603"].type == "new"
    assert deals["603"].channel == "paid"  # the channel property wins over organic search
    assert deals["604"].channel == "paid"  # no channel value: the lead source's
    assert deals["601"].channel == "earned"
    undecided = [w for w in report.warnings if "existingbusiness" in w]
    assert undecided and undecided[0].startswith("1 deal(s) have dealtype existingbusiness")


def test_an_incremental_sync_brings_changed_customers_tickets_and_archiving(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    sync(store, server, full=True)
    hub = server.portal
    hub.tick(minutes=5)
    hub.update("companies", C3, churn_date="2026-11-30", mrr="90")
    hub.update("companies", C2, lifecyclestage="other")  # leaves the customers
    hub.archive("companies", C4)
    hub.update(
        "companies",
        LEAD,
        lifecyclestage="customer",
        hs_lifecyclestage_customer_date=iso(at("2026-11-25")),
    )
    new_ticket = hub.create("tickets", {"subject": "New"})
    hub.associate("tickets", new_ticket, "companies", C1)
    hub.archive("tickets", 401)
    calls_before = len(hub.requests)

    report = sync(store, server)

    assert report.stopped_early is None
    stored = customers(store)
    assert sorted(stored) == [str(C1), str(C3), str(LEAD)]
    assert stored[str(C3)].churned_on == date(2026, 11, 30) and stored[str(C3)].mrr == 90
    assert stored[str(LEAD)].became_customer_on == date(2026, 11, 25)
    assert report.objects["companies:customers"].deleted == 1  # Beta
    assert report.objects["companies:customers:archived"].deleted == 1  # Delta
    assert report.objects["tickets:archived"].deleted == 1
    # the new customer's ticket comes with it though the ticket did not change; Beta's and
    # Delta's tickets left with them
    assert tickets(store) == {"402": str(C1), "405": str(LEAD), str(new_ticket): str(C1)}
    assert len(hub.requests) - calls_before <= 30  # a few per object, not a full pass


def test_a_full_sync_sweeps_what_the_portal_no_longer_has(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    sync(store, server, full=True)
    del server.portal.objects["companies"][C4]  # gone for good (a GDPR deletion)
    del server.portal.objects["tickets"][403]
    report = sync(store, server, full=True, accept_deletes=True)
    assert report.objects["companies:customers"].deleted == 1
    # ticket 403 is gone, and 404's company is no customer any more
    assert report.objects["tickets"].deleted == 2
    assert sorted(customers(store)) == [str(C1), str(C2), str(C3)]
    assert sorted(tickets(store)) == ["401", "402"]


def test_an_unknown_customer_property_stops_before_anything_is_written(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    with pytest.raises(SourceError) as unknown:
        sync(store, server, full=True, app=app_config(server, mrr="monthly_revenue"))
    assert "hubspot.customers.mrr (monthly_revenue)" in str(unknown.value)
    assert store.records(Customer) == [] and store.records(Partner) == []


def test_source_for_reads_the_secondary_folder_beside_hubspot(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "trainings.csv").write_text(
        "partner_id,course,completed_on\n"
        f"{P1},Sales 101,2026-02-01\n{P1},Sales 201,2026-05-01\n{P2},Sales 101,2025-01-01\n",
        encoding="utf-8",
    )
    app = app_config(server)
    app = app.model_copy(update={"secondary_files": folder})
    config = LoadedConfig(app, None, tmp_path, "sqlite://", folder)
    source = source_for(config)
    assert isinstance(source, HubSpotSource)
    source.env, source.now = ENV, server.portal.clock
    source.limiter = RateLimiter(10**6, 10**6)

    report = run_sync(store, source, full=True)

    assert report.objects["files:trainings"].new == 3
    assert report.objects["deals"].new == 4
    engine = KpiEngine(store, app.kpi_settings)
    period = parse_period("2026", date(2026, 12, 1))
    assert engine.partner(str(P1), period)["kpis"]["courses_completed"] == 2
    assert engine.partner(str(P2), period)["kpis"]["courses_completed"] == 0


def test_a_label_picks_the_customers_partner_and_a_second_type_property_decides(
    server: FakeHubSpot,  # noqa: F811
    store: Store,
) -> None:
    hub = server.portal
    hub.association_page_size = 1  # each result's own paging.next.after is followed
    # Gamma is associated with both partners; only Contoso through the label "Sourced by"
    hub.associate("companies", C3, "companies", P1)
    hub.associate("companies", C3, "companies", P2, label=(77, "Sourced by"))
    hub.define("deals", "deal_kind", [("Renewal", "renewal"), ("Upsell", "upsell")])
    hub.update("deals", 601, deal_kind="renewal")
    app = app_config(server, association_type_id=77)
    app.hubspot.deals.type = ["deal_kind", "dealtype"]

    report = sync(store, server, full=True, app=app)

    partners = {c.id: c.partner_id for c in store.records(Customer)}
    # only the labelled association counts: Alpha and Beta have none, so they are direct
    assert partners == {str(C1): None, str(C2): None, str(C3): str(P2), str(C4): None}
    deals = {d.id: d.type for d in store.records(Deal)}
    assert deals["601"] == "renewal"  # deal_kind first; its dealtype existingbusiness unused
    assert deals["603"] == "new"  # no deal_kind: dealtype decides
    assert not [w for w in report.warnings if "existingbusiness" in w]
