"""Wire-level tests of full syncs through Salesforce Bulk API 2.0 (connectors/salesforce/bulk.py)
against the loopback Bulk API of tests/fake_salesforce_bulk.py: the same store as a REST full
sync, locator paging, and the fallbacks to REST with their reasons."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import SourceError
from connectors.incremental import RetryPolicy, read_watermark
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.salesforce import SalesforceSource
from connectors.salesforce import bulk as bulk_reader
from connectors.salesforce.bulk import read_ahead
from connectors.salesforce.mapping import DealMapper, Unmappable
from connectors.sync import run_sync
from kpi import schema
from kpi.models import Deal, StageChange
from kpi.store import KINDS, Store, open_store
from tests.fake_salesforce import FakeOrg, FakeSalesforce
from tests.test_salesforce import (
    DATA,
    ENV,
    app_config,
    load_org,
    server,  # noqa: F401 - the fake, serving this org
    sf_source,
)
from tests.test_salesforce_customers import app_config as customers_config
from tests.test_salesforce_customers import load as load_customers

JOBS = "POST /services/data/v62.0/jobs/query"
COUNTS = "GET /services/data/v62.0/limits/recordCount"
# Opportunities with a name CSV has to quote: a comma, quotes, a line break.
AWKWARD_NAME = 'Acme, "Big" deal\nsecond line'
BULK = {"bulk_threshold": 100}  # the fake org: 9 Accounts, 150 Opportunities, ~500 history rows


pytestmark = pytest.mark.usefixtures("server")

#: The Bulk-or-REST choices and fallbacks are the connector's logic: SQLite only. The store's
#: side (what a Bulk sync writes) is checked on both databases by the tests without it.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def org() -> FakeOrg:
    made = FakeOrg(page_size=500, now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    load_org(made)
    made.bulk_page_size = 40  # several result sets per object
    deal_id = DATA["deals"][3]["id"]
    made.records["Opportunity"][deal_id]["Name"] = AWKWARD_NAME
    return made


@pytest.fixture
def rest_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'rest.db'}")
    yield opened
    opened.engine.dispose()


def full_sync(store: Store, org: FakeOrg, **settings: Any) -> SyncReport:
    return run_sync(store, sf_source(org, app_config(**settings)), full=True)


def fallbacks(report: SyncReport) -> list[str]:
    return [w for w in report.warnings if "Bulk API 2.0" in w]


def requests_like(org: FakeOrg, prefix: str) -> list[str]:
    return [r for r in org.requests if r.startswith(prefix)]


def contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, without the sync log and the moments things were written."""
    moments = {"updated_at", "started_at", "finished_at"}
    found = {}
    with store.engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            if table.name in ("sync_runs", "kpi_customers_version"):  # how, not what, it wrote
                continue
            columns = [c for c in table.columns if c.name not in moments]
            rows = connection.execute(table.select().with_only_columns(*columns)).all()
            found[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return found


def test_a_bulk_full_sync_stores_exactly_what_a_rest_full_sync_stores(
    org: FakeOrg, store: Store, rest_store: Store
) -> None:
    bulk = full_sync(store, org, **BULK)
    assert bulk.stopped_early is None and fallbacks(bulk) == []
    jobs = requests_like(org, JOBS)
    assert len(jobs) == 2  # Opportunity and OpportunityHistory; 9 Accounts stay on REST
    results = requests_like(org, "GET /services/data/v62.0/jobs/query/")
    opportunities = len(DATA["deals"])
    history = sum(1 for r in org.records["OpportunityHistory"].values() if not r["IsDeleted"])
    sets = -(-opportunities // 40) + -(-history // 40)
    assert len([r for r in results if r.endswith("/results")]) == sets
    assert bulk.api_calls == len(org.requests)  # every request counted, Bulk ones too

    org.requests.clear()
    rest = full_sync(rest_store, org, bulk_threshold=0)
    assert rest.stopped_early is None
    assert requests_like(org, JOBS) == [] and requests_like(org, COUNTS) == []

    bulk_tables, rest_tables = contents(store), contents(rest_store)
    assert len(bulk_tables["deals"]) == opportunities
    assert bulk_tables == rest_tables
    assert {d.id: d.name for d in store.records(Deal)}[DATA["deals"][3]["id"]] == AWKWARD_NAME


@SQLITE_ONLY
def test_a_failed_job_falls_back_to_rest_with_the_reason(org: FakeOrg, store: Store) -> None:
    org.bulk_failures["Opportunity"] = "InvalidBatch : Failed to process query: QUERY_TIMEOUT"
    report = full_sync(store, org, **BULK)
    assert report.stopped_early is None
    [warning] = fallbacks(report)
    assert warning.startswith("Opportunity: read through the REST API instead of Bulk API 2.0")
    assert "ended Failed: InvalidBatch : Failed to process query: QUERY_TIMEOUT" in warning
    assert store.counts()["deals"] == len(DATA["deals"])
    assert len(requests_like(org, JOBS)) == 2  # the history's job still ran


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (403, "API_DISABLED_FOR_ORG", "API is not enabled for this Organization or Partner"),
        (403, "INSUFFICIENT_ACCESS", "insufficient access rights on cross-reference id"),
        (404, "NOT_FOUND", "The requested resource does not exist"),
    ],
)
def test_bulk_refused_by_the_org_falls_back_to_rest_with_the_reason(
    org: FakeOrg, store: Store, status: int, code: str, message: str
) -> None:
    def refuse(method: str, path: str) -> tuple[int, Any] | None:
        if method == "POST" and path.endswith("/jobs/query"):
            return status, [{"errorCode": code, "message": message}]
        return None

    org.fault = refuse
    report = full_sync(store, org, **BULK)
    assert report.stopped_early is None
    assert fallbacks(report) == [
        f"{sobject}: read through the REST API instead of Bulk API 2.0 (Salesforce refused a "
        f"request ({code}): {message})"
        for sobject in ("Opportunity", "OpportunityHistory")
    ]
    assert len(requests_like(org, JOBS)) == 1  # refused once: not asked again in the run
    assert store.counts()["deals"] == len(DATA["deals"])


