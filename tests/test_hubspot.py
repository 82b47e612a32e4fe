"""Wire-level tests of the HubSpot source: the real hubspot-api-client over HTTP against the
loopback fake of tests/fake_hubspot.py."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.terminal import sync_report
from connectors.errors import SourceError
from connectors.files import FilesSource
from connectors.guard import DeletionRefused
from connectors.hubspot import HubSpotSource
from connectors.hubspot.auth import credentials_from_env
from connectors.hubspot.client import TokenRefused
from connectors.hubspot.limiter import RateLimiter
from connectors.incremental import RetryPolicy, read_watermark
from connectors.normalize import Normalizer
from connectors.sync import run_sync, source_for
from kpi import schema
from kpi.engine import KpiEngine
from kpi.models import Deal, Partner, StageChange
from kpi.store import Store, open_store
from settings.app import AppConfig, LoadedConfig
from tests.demo_folder import demo_slice
from tests.fake_hubspot import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    TOKEN,
    FakeHubSpot,
    FakePortal,
    Fault,
    iso,
)
from tests.kpi_compare import assert_same_partner_kpis
from tests.test_cli import command

PARTNERS = 4
DIRECT_DEALS = 60
AS_OF = date(2026, 11, 20)
ENV = {"HUBSPOT_ACCESS_TOKEN": TOKEN}
STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Proposal", "Negotiation"]
STAGES += ["Closed Won", "Closed Lost"]
STAGE_IDS = {label: label.lower().replace(" ", "") for label in STAGES}
TYPES = {"new": "newbusiness", "upsell": "existingbusiness", "renewal": "renewal"}
COMPANY_TYPES = [("Prospect", "PROSPECT"), ("Partner", "PARTNER"), ("Reseller", "RESELLER")]
COMPANY_TYPES += [("Vendor", "VENDOR"), ("Other", "OTHER")]
SETTINGS: dict[str, Any] = {
    "lookback_minutes": 10,
    "partners": {
        "values": ["Partner"],  # a label: the connector finds its value PARTNER
        "tier": "partner_tier",
        "joined_on": "partner_since",
        "left_on": "partner_until",
        "owner_email": "channel_manager_email",
        "region": "partner_region",
    },
    "deals": {
        "registered": "deal_registered",
        "registered_on": "registration_date",
        "csat": "csat_score",
    },
}


# --- the data: a slice of the demo program, with HubSpot's numeric ids ------------------


def hubspot_slice() -> dict[str, list[dict[str, str]]]:
    """The demo slice with HubSpot's numeric ids in place of the demo's Salesforce-like ones."""
    data = demo_slice(PARTNERS, DIRECT_DEALS)
    numeric: dict[str, str] = {}
    for n, p in enumerate(data["partners"]):
        numeric[p["id"]] = str(5_000_000 + n)
        p["id"] = numeric[p["id"]]
    deal_ids = {}
    for n, deal in enumerate(data["deals"]):
        deal_ids[deal["id"]] = str(9_000_000 + n)
        deal["id"] = deal_ids[deal["id"]]
        deal["partner_id"] = numeric.get(deal["partner_id"], "")
    for change in data["stage_changes"]:
        change["deal_id"] = deal_ids[change["deal_id"]]
    return data


DATA = hubspot_slice()


def write_files(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, rows in DATA.items():
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00+00:00")


def setup_portal(portal: FakePortal) -> None:
    portal.define("companies", "type", COMPANY_TYPES)
    for name in (
        "partner_tier", "partner_since", "partner_until", "channel_manager_email", "partner_region",
    ):  # fmt: skip
        portal.define("companies", name)
    for name in ("deal_registered", "registration_date", "csat_score"):
        portal.define("deals", name)
    portal.pipeline(
        "Sales Pipeline",
        [
            (
                STAGE_IDS[label],
                label,
                label.startswith("Closed"),
                1.0 if label == "Closed Won" else 0.0,
            )
            for label in STAGES
        ],
    )


def load_portal(portal: FakePortal) -> int:
    """The same program as the CSV slice, as HubSpot objects; returns the customer's id."""
    setup_portal(portal)
    for p in DATA["partners"]:
        company = portal.create(
            "companies",
            {
                "name": p["name"],
                "type": "PARTNER",
                "partner_tier": p["tier"] or None,
                "partner_since": p["joined_on"],
                "partner_until": p["left_on"] or None,
                "channel_manager_email": p["owner_email"] or None,
                "partner_region": p["region"] or None,
            },
            created=_at(p["joined_on"]),
            object_id=int(p["id"]),
        )
        for email in filter(None, p["contact_emails"].split(";")):
            contact = portal.create("contacts", {"email": email})
            portal.associate("companies", company, "contacts", contact)
    customer = portal.create("companies", {"name": "A customer", "type": "PROSPECT"})
    history: dict[str, list[tuple[str, datetime]]] = {}
    for change in DATA["stage_changes"]:
        at = datetime.fromisoformat(change["entered_at"].replace("Z", "+00:00"))
        history.setdefault(change["deal_id"], []).append((STAGE_IDS[change["stage"]], at))
    for d in DATA["deals"]:
        closed = d["status"] != "open"
        close_day = d["closed_on"] if closed else d["expected_close_on"]
        steps = sorted(history.get(d["id"], []), key=lambda step: step[1])
        deal = portal.create(
            "deals",
            {
                "dealname": d["name"],
                "amount": d["amount"] or None,
                "deal_currency_code": d["currency"] or None,
                "dealstage": STAGE_IDS[d["stage"]],
                "pipeline": "default",
                "closedate": iso(_at(close_day)) if close_day else None,
                "createdate": iso(_at(d["created_on"])),
                "dealtype": TYPES.get(d["type"]),
                "hs_analytics_source": d["lead_source"] or None,
                "deal_registered": d["registered"] or "false",
                "registration_date": d["registered_on"] or None,
                "csat_score": d["csat"] or None,
            },
            created=_at(d["created_on"]),
            modified=min(steps[-1][1] if steps else portal.now, portal.now),
            object_id=int(d["id"]),
            history={"dealstage": steps},
        )
        portal.associate("deals", deal, "companies", customer)
        if d["partner_id"]:
            portal.associate("deals", deal, "companies", int(d["partner_id"]))
    return customer


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def portal() -> FakePortal:
    return FakePortal(now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))


