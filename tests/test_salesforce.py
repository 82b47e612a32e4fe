"""Wire-level tests of the Salesforce source: the real simple-salesforce over HTTPS against the
loopback fake of tests/fake_salesforce.py."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.errors import SourceError
from connectors.files import FilesSource
from connectors.guard import DeletionRefused
from connectors.incremental import ApiBudget, Cursor, RetryPolicy, read_watermark
from connectors.normalize import Normalizer
from connectors.salesforce import SalesforceSource
from connectors.salesforce.auth import LoginRefused
from connectors.salesforce.client import SalesforceApi
from connectors.salesforce.describe import UnknownFields
from connectors.salesforce.soql import Query, equals, literal
from connectors.salesforce.streams import merged_pages, ordered, query_pages
from connectors.sync import run_sync
from kpi import schema
from kpi.engine import KpiEngine
from kpi.models import Deal, Partner, StageChange
from kpi.store import Store, open_store
from settings.app import AppConfig
from tests.demo_folder import demo_slice
from tests.fake_salesforce import MAX_URI, FakeOrg, FakeSalesforce, parse_sf_datetime
from tests.kpi_compare import assert_same_partner_kpis

PARTNERS = 4  # demo partners in the fake org
DIRECT_DEALS = 60
AS_OF = date(2026, 11, 20)
ENV = {
    "SALESFORCE_USERNAME": "partner-kpi@example.com",
    "SALESFORCE_PASSWORD": "correct horse",
    "SALESFORCE_SECURITY_TOKEN": "TOKEN123",
}
TYPES = {"new": "New Customer", "upsell": "Existing Customer - Upgrade", "renewal": "Renewal"}
STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Proposal", "Negotiation"]
STAGES += ["Closed Won", "Closed Lost"]
CUSTOM_FIELDS: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    "Account": {
        "Partner_Tier__c": ("picklist", None, None),
        "Partner_Since__c": ("date", None, None),
        "Partner_Until__c": ("date", None, None),
    },
    "Opportunity": {
        "CurrencyIsoCode": ("picklist", None, None),
        "Partner__c": ("reference", "Partner__r", "Account"),
        "Deal_Registered__c": ("boolean", None, None),
        "Registration_Date__c": ("date", None, None),
        "CSAT__c": ("double", None, None),
    },
}
SETTINGS: dict[str, Any] = {
    "page_size": 200,
    "partners": {
        "tier": "Partner_Tier__c",
        "joined_on": "Partner_Since__c",
        "left_on": "Partner_Until__c",
        "region": "BillingCountry",
    },
    "deals": {
        "partner": "Partner__c",
        "registered": "Deal_Registered__c",
        "registered_on": "Registration_Date__c",
        "csat": "CSAT__c",
    },
}


# --- the data: a slice of the demo program, as CSV rows --------------------------------


DATA = demo_slice(PARTNERS, DIRECT_DEALS)


def write_files(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, rows in DATA.items():
        with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder


def load_org(org: FakeOrg) -> None:
    """The same program as the CSV slice, as Salesforce records."""
    org.custom_fields = {k: dict(v) for k, v in CUSTOM_FIELDS.items()}
    org.picklists[("Opportunity", "Type")] = list(TYPES.values())
    org.picklists[("Opportunity", "LeadSource")] = sorted(
        {d["lead_source"] for d in DATA["deals"] if d["lead_source"]}
    )
    for order, stage in enumerate(STAGES, 1):
        org.insert("OpportunityStage", {"MasterLabel": stage, "ApiName": stage, "SortOrder": order})
    for p in DATA["partners"]:
        owner = {"Id": f"005{p['id'][3:]}", "Email": p["owner_email"]} if p["owner_email"] else None
        org.insert(
            "Account",
            {
                "Id": p["id"],
                "Name": p["name"],
                "IsPartner": True,
                "Partner_Tier__c": p["tier"] or None,
                "Partner_Since__c": p["joined_on"],
                "Partner_Until__c": p["left_on"] or None,
                "OwnerId": owner["Id"] if owner else None,
                "Owner": owner,
                "BillingCountry": p["region"] or None,
            },
            modified=datetime.fromisoformat(f"{p['joined_on']}T09:00:00+00:00"),
        )
        for email in filter(None, p["contact_emails"].split(";")):
            org.insert("Contact", {"AccountId": p["id"], "Email": email})
    org.insert("Account", {"Name": "A customer", "IsPartner": False})
    last_change: dict[str, datetime] = {}
    for change in DATA["stage_changes"]:
        at = datetime.fromisoformat(change["entered_at"].replace("Z", "+00:00"))
        last_change[change["deal_id"]] = max(at, last_change.get(change["deal_id"], at))
    for d in DATA["deals"]:
        closed = d["status"] != "open"
        org.insert(
            "Opportunity",
            {
                "Id": d["id"],
                "Name": d["name"],
                "Amount": float(d["amount"]) if d["amount"] else None,
                "CurrencyIsoCode": d["currency"] or "USD",
                "StageName": d["stage"],
                "IsClosed": closed,
                "IsWon": d["status"] == "won",
                "CreatedDate": f"{d['created_on']}T12:00:00.000+0000",
                "CloseDate": (d["closed_on"] if closed else d["expected_close_on"]) or None,
                "Type": TYPES.get(d["type"]),
                "LeadSource": d["lead_source"] or None,
                "Partner__c": d["partner_id"] or None,
                "Partner__r": {"Id": d["partner_id"]} if d["partner_id"] else None,
                "Deal_Registered__c": d["registered"] == "true",
                "Registration_Date__c": d["registered_on"] or None,
                "CSAT__c": float(d["csat"]) if d["csat"] else None,
            },
            modified=min(last_change.get(d["id"], org.now), org.now),
        )
    for n, change in enumerate(DATA["stage_changes"]):
        at = datetime.fromisoformat(change["entered_at"].replace("Z", "+00:00"))
        row = {"OpportunityId": change["deal_id"], "StageName": change["stage"]}
        org.insert("OpportunityHistory", row, modified=at)
        if n % 7 == 0:  # an amount edit: a history row that is no stage change
            org.insert("OpportunityHistory", row, modified=at + timedelta(seconds=1))


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def org() -> FakeOrg:
    made = FakeOrg(page_size=500, now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    load_org(made)
    return made


@pytest.fixture
def server(
    org: FakeOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSalesforce]:
    with FakeSalesforce(org, tmp_path) as running:
        running.resolve(monkeypatch)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.cert_file))
        yield running


def app_config(source: str = "salesforce", **salesforce: Any) -> AppConfig:
    settings = {**SETTINGS, **salesforce}
    return AppConfig.model_validate(
        {
            "source": source,
            "salesforce": settings,
            "currency_rates": {"EUR": 1.08, "GBP": 1.27, "CHF": 1.1},
            "channel_map": {"Podcast": "owned"},
            "stages": STAGES,
        }
    )


def sf_source(org: FakeOrg, app: AppConfig | None = None, env: dict[str, str] = ENV) -> Any:
    app = app or app_config()
    retry = RetryPolicy(attempts=3, sleep=lambda _: None)
    return SalesforceSource(app, Normalizer(app), env=env, retry=retry, now=org.clock)


def sync(store: Store, org: FakeOrg, full: bool = False, **kwargs: Any) -> Any:
    org.tick(minutes=1)
    return run_sync(store, sf_source(org, **kwargs), full=full)


def live(org: FakeOrg, sobject: str) -> list[dict[str, Any]]:
    return [r for r in org.records.get(sobject, {}).values() if not r["IsDeleted"]]


# --- tests ------------------------------------------------------------------------------


def test_full_sync_equals_the_files_source_kpi_for_kpi(
    server: FakeSalesforce, org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    report = sync(store, org, full=True)
    assert report.stopped_early is None
    assert report.objects["Opportunity"].new == len(DATA["deals"])
    assert report.objects["Account"].new == PARTNERS
    # one call per page of 200 plus a handful (login, describes, stage order, deletions)
    pages = sum(
        -(-len(live(org, o)) // 200) for o in ("Account", "Opportunity", "OpportunityHistory")
    )
    assert report.api_calls <= pages + 15

    files_store = open_store(f"sqlite:///{tmp_path / 'files.db'}")
    files_app = app_config("files")
    run_sync(files_store, FilesSource(write_files(tmp_path / "csv"), Normalizer(files_app)))

    assert _partners(store) == _partners(files_store)
    assert _deals(store) == _deals(files_store)
    assert store.records(StageChange) == files_store.records(StageChange)
    sf_engine = KpiEngine(store, app_config().kpi_settings)
    files_engine = KpiEngine(files_store, files_app.kpi_settings)
    partner_ids = [p["id"] for p in DATA["partners"]]
    assert_same_partner_kpis(sf_engine, files_engine, partner_ids, AS_OF)
    with store.engine.connect() as connection:
        order = connection.execute(
            schema.pipeline_stages.select().order_by(schema.pipeline_stages.c.sort_order)
        ).all()
    assert [row.stage for row in order] == STAGES
    files_store.engine.dispose()


def _partners(store: Store) -> list[Partner]:
    return [
        p.model_copy(update={"contact_emails": tuple(sorted(p.contact_emails))})
        for p in store.records(Partner)
    ]


def _deals(store: Store) -> list[Deal]:
    return [d.model_copy(update={"currency": None}) for d in store.records(Deal)]


def test_incremental_sync_brings_changes_and_deletions(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    sync(store, org, full=True)
    partner_id = DATA["partners"][0]["id"]
    leaving_id = DATA["partners"][1]["id"]
    deals = [d["id"] for d in DATA["deals"] if d["status"] == "open"]
    changed, soft, hard = deals[0], deals[1], deals[2]
    org.tick(minutes=5)
    org.update(
        "Opportunity",
        changed,
        Amount=12345.0,
        StageName="Closed Won",
        IsClosed=True,
        IsWon=True,
        CloseDate="2026-11-20",
    )
    org.insert("OpportunityHistory", {"OpportunityId": changed, "StageName": "Closed Won"})
    new_id = org.insert(
        "Opportunity",
        {
            "Name": "Brand new",
            "Amount": 500.0,
            "CurrencyIsoCode": "EUR",
            "StageName": "Prospecting",
            "IsClosed": False,
            "IsWon": False,
            "Partner__c": partner_id,
            "CloseDate": "2027-01-31",
            "Type": "Renewal",
            "LeadSource": "Web",
        },
    )
    org.soft_delete("Opportunity", soft)
    org.hard_delete("Opportunity", hard)
    org.update("Account", leaving_id, IsPartner=False)
    org.insert("Contact", {"AccountId": partner_id, "Email": "new.person@example.com"})
    calls_before = org.api_used

    report = sync(store, org)

    assert report.stopped_early is None
    # a few calls, not a full pass: one or two per object (customers and Cases included)
    assert org.api_used - calls_before <= 20
    deals_now = {d.id: d for d in store.records(Deal)}
    assert deals_now[changed].status == "won" and deals_now[changed].closed_on == date(2026, 11, 20)
    assert deals_now[new_id].amount is not None and float(deals_now[new_id].amount) == 540.0
    assert deals_now[new_id].type == "renewal" and deals_now[new_id].channel == "owned"
    assert soft not in deals_now and hard not in deals_now
    assert not [c for c in store.records(StageChange) if c.deal_id in (soft, hard)]
    partners_now = {p.id: p for p in store.records(Partner)}
    assert leaving_id not in partners_now
    assert "new.person@example.com" in partners_now[partner_id].contact_emails
    # getDeleted (read first) lists both; queryAll's IsDeleted row finds nothing left to delete
    assert report.objects["Opportunity:deleted"].deleted == 2
    assert report.objects["Opportunity"].deleted == 0
    assert report.objects["Account:left"].deleted == 1
    # the watermark sits on the last opportunity changed, ties on SystemModstamp broken by id
    watermark = read_watermark(store, "salesforce", "Opportunity")
    assert watermark is not None and watermark.id == max(changed, soft, new_id)


def test_a_full_sync_of_an_org_that_hides_half_its_opportunities_is_refused(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    sync(store, org, full=True)
    opportunities = sorted(r["Id"] for r in live(org, "Opportunity"))
    org.tick(minutes=5)
    org.hidden.update(opportunities[::2])  # a sharing rule changed: half are out of sight
    soft, hard = opportunities[1], opportunities[3]
    org.soft_delete("Opportunity", soft)  # explicit deletions (getDeleted) still apply
    org.hard_delete("Opportunity", hard)
    with pytest.raises(DeletionRefused) as refused:
        sync(store, org, full=True)
    message = str(refused.value)
    hidden = len(opportunities[::2])
    assert f" {hidden:,} of the {len(opportunities) - 2:,} stored deals" in message
    assert "none of them were deleted" in message
    assert "`partner-kpi sync --accept-deletes`" in message
    assert {d.id for d in store.records(Deal)} == set(opportunities) - {soft, hard}
    run = store.last_sync(status=None)
    assert run is not None and run.status == "refused" and run.error == message
    assert run.report["objects"]["Opportunity:deleted"]["deleted"] == 2
    assert run.report["objects"]["Opportunity"]["deleted"] == 0

    org.tick(minutes=1)
    run_sync(store, sf_source(org), full=True, accept_deletes=True)
    assert {d.id for d in store.records(Deal)} == set(opportunities[1::2]) - {soft, hard}


def test_an_interrupted_sync_resumes_without_loss_or_duplicates(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    pages_served = {"n": 0}

    def fail_after_three_pages(method: str, path: str) -> tuple[int, Any] | None:
        if "/query/01g" in path:
            pages_served["n"] += 1
            if pages_served["n"] > 3:
                return 503, [{"message": "Service unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
        return None

    org.fault = fail_after_three_pages
    with pytest.raises(SourceError, match="SERVER_UNAVAILABLE"):
        sync(store, org)
    partial = store.counts()
    assert partial["partners"] + partial["stage_changes"] > 0
    assert store.last_sync(status=None).status == "failed"

    org.fault = None
    report = sync(store, org)
    assert report.stopped_early is None
    assert sorted(d.id for d in store.records(Deal)) == sorted(d["id"] for d in DATA["deals"])
    assert store.records(StageChange) == _expected_changes(store)


def _expected_changes(store: Store) -> list[StageChange]:
    wanted = sorted(
        (c["deal_id"], c["stage"], datetime.fromisoformat(c["entered_at"].replace("Z", "+00:00")))
        for c in DATA["stage_changes"]
    )
    got = sorted((c.deal_id, c.stage, c.entered_at) for c in store.records(StageChange))
    assert got == wanted
    return store.records(StageChange)


def test_a_transient_fault_is_retried(server: FakeSalesforce, org: FakeOrg, store: Store) -> None:
    failures = {"left": 2}

    def flaky(method: str, path: str) -> tuple[int, Any] | None:
        if failures["left"] and "/query" in path:
            failures["left"] -= 1
            return 503, [{"message": "try later", "errorCode": "SERVER_UNAVAILABLE"}]
        return None

    org.fault = flaky
    report = sync(store, org)
    assert report.stopped_early is None and failures["left"] == 0
    assert store.counts()["deals"] == len(DATA["deals"])


def test_the_sync_stops_before_its_share_of_the_allowance(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    org.api_total = 30  # the sync may use 15 calls
    report = sync(store, org)
    assert report.stopped_early is not None and "50%" in report.stopped_early
    assert org.api_used <= 15
    assert store.last_sync(status=None).status == "stopped"
    kept = {o: read_watermark(store, "salesforce", o) for o in ("Account", "OpportunityHistory")}
    assert kept["Account"] is not None

    org.api_total = 100_000
    org.api_used = 0
    report = sync(store, org)
    assert report.stopped_early is None
    assert store.counts()["deals"] == len(DATA["deals"])
    _expected_changes(store)


def test_request_limit_exceeded_stops_cleanly(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    served = {"n": 0}

    def other_integrations_spend_the_rest(method: str, path: str) -> tuple[int, Any] | None:
        served["n"] += 1
        if served["n"] > 8:
            return 403, [
                {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
            ]
        return None

    org.fault = other_integrations_spend_the_rest
    report = sync(store, org)
    assert report.stopped_early is not None and "REQUEST_LIMIT_EXCEEDED" in report.stopped_early


def test_an_expired_session_logs_in_again_once(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    seen = {"n": 0}

    def expire(method: str, path: str) -> tuple[int, Any] | None:
        seen["n"] += 1
        if seen["n"] == 6:
            org.sessions.clear()
            return 401, [
                {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
            ]
        return None

    org.fault = expire
    report = sync(store, org)
    assert report.stopped_early is None
    assert org.logins == 2
    assert store.counts()["deals"] == len(DATA["deals"])


def test_an_unknown_custom_field_is_named_and_nothing_is_synced(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    app = app_config(deals={**SETTINGS["deals"], "csat": "Satisfaction__c"})
    with pytest.raises(UnknownFields) as error:
        sync(store, org, app=app)
    assert "Opportunity.Satisfaction__c (salesforce.deals.csat)" in str(error.value)
    assert not any(store.counts().values())
    assert not [r for r in org.requests if "/query" in r]


def test_relationship_fields_and_opportunity_partner_roles(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    partner = DATA["partners"][2]
    deal = next(d for d in DATA["deals"] if not d["partner_id"])
    org.insert(
        "OpportunityPartner",
        {
            "OpportunityId": deal["id"],
            "AccountToId": partner["id"],
            "Role": "Reseller",
            "IsPrimary": True,
        },
    )
    org.insert(
        "OpportunityPartner",
        {
            "OpportunityId": deal["id"],
            "AccountToId": "001other",
            "Role": "Distributor",
            "IsPrimary": False,
        },
    )
    app = app_config(
        partners={**SETTINGS["partners"], "owner_email": "Owner.Email"},
        deals={**SETTINGS["deals"], "partner_role": "Reseller"},
    )
    sync(store, org, full=True, app=app)
    deals = {d.id: d for d in store.records(Deal)}
    assert deals[deal["id"]].partner_id == partner["id"]
    assert all(d.partner_id is None for i, d in deals.items() if i != deal["id"])
    owners = {p.id: p.owner_email for p in store.records(Partner)}
    assert owners[partner["id"]] == (partner["owner_email"] or None)

    # a deal's reseller changes: the OpportunityPartner edit brings the deal again
    other = DATA["partners"][3]["id"]
    org.tick(minutes=2)
    link = next(r for r in live(org, "OpportunityPartner") if r["Role"] == "Reseller")
    org.update("OpportunityPartner", link["Id"], AccountToId=other)
    sync(store, org, app=app)
    assert {d.id: d for d in store.records(Deal)}[deal["id"]].partner_id == other


def test_a_closed_deal_without_close_date_takes_its_closed_stage_entry(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    won = next(d for d in DATA["deals"] if d["status"] == "won")
    org.update("Opportunity", won["id"], CloseDate=None)
    sync(store, org)
    entered = max(
        datetime.fromisoformat(c["entered_at"].replace("Z", "+00:00"))
        for c in DATA["stage_changes"]
        if c["deal_id"] == won["id"] and c["stage"] == won["stage"]
    )
    assert {d.id: d for d in store.records(Deal)}[won["id"]].closed_on == entered.date()


def test_a_refused_login_is_one_sentence_with_the_code(
    server: FakeSalesforce, org: FakeOrg, store: Store
) -> None:
    env = {**ENV, "SALESFORCE_PASSWORD": "wrong"}
    with pytest.raises(LoginRefused) as error:
        sync(store, org, env=env)
    message = str(error.value)
    assert message.startswith("Salesforce refused the username-password login (INVALID_LOGIN)")
    assert "wrong" not in message and "TOKEN123" not in message


def test_jwt_bearer_and_client_credentials_logins(
    server: FakeSalesforce, org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    org.jwt_public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwt_env = {
        "SALESFORCE_USERNAME": org.username,
        "SALESFORCE_CONSUMER_KEY": org.consumer_key,
        "SALESFORCE_PRIVATE_KEY_FILE": str(key_file),
    }
    assert sync(store, org, env=jwt_env).stopped_early is None
    client_env = {
        "SALESFORCE_CONSUMER_KEY": org.consumer_key,
        "SALESFORCE_CONSUMER_SECRET": org.consumer_secret,
    }
    app = app_config(domain="acme.my")
    assert sync(store, org, env=client_env, app=app).stopped_early is None
    bad = {**client_env, "SALESFORCE_CONSUMER_SECRET": "nope"}
    with pytest.raises(LoginRefused, match=r"client-credentials login \(invalid_grant\)"):
        sync(store, org, env=bad, app=app)


def test_soql_literals_are_escaped() -> None:
    assert literal("O'Brien \\ co\n") == "'O\\'Brien \\\\ co\\n'"
    assert literal(True) == "true" and literal(None) == "null"
    assert literal(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert equals("Role", ["Reseller", "x') OR Id != ('"]) == (
        "Role IN ('Reseller', 'x\\') OR Id != (\\'')"
    )
    with pytest.raises(ValueError):
        Query("Account", ["Name; DELETE"]).text()


def test_cursor_round_trips() -> None:
    cursor = Cursor(datetime(2026, 1, 1, tzinfo=UTC), "006A")
    assert Cursor.decode(cursor.encode()) == cursor


def _long_field_list(org: FakeOrg, count: int) -> list[str]:
    """`count` custom Opportunity fields with long names, each set on every opportunity."""
    names = [f"Quarterly_Forecast_Adjustment_Note_{n:03d}__c" for n in range(count)]
    org.custom_fields["Opportunity"].update({name: ("string", None, None) for name in names})
    for record in org.records["Opportunity"].values():
        record.update({name: f"{record['Id']}:{n}" for n, name in enumerate(names)})
    return names


def _read_all(org: FakeOrg, fields: list[str], **settings: Any) -> list[dict[str, Any]]:
    api = SalesforceApi(
        app_config(**settings).salesforce,
        ApiBudget(),
        RetryPolicy(attempts=2, sleep=lambda _: None),
        env=ENV,
    )
    query = ordered(Query("Opportunity", ["Name", *fields]))
    return [row for page in query_pages(api, query, include_deleted=True) for row in page]


def _assert_complete(org: FakeOrg, rows: list[dict[str, Any]], fields: list[str]) -> None:
    records = org.records["Opportunity"]
    wanted = sorted(
        records.values(), key=lambda r: (parse_sf_datetime(r["SystemModstamp"]), r["Id"])
    )
    assert [r["Id"] for r in rows] == [r["Id"] for r in wanted]
    for row in rows:
        record = records[row["Id"]]
        assert row["Name"] == record["Name"]
        assert all(row[name] == record[name] for name in fields), row["Id"]
        assert row["attributes"]["type"] == "Opportunity"


def test_a_field_list_too_long_for_a_url_is_split_and_merged_by_id(
    server: FakeSalesforce, org: FakeOrg
) -> None:
    fields = _long_field_list(org, 400)  # about 19,000 characters of field names
    rows = _read_all(org, fields)
    _assert_complete(org, rows, fields)
    assert max(org.uri_lengths) <= MAX_URI  # no request was refused as too long
    first_pages = [r for r in org.requests if r.endswith("/queryAll/")]
    assert len(first_pages) >= 2  # several queries over chunks of the fields
    pages = -(-len(rows) // 200)
    assert len([r for r in org.requests if "/queryAll" in r]) == len(first_pages) * pages


def test_a_414_answer_splits_the_field_list_further(server: FakeSalesforce, org: FakeOrg) -> None:
    org.max_uri = 8_000  # a proxy before Salesforce that refuses shorter URIs
    fields = _long_field_list(org, 200)  # about 9,500 characters: under max_url_length
    rows = _read_all(org, fields)
    _assert_complete(org, rows, fields)
    refused = [n for n in org.uri_lengths if n > org.max_uri]
    assert len(refused) == 1  # the first, unsplit query; then halves of max_url_length
    assert max(n for n in org.uri_lengths if n <= org.max_uri) <= 15_000 // 2


def test_merging_field_chunks_tolerates_rows_that_moved_between_the_queries() -> None:
    def rows(*ids: str, field: str) -> list[dict[str, Any]]:
        return [{"Id": i, field: f"{field}-{i}"} for i in ids]

    driver = iter([rows("A", "B", field="x"), rows("C", "D", field="x")])
    # C was modified after the first chunk's query ran: the second one sees it last; E is new.
    other = iter([rows("A", "B", field="y"), rows("D", "E", field="y"), rows("C", field="y")])
    pages = list(merged_pages([driver, other]))
    assert [[r["Id"] for r in page] for page in pages] == [["A", "B"], ["C", "D"]]
    assert all(r["y"] == f"y-{r['Id']}" and r["x"] == f"x-{r['Id']}" for p in pages for r in p)

    # a row the other chunk never saw (it left the query's filter meanwhile) waits for next run
    driver = iter([rows("A", "B", field="x")])
    other = iter([rows("A", field="y")])
    assert [[r["Id"] for r in page] for page in merged_pages([driver, other])] == [["A"]]