@SQLITE_ONLY
def test_threshold_zero_keeps_every_object_on_rest(org: FakeOrg, store: Store) -> None:
    report = full_sync(store, org, bulk_threshold=0)
    assert fallbacks(report) == []
    assert requests_like(org, JOBS) == [] and requests_like(org, COUNTS) == []
    assert store.counts()["deals"] == len(DATA["deals"])


@SQLITE_ONLY
def test_an_object_at_the_threshold_stays_on_rest(org: FakeOrg, store: Store) -> None:
    full_sync(store, org, bulk_threshold=len(DATA["deals"]))  # "more than" 150: history only
    assert len(requests_like(org, JOBS)) == 1


@SQLITE_ONLY
def test_an_incremental_sync_stays_on_rest(org: FakeOrg, store: Store) -> None:
    full_sync(store, org, **BULK)
    deal_id = DATA["deals"][0]["id"]
    org.tick(minutes=5)
    org.update("Opportunity", deal_id, Name="Renamed")
    org.requests.clear()
    org.tick(minutes=1)
    report = run_sync(store, sf_source(org, app_config(**BULK)))
    assert not report.full and report.stopped_early is None
    assert requests_like(org, JOBS) == [] and requests_like(org, COUNTS) == []
    assert {d.id: d.name for d in store.records(Deal)}[deal_id] == "Renamed"