@pytest.fixture
def server(portal: FakePortal) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(portal) as running:
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def app_config(server: FakeHubSpot | None, source: str = "hubspot", **hubspot: Any) -> AppConfig:
    settings = {**SETTINGS, **hubspot}
    if server is not None:
        settings["base_url"] = server.base_url
    return AppConfig.model_validate(
        {
            "source": source,
            "hubspot": settings,
            "currency_rates": {"EUR": 1.08, "GBP": 1.27, "CHF": 1.1},
            "channel_map": {"Podcast": "owned"},
            "stages": STAGES,
        }
    )


def hs_source(
    server: FakeHubSpot,
    app: AppConfig | None = None,
    env: dict[str, str] = ENV,
    sleeps: Sleeps | None = None,
    limiter: RateLimiter | None = None,
) -> HubSpotSource:
    app = app or app_config(server)
    retry = RetryPolicy(attempts=8, sleep=sleeps if sleeps is not None else Sleeps())
    return HubSpotSource(
        app,
        Normalizer(app),
        env=env,
        retry=retry,
        limiter=limiter or RateLimiter(10**6, 10**6),
        now=server.portal.clock,
    )


def sync(store: Store, server: FakeHubSpot, full: bool = False, **kwargs: Any) -> Any:
    server.portal.tick(minutes=1)
    return run_sync(store, hs_source(server, **kwargs), full=full)


# --- tests ------------------------------------------------------------------------------