@SQLITE_ONLY
def test_a_result_set_cut_short_is_read_again_from_its_locator(org: FakeOrg, store: Store) -> None:
    org.bulk_short_sets = 2  # the first two sets sent arrive with half their rows
    report = full_sync(store, org, **BULK)
    assert report.stopped_early is None and fallbacks(report) == []
    results = [r for r in requests_like(org, "GET /services/data/v62.0/jobs/query/")]
    opportunities = len(DATA["deals"])
    history = sum(1 for r in org.records["OpportunityHistory"].values() if not r["IsDeleted"])
    sets = -(-opportunities // 40) + -(-history // 40)
    assert len([r for r in results if r.endswith("/results")]) == sets + 2
    assert store.counts()["deals"] == opportunities
    assert report.objects["Opportunity"].new == opportunities  # each once, none twice


def test_reading_ahead_raises_the_threads_error_and_stops_when_closed() -> None:
    def breaking() -> Iterator[int]:
        yield 1
        yield 2
        raise SourceError("the connection broke")

    got = []
    with pytest.raises(SourceError, match="the connection broke"):
        for item in read_ahead(breaking(), 1):
            got.append(item)
    assert got == [1, 2]

    made: list[int] = []

    def endless() -> Iterator[int]:
        while True:
            made.append(len(made))
            yield made[-1]

    reader = read_ahead(endless(), 2)
    assert next(reader) == 0
    reader.close()
    assert [t for t in threading.enumerate() if t.name == "bulk-results"] == []
    assert len(made) <= 5  # the one read, two queued, one waiting, one made before the stop


def test_customer_accounts_and_their_cases_go_through_bulk_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store, rest_store: Store
) -> None:
    customers = FakeOrg(page_size=200, now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    load_customers(customers)
    app = customers_config()

    def full(into: Store, threshold: int) -> SyncReport:
        settings = app.salesforce.model_copy(update={"bulk_threshold": threshold})
        config = app.model_copy(update={"salesforce": settings})
        retry = RetryPolicy(attempts=3, sleep=lambda _: None)
        source = SalesforceSource(
            config, Normalizer(config), env=ENV, retry=retry, now=customers.clock
        )
        return run_sync(into, source, full=True)

    with FakeSalesforce(customers, tmp_path) as running:
        running.resolve(monkeypatch)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.cert_file))
        bulk = full(store, 1)
        jobs = sorted(job.sobject for job in running.server.bulk.jobs.values())
        rest = full(rest_store, 0)
    assert bulk.stopped_early is None and rest.stopped_early is None
    assert fallbacks(bulk) == []
    assert jobs == ["Account", "Case"]  # customer Accounts; partners (with Contacts) stay REST
    assert bulk.objects["Case"].new == 4 and bulk.objects["Account:customers"].new == 4
    assert contents(store) == contents(rest_store)


def test_deals_with_edge_values_store_and_report_alike_through_bulk_and_rest(
    org: FakeOrg, store: Store, rest_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk's deals go to the store as stored columns (`DealMapper.stored`), REST's as models:
    nulls, currencies with and without a rate, unknown picklist values, a CSAT out of range,
    a closed deal without CloseDate and the rows that cannot be deals give the same store, the
    same problems and the same warnings."""
    deals = [d["id"] for d in DATA["deals"]]
    won = next(d["id"] for d in DATA["deals"] if d["status"] == "won")
    edits: list[dict[str, Any]] = [
        {"Amount": None, "CurrencyIsoCode": "JPY"},
        {"Amount": 1234.56, "CurrencyIsoCode": "eur"},
        {"Amount": 99.5, "CurrencyIsoCode": "JPY"},
        {"Type": "Mystery Type", "LeadSource": "Smoke Signals"},
        {"Type": None, "LeadSource": None, "Partner__c": None, "Partner__r": None},
        {"CSAT__c": 7.0, "Deal_Registered__c": False, "Registration_Date__c": "2026-02-03"},
        {"CSAT__c": 4.5, "Name": ""},
        {"CSAT__c": 3.0, "Name": "  spaced  "},
    ]
    for deal_id, edit in zip(deals[5:], edits, strict=False):
        org.update("Opportunity", deal_id, **edit)
    org.update("Opportunity", won, CloseDate=None)  # its closed-stage entry, from the history
    closed = {"StageName": "Closed Won", "IsClosed": True, "IsWon": True, "CloseDate": None}
    org.insert("Opportunity", {"Name": "No close date, no history", **closed})
    org.insert(
        "Opportunity",
        {
            "Name": "No created date",
            "StageName": "Prospecting",
            "IsClosed": False,
            "IsWon": False,
            "CreatedDate": None,
        },
    )
    built: list[str] = []
    model = DealMapper.model
    monkeypatch.setattr(
        DealMapper, "model", lambda self, fields: built.append(1) or model(self, fields)
    )

    bulk = full_sync(store, org, **BULK)
    assert fallbacks(bulk) == [] and len(requests_like(org, JOBS)) == 2
    bulk_built = len(built)
    rest = full_sync(rest_store, org, bulk_threshold=0)
    assert bulk_built == 0 and len(built) == len(DATA["deals"])  # Bulk never built a model

    assert contents(store) == contents(rest_store)
    assert sorted(bulk.problems) == sorted(rest.problems)
    assert len(bulk.problems) == 2
    assert bulk.objects["Opportunity"].skip_reasons == rest.objects["Opportunity"].skip_reasons
    assert bulk.warnings == rest.warnings
    assert any("in JPY have no rate" in w for w in bulk.warnings)
    stored = {d.id: d for d in store.records(Deal)}
    assert stored[won].closed_on is not None


@pytest.mark.parametrize(
    "edit",
    [
        {"Id": ""},  # the model refuses it: the same reason either way
        {"CreatedDate": "2026-13-45T12:00:00.000Z"},  # a bad date stops the sync either way
        {"CloseDate": "someday"},
        {"CreatedDate": None},
        {"IsClosed": True, "CloseDate": None},
        {"CurrencyIsoCode": "xxx", "Amount": 12.5, "CSAT__c": 0.0},
    ],
)
def test_a_deal_the_stored_columns_cannot_take_fails_as_the_model_does(
    edit: dict[str, Any],
) -> None:
    app = app_config()
    row = {
        "Id": "006000000000001AAA",
        "Name": "A deal",
        "StageName": "Closed Lost",
        "IsClosed": False,
        "IsWon": False,
        "CreatedDate": "2026-01-05T09:30:00.000Z",
        "CloseDate": "2026-02-01",
        "Amount": 100.0,
        "CurrencyIsoCode": "EUR",
        **edit,
    }

    def outcome(build: Any) -> Any:
        mapper = DealMapper(app.salesforce, Normalizer(app), app.tz, has_currency=True)
        try:
            made = build(mapper)
        except (Unmappable, ValueError) as error:
            return type(error), str(error)
        return made if isinstance(made, dict) else KINDS[Deal].values(
            made
        ), mapper.normalizer.warnings()

    def no_history(deal_id: str, stage: str) -> None:
        return None

    assert outcome(lambda m: m.values_or_deal(row, no_history)) == outcome(
        lambda m: m.deal(row, no_history)
    )


def indexes(store: Store) -> list[tuple[str, str]]:
    """The store's indexes and triggers, with their SQL."""
    with store.engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND sql IS NOT NULL ORDER BY name"
        )
        return [(str(name), str(sql)) for name, sql in found]