def test_full_sync_equals_the_files_source_kpi_for_kpi(
    server: FakeHubSpot, portal: FakePortal, store: Store, tmp_path: Path
) -> None:
    load_portal(portal)
    report = sync(store, server, full=True)

    assert report.stopped_early is None, report.stopped_early
    assert report.objects["deals"].new == len(DATA["deals"])
    assert report.objects["companies"].new == PARTNERS
    assert report.objects["deals:stage_history"].new == len(DATA["stage_changes"])
    assert not report.problems
    deal_pages = -(-len(DATA["deals"]) // 100)
    # per page of deals: the list, its associations and two history reads of 50
    assert report.api_calls <= 4 * deal_pages + 12

    files_store = open_store(f"sqlite:///{tmp_path / 'files.db'}")
    files_app = app_config(None, "files")
    run_sync(files_store, FilesSource(write_files(tmp_path / "csv"), Normalizer(files_app)))

    assert _partners(store) == _partners(files_store)
    assert_same_records_and_kpis(store, app_config(None), files_store, files_app)
    files_run = files_store.last_sync()
    assert files_run is not None and files_run.report["throttled_seconds"] == 0
    with store.engine.connect() as connection:
        order = connection.execute(
            schema.pipeline_stages.select().order_by(schema.pipeline_stages.c.sort_order)
        ).all()
    assert [row.stage for row in order] == STAGES
    files_store.engine.dispose()


def assert_same_records_and_kpis(
    store: Store, app: AppConfig, wanted_store: Store, wanted_app: AppConfig
) -> None:
    """The two stores hold the same deals and stage changes, and give the same KPIs."""
    assert store.records(Deal) == wanted_store.records(Deal)
    assert store.records(StageChange) == wanted_store.records(StageChange)
    partner_ids = [p["id"] for p in DATA["partners"]]
    engine = KpiEngine(store, app.kpi_settings)
    wanted_engine = KpiEngine(wanted_store, wanted_app.kpi_settings)
    assert_same_partner_kpis(engine, wanted_engine, partner_ids, AS_OF)


def _partners(store: Store) -> list[Partner]:
    return [
        p.model_copy(update={"contact_emails": tuple(sorted(p.contact_emails))})
        for p in store.records(Partner)
    ]


def test_incremental_sync_brings_changes_and_archiving(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    sync(store, server, full=True)
    partner_id = int(DATA["partners"][0]["id"])
    leaving_id = int(DATA["partners"][1]["id"])
    open_deals = [int(d["id"]) for d in DATA["deals"] if d["status"] == "open"]
    changed, archived = open_deals[0], open_deals[1]
    portal.tick(minutes=5)
    portal.update(
        "deals", changed, amount="12345", dealstage="closedwon", closedate="2026-11-20T10:00:00Z"
    )
    new_id = portal.create(
        "deals",
        {
            "dealname": "Brand new",
            "amount": "500",
            "deal_currency_code": "EUR",
            "dealstage": "prospecting",
            "closedate": "2027-01-31T12:00:00Z",
            "dealtype": "renewal",
            "hs_analytics_source": "PAID_SEARCH",
            "deal_registered": "true",
        },
    )
    portal.associate("deals", new_id, "companies", partner_id)
    portal.archive("deals", archived)
    portal.update("companies", leaving_id, type="VENDOR")
    contact = portal.create("contacts", {"email": "new.person@example.com"})
    portal.associate("companies", partner_id, "contacts", contact)
    before = len(portal.requests)

    report = sync(store, server)

    assert report.stopped_early is None
    assert len(portal.requests) - before <= 20  # a few calls, not a full pass
    deals_now = {d.id: d for d in store.records(Deal)}
    assert deals_now[str(changed)].status == "won"
    assert deals_now[str(changed)].closed_on == date(2026, 11, 20)
    assert deals_now[str(changed)].amount is not None
    assert float(deals_now[str(changed)].amount) == 12345.0
    new = deals_now[str(new_id)]
    assert new.amount is not None and float(new.amount) == 540.0
    assert (new.type, new.channel, new.partner_id, new.registered) == (
        "renewal",
        "paid",
        str(partner_id),
        True,
    )
    assert str(archived) not in deals_now
    changes = store.records(StageChange)
    assert not [c for c in changes if c.deal_id == str(archived)]
    latest = max((c for c in changes if c.deal_id == str(changed)), key=lambda c: c.entered_at)
    assert latest.stage == "Closed Won"
    partners_now = {p.id: p for p in store.records(Partner)}
    assert str(leaving_id) not in partners_now
    assert "new.person@example.com" in partners_now[str(partner_id)].contact_emails
    assert report.objects["deals:archived"].deleted == 1
    assert report.objects["companies"].deleted == 1
    assert read_watermark(store, "hubspot", "deals") is not None

    # nothing changed: an incremental run reads nothing and writes nothing
    again = sync(store, server)
    assert again.objects["deals"].new == again.objects["deals"].updated == 0


def _one_partner_portal(portal: FakePortal) -> int:
    setup_portal(portal)
    return portal.create(
        "companies", {"name": "Solo Partner", "type": "PARTNER", "partner_since": "2024-01-01"}
    )


def _bulk_deals(portal: FakePortal, count: int, partner: int, at: datetime) -> None:
    for n in range(count):
        deal = portal.create(
            "deals",
            {"dealname": f"D{n}", "amount": "10", "dealstage": "prospecting"},
            created=at,
            modified=at,
        )
        portal.associate("deals", deal, "companies", partner)


@pytest.mark.slow
def test_more_than_10000_deals_changed_at_one_timestamp(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    partner = _one_partner_portal(portal)
    sync(store, server)  # watermarks set; no deals yet
    portal.tick(minutes=30)
    _bulk_deals(portal, 10_050, partner, portal.now)
    report = sync(store, server)

    assert report.stopped_early is None
    assert report.objects["deals"].new == 10_050
    assert len(store.records(Deal)) == 10_050
    searches = portal.count("/deals/search")
    assert 101 <= searches <= 104  # 100 a page, one new slice at the cap, no loop


def test_an_interrupted_sync_resumes_where_it_stopped(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    partner = _one_partner_portal(portal)
    app = app_config(server, page_size=50, lookback_minutes=0)
    sync(store, server, app=app)
    portal.tick(minutes=30)
    _bulk_deals(portal, 500, partner, portal.now)
    portal.faults.append(Fault(503, remaining=100, path="/deals/search", after=4))
    with pytest.raises(SourceError, match="HTTP 503"):
        sync(store, server, app=app)
    assert len(store.records(Deal)) == 200  # four pages committed with their watermark
    portal.faults.clear()
    before = portal.count("/deals/search")

    report = sync(store, server, app=app)

    assert report.objects["deals"].new == 300
    assert len(store.records(Deal)) == 500
    # six pages finish the interrupted window above the last committed id, one more reads on
    assert portal.count("/deals/search") - before == 7


def test_a_429_storm_and_flaky_answers_are_ridden_out(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    portal.faults += [
        Fault(429, remaining=6, path="/objects/deals", retry_after="2"),
        Fault(502, remaining=2, path="/batch/read", retry_after=None),
        Fault(0, remaining=1, path="/crm/v4/"),  # a dropped connection on a POST
    ]
    sleeps = Sleeps()
    report = sync(store, server, full=True, sleeps=sleeps)

    assert report.stopped_early is None
    assert report.objects["deals"].new == len(DATA["deals"])
    assert sleeps.count(2.0) == 6  # every 429 waited its Retry-After
    assert len(sleeps) == 9
    assert any("9 answer(s) were retried" in w for w in report.warnings)


def test_the_limiter_keeps_under_the_ten_second_budget(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    now = [0.0]
    sent: list[float] = []

    def advance(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(20, 5, clock=lambda: now[0], sleep=advance)
    app = app_config(server, requests_per_10_seconds=20)
    source = hs_source(server, app=app, limiter=limiter)
    original = limiter.acquire

    def recording(search: bool = False) -> None:
        original(search)
        sent.append(now[0])

    limiter.acquire = recording  # type: ignore[method-assign]
    report = run_sync(store, source, full=True)

    assert report.api_calls == len(sent) > 20
    assert all(b - a >= 10.0 for a, b in zip(sent, sent[20:], strict=False))
    assert limiter.waited >= 10
    assert report.throttled_seconds == pytest.approx(limiter.waited)
    assert any("limiter waited" in w for w in report.warnings)
    stored = store.last_sync()
    assert stored is not None
    assert stored.report["throttled_seconds"] == pytest.approx(limiter.waited, abs=0.001)
    shown = sync_report(report)
    assert f"Client-side rate-limit waits: {limiter.waited:.1f} s" in shown


def test_a_refused_token_is_one_sentence_with_the_category_and_scopes(
    server: FakeHubSpot, store: Store
) -> None:
    with pytest.raises(TokenRefused) as caught:
        sync(store, server, env={"HUBSPOT_ACCESS_TOKEN": "pat-na1-wrong-token"})
    message = str(caught.value)
    assert "INVALID_AUTHENTICATION" in message
    assert "crm.objects.deals.read" in message and "crm.objects.companies.read" in message
    assert "wrong-token" not in message
    with pytest.raises(SourceError, match="set HUBSPOT_ACCESS_TOKEN"):
        sync(store, server, env={})


def test_association_pages_are_followed_and_labels_pick_the_partner(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    partner = _one_partner_portal(portal)
    for n in range(150):
        contact = portal.create("contacts", {"email": f"person{n}@partner.example"})
        portal.associate("companies", partner, "contacts", contact)
    other = portal.create("companies", {"name": "Reseller", "type": "PARTNER"})
    deal = portal.create(
        "deals",
        {"dealname": "Big", "amount": "10", "dealstage": "prospecting"},
    )
    for n in range(120):
        customer = portal.create("companies", {"name": f"Customer {n}", "type": "PROSPECT"})
        portal.associate("deals", deal, "companies", customer)
    portal.associate("deals", deal, "companies", other)
    portal.associate("deals", deal, "companies", partner, label=(37, "Reseller"))

    sync(store, server, full=True)
    partners = {p.id: p for p in store.records(Partner)}
    assert len(partners[str(partner)].contact_emails) == 150
    # two partners are associated; without a label the lower id wins
    assert store.records(Deal)[0].partner_id == str(min(partner, other))

    labelled = app_config(server, deals={"association_type_id": 37})
    sync(store, server, full=True, app=labelled)
    assert store.records(Deal)[0].partner_id == str(partner)


def test_source_for_builds_the_hubspot_source(server: FakeHubSpot, tmp_path: Path) -> None:
    app = app_config(server)
    loaded = LoadedConfig(app, None, tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(source_for(loaded), HubSpotSource)


def test_an_unknown_property_stops_before_anything_is_written(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    app = app_config(server, deals={"csat": "no_such_score"})
    with pytest.raises(SourceError, match=r"hubspot\.deals\.csat \(no_such_score\)"):
        sync(store, server, app=app)
    assert store.counts()["deals"] == 0


def test_date_entered_history_gives_the_same_kpis_as_properties_with_history(
    server: FakeHubSpot, portal: FakePortal, store: Store, tmp_path: Path
) -> None:
    load_portal(portal)
    sync(store, server, full=True)
    entered = open_store(f"sqlite:///{tmp_path / 'entered.db'}")
    app = app_config(server, stage_history="date_entered")
    history_reads = portal.count("/objects/deals/batch/read")

    report = sync(entered, server, full=True, app=app)

    assert report.objects["deals:stage_history"].new == len(DATA["stage_changes"])
    # the entry dates come with the deals: no batch reads of their history
    assert portal.count("/objects/deals/batch/read") == history_reads
    assert_same_records_and_kpis(entered, app, store, app_config(None))

    # incremental: a deal moves on; the search brings its new entry date
    moving = next(int(d["id"]) for d in DATA["deals"] if d["status"] == "open")
    moved_at = portal.tick(minutes=5)
    portal.update("deals", moving, dealstage="closedwon", closedate="2026-11-20T10:00:00Z")
    sync(store, server)
    again = sync(entered, server, app=app)
    assert again.objects["deals:stage_history"].new == 1
    assert entered.records(StageChange) == store.records(StageChange)
    latest = max(
        (c for c in entered.records(StageChange) if c.deal_id == str(moving)),
        key=lambda c: c.entered_at,
    )
    assert (latest.stage, latest.entered_at) == ("Closed Won", moved_at)
    entered.engine.dispose()


def test_date_entered_properties_of_many_pipelines_never_make_an_overlong_url(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    partner = _one_partner_portal(portal)
    for n in range(40):  # 240 more stages: their property names alone pass 9 KB of URL
        stages = [
            (f"{n + 1}{k:08d}", f"P{n} stage {k}", k >= 4, 1.0 if k == 4 else 0.0) for k in range(6)
        ]
        portal.pipeline(f"Pipeline {n}", stages, order=n + 1)
    entered_at = [_at("2026-03-02"), _at("2026-03-09"), _at("2026-04-01")]
    steps = list(zip(["4000000000", "4000000001", "4000000004"], entered_at, strict=True))
    deal = portal.create(
        "deals",
        {"dealname": "Far pipeline", "amount": "10", "dealstage": "4000000004"},
        created=entered_at[0],
        history={"dealstage": steps},
    )
    portal.associate("deals", deal, "companies", partner)
    app = app_config(server, stage_history="date_entered")

    report = sync(store, server, full=True, app=app)

    assert report.stopped_early is None
    changes = sorted(store.records(StageChange), key=lambda c: c.entered_at)
    assert [(c.stage, c.entered_at) for c in changes] == [
        ("P39 stage 0", entered_at[0]),
        ("P39 stage 1", entered_at[1]),
        ("P39 stage 4", entered_at[2]),
    ]
    (stored,) = store.records(Deal)
    assert (stored.status, stored.closed_on) == ("won", date(2026, 4, 1))
    # what did not fit the list's URL came by a batch read (a POST body) merged by id
    assert portal.count("/objects/deals/batch/read", "POST") == 1


# --- OAuth ------------------------------------------------------------------------------

OAUTH_ENV = {
    "HUBSPOT_CLIENT_ID": CLIENT_ID,
    "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
    "HUBSPOT_REFRESH_TOKEN": REFRESH_TOKEN,
}


def _no_secret_in(texts: list[str], portal: FakePortal) -> None:
    issued = [token for token in portal.tokens if token != TOKEN]
    for secret in [CLIENT_SECRET, REFRESH_TOKEN, *issued]:
        assert not any(secret in text for text in texts)


def test_a_sync_with_an_oauth_app_renews_its_token_from_the_refresh_token(
    server: FakeHubSpot, portal: FakePortal, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    load_portal(portal)
    portal.tokens.discard(TOKEN)  # no private app token here
    caplog.set_level(logging.DEBUG)

    report = sync(store, server, full=True, env=OAUTH_ENV)

    assert report.stopped_early is None
    assert report.objects["deals"].new == len(DATA["deals"])
    assert portal.token_grants == [
        {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
    ]
    stored = store.last_sync()
    assert stored is not None
    texts = [sync_report(report), str(stored.report), caplog.text]
    _no_secret_in(texts, portal)


def test_a_token_that_expires_mid_sync_is_renewed_once_and_the_sync_completes(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    portal.expiring_tokens = [10]  # the first token answers 10 calls, then 401 EXPIRED_...

    report = sync(store, server, full=True, env=OAUTH_ENV)

    assert report.stopped_early is None
    assert report.objects["deals"].new == len(DATA["deals"])
    assert report.objects["deals:stage_history"].new == len(DATA["stage_changes"])
    assert portal.expired_answers == 1
    assert len(portal.token_grants) == 2


def test_a_token_past_its_expires_in_is_renewed_before_it_is_used(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    portal.token_lifetime = 600
    now = [0.0]

    def clock() -> float:  # every look at the clock: 100 seconds later
        now[0] += 100
        return now[0]

    source = hs_source(server, env=OAUTH_ENV)
    source.clock = clock
    report = run_sync(store, source, full=True)

    assert report.stopped_early is None
    assert portal.expired_answers == 0
    # A token renewed at t (one look) is due again at t + 600 - 60: six calls a token.
    calls = report.api_calls - len(portal.token_grants)
    assert len(portal.token_grants) == -(-calls // 6)


def test_a_refused_refresh_token_is_one_sentence_and_writes_nothing(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    wrong = {**OAUTH_ENV, "HUBSPOT_REFRESH_TOKEN": "na1-9999-wrong-refresh"}

    with pytest.raises(SourceError) as caught:
        sync(store, server, full=True, env=wrong)

    message = str(caught.value)
    assert message.startswith(
        "HubSpot refused to renew the OAuth access token "
        "(BAD_REFRESH_TOKEN: missing or invalid refresh token); authorize the app again"
    )
    assert "\n" not in message and "wrong-refresh" not in message
    assert CLIENT_SECRET not in message
    assert all(count == 0 for count in store.counts().values())
    assert len(portal.token_grants) == 1  # a 400 is not retried


def test_oauth_variables_must_come_together() -> None:
    with pytest.raises(SourceError, match="set HUBSPOT_REFRESH_TOKEN as well"):
        credentials_from_env({k: v for k, v in OAUTH_ENV.items() if "REFRESH" not in k})


def test_hubspots_daily_limit_stops_the_sync_at_once(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    portal.faults.append(Fault(429, remaining=100, path="/objects/deals", policy="DAILY"))
    sleeps = Sleeps()
    report = run_sync(store, hs_source(server, sleeps=sleeps), full=True)
    assert report.stopped_early == (
        "HubSpot refused further calls for the portal's daily API limit (policyName DAILY); "
        "the next sync resumes where this one stopped"
    )
    assert portal.faults[0].remaining == 99  # refused once, never retried
    assert sleeps == []
    run = store.last_sync(status=None)
    assert run is not None and run.status == "stopped"


@pytest.mark.slow
def test_a_stopped_sync_exits_with_its_own_status(
    server: FakeHubSpot, portal: FakePortal, tmp_path: Path
) -> None:
    load_portal(portal)
    portal.faults.append(Fault(429, remaining=100, path="/objects/deals", policy="DAILY"))
    config = tmp_path / "app.yaml"
    config.write_text(
        "source: hubspot\n"
        f"hubspot:\n  base_url: {server.base_url}\n  requests_per_10_seconds: 100000\n"
        f"database_url: sqlite:///{tmp_path / 'store.db'}\n"
    )
    env = {**os.environ, "HUBSPOT_ACCESS_TOKEN": TOKEN}
    done = subprocess.run(
        [*command(), "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3, done.stderr
    assert "daily API limit (policyName DAILY)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_full_sync_that_would_sweep_half_the_deals_is_refused_but_archived_ones_go(
    server: FakeHubSpot, portal: FakePortal, store: Store
) -> None:
    load_portal(portal)
    sync(store, server, full=True)
    deal_ids = sorted(portal.objects["deals"])
    portal.tick(minutes=5)
    archived = deal_ids[1]
    portal.archive("deals", archived)  # reported: always applies
    for gone in deal_ids[::2]:  # purged past the archive's 90 days, or out of the app's sight
        del portal.objects["deals"][gone]
    with pytest.raises(DeletionRefused) as refused:
        sync(store, server, full=True)
    hidden = len(deal_ids[::2])
    assert f"would delete {hidden:,} of the {len(deal_ids) - 1:,} stored deals," in str(
        refused.value
    )
    assert {d.id for d in store.records(Deal)} == {str(i) for i in deal_ids} - {str(archived)}
    run = store.last_sync(status=None)
    assert run is not None and run.status == "refused"