def test_a_bulk_result_written_in_many_pages_stores_what_rest_stores(
    org: FakeOrg, store: Store, rest_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Bulk result's pages go to the store as one load (one transaction; into an empty
    SQLite table, its indexes built at the end): a page's stage changes are settled against
    the stored history of their deals, the earlier pages of the load included, so an amount
    edit whose stage change came in the page before is still no stage change."""
    monkeypatch.setattr(bulk_reader, "ROWS_PER_PAGE", 5)  # deals' histories split across pages
    report = full_sync(store, org, **BULK)
    assert report.stopped_early is None and fallbacks(report) == []
    full_sync(rest_store, org, bulk_threshold=0)
    assert contents(store) == contents(rest_store)
    if store.engine.dialect.name == "sqlite":
        assert indexes(store) == indexes(rest_store)


@SQLITE_ONLY
def test_a_bulk_load_that_breaks_off_leaves_the_store_whole_and_the_next_sync_loads_it(
    org: FakeOrg, store: Store, rest_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the middle of a Bulk result's load (its table's indexes set aside) rolls
    the load back whole: the store keeps every index and trigger, the stage changes written
    so far are gone with their watermark, and the next sync loads them all."""
    monkeypatch.setattr(bulk_reader, "ROWS_PER_PAGE", 20)
    schema_before = indexes(store)
    upsert = Store.upsert
    writes: list[int] = []

    def breaking(self: Store, connection: Any, records: Any, source: str) -> Any:
        records = list(records)
        if any(isinstance(r, StageChange) for r in records):
            writes.append(len(records))
            if len(writes) == 4:
                raise RuntimeError("the process died here")
        return upsert(self, connection, records, source)

    monkeypatch.setattr(Store, "upsert", breaking)
    with pytest.raises(RuntimeError, match="the process died here"):
        full_sync(store, org, **BULK)
    assert len(writes) == 4  # three pages of stage changes written before, in the load
    assert indexes(store) == schema_before
    assert store.counts()["stage_changes"] == 0
    assert store.counts()["deals"] == len(DATA["deals"])  # the stream before: committed
    with store.engine.connect() as connection:
        assert read_watermark(store, "salesforce", "OpportunityHistory") is None
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    monkeypatch.setattr(Store, "upsert", upsert)
    report = full_sync(store, org, **BULK)
    assert report.stopped_early is None
    full_sync(rest_store, org, bulk_threshold=0)
    assert contents(store) == contents(rest_store)
    assert indexes(store) == schema_before
