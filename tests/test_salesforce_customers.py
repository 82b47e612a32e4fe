"""Wire-level tests of Salesforce customers (Accounts matching salesforce.customers.filter) and
support tickets (their Cases), and of a CRM source with a secondary files folder: the real
simple-salesforce over HTTPS against the loopback fake of tests/fake_salesforce.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import SourceError
from connectors.guard import DeletionRefused
from connectors.incremental import RetryPolicy
from connectors.normalize import Normalizer
from connectors.salesforce import SalesforceSource
from connectors.salesforce.describe import UnknownFields
from connectors.secondary import SecondaryFiles
from connectors.sync import run_sync
from kpi.engine import KpiEngine
from kpi.models import Customer, Deal, SupportTicket, TrainingCompletion
from kpi.store import Store
from settings.app import AppConfig, parse_config
from settings.base import ConfigError
from settings.periods import parse_period
from tests.fake_salesforce import FakeOrg
from tests.test_salesforce import ENV, server  # noqa: F401 - the fake, serving this org

pytestmark = pytest.mark.usefixtures("server")

ACCOUNT_FIELDS: dict[str, tuple[str, str | None, str | None]] = {
    "CurrencyIsoCode": ("picklist", None, None),
    "Sourcing_Partner__c": ("reference", "Sourcing_Partner__r", "Account"),
    "Customer_Since__c": ("date", None, None),
    "Churned_On__c": ("date", None, None),
    "MRR__c": ("currency", None, None),
    "Go_Live__c": ("date", None, None),
    "Referred_By__c": ("reference", "Referred_By__r", "Account"),
}
CUSTOMERS: dict[str, Any] = {
    "partner": "Sourcing_Partner__c",
    "became_customer_on": "Customer_Since__c",
    "churned_on": "Churned_On__c",
    "mrr": "MRR__c",
    "onboarded_on": "Go_Live__c",
    "referred_by": "Referred_By__c",
}
P1, P2 = "001000000000P01AAA", "001000000000P02AAA"
C1, C2, C3, C4 = (f"001000000000C0{n}AAA" for n in range(1, 5))
PROSPECT = "001000000000X01AAA"


def load(org: FakeOrg) -> None:
    """Two partners, four customers (one direct), a prospect, and five Cases."""
    org.custom_fields = {"Account": dict(ACCOUNT_FIELDS)}
    org.picklists[("Account", "Type")] = ["Customer", "Former Customer", "Prospect", "Partner"]
    org.insert("OpportunityStage", {"MasterLabel": "Closed Won", "SortOrder": 1})
    for partner_id, name in ((P1, "Northwind"), (P2, "Contoso")):
        org.insert(
            "Account",
            {"Id": partner_id, "Name": name, "IsPartner": True, "Type": "Partner"},
            modified=datetime(2025, 6, 1, tzinfo=UTC),
        )
    customers = [
        (C1, "Alpha", P1, "2026-01-10", None, 1000.0, "EUR", "2026-02-09", None),
        (C2, "Beta", P1, "2026-03-01", "2026-09-30", 500.0, "USD", None, C1),
        (C3, "Gamma", None, "2026-04-15", None, None, "USD", "2026-04-20", None),
        (C4, "Delta", P2, "2026-05-01", None, 200.0, "GBP", None, None),
    ]
    for cid, name, partner, since, churned, mrr, currency, live, referrer in customers:
        org.insert(
            "Account",
            {
                "Id": cid,
                "Name": name,
                "Type": "Customer",
                "IsPartner": False,
                "Sourcing_Partner__c": partner,
                "Customer_Since__c": since,
                "Churned_On__c": churned,
                "MRR__c": mrr,
                "CurrencyIsoCode": currency,
                "Go_Live__c": live,
                "Referred_By__c": referrer,
            },
            modified=datetime(2026, 6, 1, tzinfo=UTC),
        )
    org.insert("Account", {"Id": PROSPECT, "Name": "Epsilon", "Type": "Prospect"})
    for n, (account, opened) in enumerate(
        [
            (C1, "2026-03-02T10:00:00.000+0000"),
            (C1, "2026-07-15T23:30:00.000+0000"),
            (C2, "2026-04-01T08:00:00.000+0000"),
            (C4, "2026-06-01T08:00:00.000+0000"),
            (PROSPECT, "2026-05-05T08:00:00.000+0000"),
        ],
        1,
    ):
        org.insert(
            "Case",
            {"Id": f"500000000000T0{n}AAA", "AccountId": account, "CreatedDate": opened},
            modified=datetime.fromisoformat(opened),
        )


def case_id(n: int) -> str:
    return f"500000000000T0{n}AAA"


@pytest.fixture
def org() -> FakeOrg:
    made = FakeOrg(page_size=200, now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    load(made)
    return made


def app_config(**customers: Any) -> AppConfig:
    return AppConfig.model_validate(
        {
            "source": "salesforce",
            "salesforce": {
                "page_size": 200,
                "partners": {"owner_email": None},
                "customers": {**CUSTOMERS, **customers},
            },
            "currency_rates": {"EUR": 1.08, "GBP": 1.25},
        }
    )


def sync(
    store: Store,
    org: FakeOrg,
    full: bool = False,
    app: AppConfig | None = None,
    secondary: SecondaryFiles | None = None,
    accept_deletes: bool = False,
) -> Any:
    org.tick(minutes=1)
    app = app or app_config()
    source = SalesforceSource(
        app,
        Normalizer(app),
        env=ENV,
        retry=RetryPolicy(attempts=3, sleep=lambda _: None),
        now=org.clock,
        secondary=secondary,
    )
    return run_sync(store, source, full=full, accept_deletes=accept_deletes)


def customers(store: Store) -> dict[str, Customer]:
    return {c.id: c for c in store.records(Customer)}


def tickets(store: Store) -> dict[str, str]:
    return {t.id: t.customer_id for t in store.records(SupportTicket)}


def test_a_full_sync_reads_customer_accounts_and_their_cases(org: FakeOrg, store: Store) -> None:
    org.page_size = 2  # Salesforce's pages of at most 2 rows: queryMore through nextRecordsUrl
    report = sync(store, org, full=True)

    assert report.stopped_early is None
    assert report.objects["Account:customers"].new == 4
    assert report.objects["Case"].new == 4  # the prospect's Case is no customer's
    assert customers(store) == {
        C1: Customer(
            id=C1,
            partner_id=P1,
            name="Alpha",
            became_customer_on=date(2026, 1, 10),
            mrr=Decimal("1080.00"),  # 1,000 EUR at 1.08
            original_mrr=Decimal("1000.0"),
            currency="EUR",
            onboarded_on=date(2026, 2, 9),
        ),
        C2: Customer(
            id=C2,
            partner_id=P1,
            name="Beta",
            became_customer_on=date(2026, 3, 1),
            churned_on=date(2026, 9, 30),
            mrr=Decimal("500.0"),
            original_mrr=Decimal("500.0"),
            currency="USD",
            referred_by=C1,
        ),
        C3: Customer(
            id=C3,
            name="Gamma",
            became_customer_on=date(2026, 4, 15),
            currency="USD",
            onboarded_on=date(2026, 4, 20),
        ),
        C4: Customer(
            id=C4,
            partner_id=P2,
            name="Delta",
            became_customer_on=date(2026, 5, 1),
            mrr=Decimal("250.000"),  # 200 GBP at 1.25
            original_mrr=Decimal("200.0"),
            currency="GBP",
        ),
    }
    assert tickets(store) == {case_id(1): C1, case_id(2): C1, case_id(3): C2, case_id(4): C4}
    opened = {t.id: t.opened_at for t in store.records(SupportTicket)}
    assert opened[case_id(2)] == datetime(2026, 7, 15, 23, 30, tzinfo=UTC)
    assert [r for r in org.requests if "/query/01g" in r]  # more pages were followed


def test_an_incremental_sync_brings_changed_customers_cases_and_deletions(
    org: FakeOrg, store: Store
) -> None:
    sync(store, org, full=True)
    org.tick(minutes=5)
    org.update("Account", C3, Churned_On__c="2026-11-30", MRR__c=90.0)
    org.update("Account", C2, Type="Former Customer")  # leaves the filter
    org.hard_delete("Account", C4)
    org.update("Account", PROSPECT, Type="Customer", Customer_Since__c="2026-11-25")
    new_case = org.insert("Case", {"AccountId": C1, "CreatedDate": "2026-11-30T12:00:00.000+0000"})
    org.soft_delete("Case", case_id(1))
    org.hard_delete("Case", case_id(4))
    calls_before = org.api_used

    report = sync(store, org)

    assert report.stopped_early is None
    stored = customers(store)
    assert sorted(stored) == [C1, C3, PROSPECT]
    assert stored[C3].churned_on == date(2026, 11, 30) and stored[C3].mrr == Decimal("90.0")
    assert stored[PROSPECT].became_customer_on == date(2026, 11, 25)
    assert stored[PROSPECT].partner_id is None
    assert report.objects["Account:customers:left"].deleted == 1  # Beta
    assert report.objects["Account:customers:deleted"].deleted == 1  # Delta
    # Case 1 (recycle bin) through getDeleted; Case 4 (purged) went with its customer Delta,
    # read first; Beta's Case 3 went with Beta
    assert report.objects["Case:deleted"].deleted == 1
    # the new customer's Case is read with it, though the Case itself did not change
    assert tickets(store) == {case_id(2): C1, case_id(5): PROSPECT, new_case: C1}
    assert org.api_used - calls_before <= 20  # one or two calls per object, not a full pass


def test_a_full_sync_sweeps_what_the_org_no_longer_shows(org: FakeOrg, store: Store) -> None:
    sync(store, org, full=True)
    org.tick(minutes=5)
    org.hidden.update({case_id(3), C4})  # a sharing change: out of sight, never deleted

    with pytest.raises(DeletionRefused) as refused:
        sync(store, org, full=True)  # 1 of 4 customers (25%) and 1 of 4 tickets: over 20%
    assert "1 of the 4 stored customers" in str(refused.value)
    assert len(customers(store)) == 4

    report = sync(store, org, full=True, accept_deletes=True)
    assert report.objects["Account:customers"].deleted == 1
    assert report.objects["Case"].deleted == 1
    assert sorted(customers(store)) == [C1, C2, C3]
    assert sorted(tickets(store)) == [case_id(1), case_id(2), case_id(4)]


def test_an_unknown_customer_field_is_named_and_nothing_is_synced(
    org: FakeOrg, store: Store
) -> None:
    with pytest.raises(UnknownFields) as unknown:
        sync(store, org, full=True, app=app_config(mrr="Monthly_Revenue__c"))
    assert "Account.Monthly_Revenue__c (salesforce.customers.mrr)" in str(unknown.value)
    assert store.records(Customer) == []


def test_cases_the_user_cannot_see_are_named_and_nothing_is_synced(
    org: FakeOrg, store: Store
) -> None:
    def no_case(method: str, path: str) -> tuple[int, Any] | None:
        if not path.endswith("/sobjects/Case/describe"):
            return None
        return 404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]

    org.fault = no_case
    with pytest.raises(UnknownFields) as unknown:
        sync(store, org, full=True)
    assert "Case.AccountId (salesforce.customers.tickets)" in str(unknown.value)
    assert store.records(Customer) == []


def test_customers_null_reads_no_customer_account_and_no_case(org: FakeOrg, store: Store) -> None:
    app = app_config()
    app.salesforce.customers = None
    report = sync(store, org, full=True, app=app)
    assert "Account:customers" not in report.objects and "Case" not in report.objects
    assert not [r for r in org.requests if "Case" in r]
    assert store.records(Customer) == []


def write_csv(path: Path, text: str) -> None:
    path.write_text(text.strip() + "\n", encoding="utf-8")


def test_a_secondary_folder_brings_trainings_beside_the_crm(
    org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "lms"
    folder.mkdir()
    write_csv(
        folder / "trainings.csv",
        f"""
partner_id,course,completed_on
{P1},Sales 101,2026-02-01
{P1},Sales 201,2026-05-01
{P1},Sales 301,not a date
{P2},Sales 101,2025-01-01
""",
    )
    write_csv(folder / "customers.csv", "id,became_customer_on\nc-file,2026-01-01")
    app = app_config()
    secondary = SecondaryFiles.for_crm(folder, app, syncs_customers=True)

    report = sync(store, org, full=True, app=app, secondary=secondary)

    assert report.objects["files:trainings"].new == 3
    assert (
        report.problems[-1]
        == "trainings.csv:4: completed_on 'not a date' is not a date (YYYY-MM-DD)"
    )
    assert any("customers.csv was not read" in w for w in report.warnings)
    assert "c-file" not in customers(store)  # the CRM holds customers
    assert len(store.records(TrainingCompletion)) == 3
    engine = KpiEngine(store, app.kpi_settings)
    period = parse_period("2026", date(2026, 12, 1))
    assert engine.partner(P1, period)["kpis"]["courses_completed"] == 2
    assert engine.partner(P2, period)["kpis"]["courses_completed"] == 0

    # the next sync, incremental for the CRM, reads the export whole again
    with (folder / "trainings.csv").open("a", encoding="utf-8") as export:
        export.write(f"{P2},Sales 102,2025-02-01\n{P2},Sales 103,2025-03-01\n")
    report = sync(store, org, app=app, secondary=secondary)
    assert report.objects["files:trainings"].new == 2
    assert report.objects["files:trainings"].unchanged == 3
    assert len(store.records(TrainingCompletion)) == 5


def test_an_explicit_channel_field_wins_over_the_lead_source(org: FakeOrg, store: Store) -> None:
    org.custom_fields["Opportunity"] = {"Channel__c": ("picklist", None, None)}
    base = {"IsClosed": False, "IsWon": False, "StageName": "Closed Won", "Name": "D"}
    org.insert("Opportunity", {**base, "Id": "006000000000D01AAA", "LeadSource": "Web"})
    org.insert(
        "Opportunity",
        {**base, "Id": "006000000000D02AAA", "LeadSource": "Web", "Channel__c": "Paid"},
    )
    org.insert(
        "Opportunity",
        {**base, "Id": "006000000000D03AAA", "LeadSource": "Partner", "Channel__c": "TV"},
    )
    app = app_config()
    app.salesforce.deals.channel = "Channel__c"
    report = sync(store, org, full=True, app=app)
    channels = {d.id[-6:-3]: d.channel for d in store.records(Deal)}
    assert channels == {"D01": "owned", "D02": "paid", "D03": "earned"}
    assert any("1 deal(s) have a channel value that is none" in w for w in report.warnings)


def test_a_customer_filter_value_the_picklist_lacks_is_reported(org: FakeOrg, store: Store) -> None:
    report = sync(store, org, full=True, app=app_config(filter={"Type": "Customer - Direct"}))
    assert (
        "salesforce.customers.filter: Customer - Direct is no value of Account.Type (values: "
        "Customer, Former Customer, Prospect, Partner)"
    ) in report.warnings
    assert store.records(Customer) == []
    assert not [w for w in report.warnings if "customers.partner" in w]  # it is named


def test_customers_without_a_partner_field_are_direct_and_the_report_says_so(
    org: FakeOrg, store: Store
) -> None:
    report = sync(store, org, full=True, app=app_config(partner=None))
    assert {c.partner_id for c in store.records(Customer)} == {None}
    assert any(w.startswith("salesforce.customers.partner names no field") for w in report.warnings)


def test_secondary_files_need_a_crm_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config("secondary_files: lms\n", tmp_path / "app.yaml")
    assert str(error.value).startswith(
        "app.yaml: secondary_files: only with source: salesforce or hubspot"
    )
    loaded = parse_config("source: salesforce\nsecondary_files: lms\n", tmp_path / "app.yaml")
    assert loaded.secondary_files == tmp_path / "lms"


def test_the_deletion_guard_covers_the_secondary_folder(
    org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "lms"
    folder.mkdir()
    rows = f"{P1},Sales 101,2026-02-01\n{P1},Sales 201,2026-05-01\n{P2},Sales 101,2025-01-01\n"
    write_csv(folder / "trainings.csv", "partner_id,course,completed_on\n" + rows)
    app = app_config()
    secondary = SecondaryFiles.for_crm(folder, app, syncs_customers=True)
    sync(store, org, full=True, app=app, secondary=secondary)
    write_csv(folder / "trainings.csv", "partner_id,course,completed_on")  # an export cut short
    org.update("Account", C3, MRR__c=75.0)

    with pytest.raises(DeletionRefused) as refused:
        sync(store, org, app=app, secondary=secondary)

    assert "3 of the 3 stored trainings" in str(refused.value)
    assert len(store.records(TrainingCompletion)) == 3  # the folder's part changed nothing
    assert customers(store)[C3].mrr == 75  # the CRM's pages are committed
    sync(store, org, app=app, secondary=secondary, accept_deletes=True)
    assert store.records(TrainingCompletion) == []


def test_deleting_a_customer_takes_its_tickets_of_that_source_only(store: Store) -> None:
    opened = datetime(2026, 3, 1, tzinfo=UTC)
    with store.transaction() as connection:
        store.upsert(
            connection,
            [
                Customer(id="c1", became_customer_on=date(2026, 1, 1)),
                Customer(id="c2", became_customer_on=date(2026, 1, 1)),
                SupportTicket(id="t1", customer_id="c1", opened_at=opened),
                SupportTicket(id="t2", customer_id="c2", opened_at=opened),
            ],
            "salesforce",
        )
        store.upsert(
            connection, [SupportTicket(id="t3", customer_id="c1", opened_at=opened)], "files"
        )
        deleted = store.delete_records(connection, Customer, "salesforce", ["c1"])
    assert deleted == 1
    assert sorted(customers(store)) == ["c2"]
    assert tickets(store) == {"t2": "c2", "t3": "c1"}  # the folder's ticket is the folder's


def test_a_customer_without_its_date_is_skipped_and_reported(org: FakeOrg, store: Store) -> None:
    org.update("Account", C3, Customer_Since__c=None)
    report = sync(store, org, full=True)
    assert f"Account:customers {C3}: Customer_Since__c is empty" in report.problems
    assert report.objects["Account:customers"].skipped == 1
    assert sorted(customers(store)) == [C1, C2, C4]


def test_a_missing_secondary_folder_is_one_sentence_after_the_crm_is_read(
    org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    app = app_config()
    secondary = SecondaryFiles.for_crm(tmp_path / "nowhere", app, syncs_customers=True)
    with pytest.raises(SourceError) as error:
        sync(store, org, full=True, app=app, secondary=secondary)
    assert str(error.value) == (
        f"{tmp_path / 'nowhere'}: no such folder; set secondary_files in app.yaml to the folder "
        "of your trainings.csv and survey_responses.csv exports."
    )
    assert len(customers(store)) == 4  # the CRM's pages are committed


def test_without_crm_customers_the_secondary_folder_brings_customers_and_tickets(
    org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "cs"
    folder.mkdir()
    write_csv(
        folder / "customers.csv",
        f"""
id,partner_id,became_customer_on,churned_on,mrr,currency
cu-1,{P1},2026-01-10,,1000,EUR
cu-2,{P1},2026-02-01,2026-06-01,500,
cu-3,{P2},2026-03-01,,lots,
""",
    )
    write_csv(
        folder / "tickets.csv",
        """
id,customer_id,opened_at
t-1,cu-1,2026-04-01T10:00:00Z
t-2,cu-1,2026-05-01T10:00:00
t-3,cu-9,2026-05-02T10:00:00Z
""",
    )
    app = app_config()
    app.salesforce.customers = None
    secondary = SecondaryFiles.for_crm(folder, app, syncs_customers=False)

    report = sync(store, org, full=True, app=app, secondary=secondary)

    assert "Account:customers" not in report.objects and "Case" not in report.objects
    assert report.objects["files:customers"].new == 2
    assert [p for p in report.problems if p.startswith("customers.csv:4: ")], report.problems
    assert set(customers(store)) == {"cu-1", "cu-2"}
    assert {t.id for t in store.records(SupportTicket)} == {"t-1", "t-2", "t-3"}
    assert any("cu-9" in w or "unknown customer" in w for w in report.warnings), report.warnings
    # P1, the year 2026 as of December 1: cu-1 stays, cu-2 came and went; 1,000 EUR at 1.08;
    # two tickets over the two customers active at some time in the year (t-3's is unknown).
    kpis = KpiEngine(store, app.kpi_settings).partner(P1, parse_period("2026", date(2026, 12, 1)))[
        "kpis"
    ]
    assert kpis["customers_active"] == 1
    assert kpis["customers_gained"] == 2
    assert kpis["customers_lost"] == 1
    assert kpis["mrr_active"] == pytest.approx(1080.0)
    assert kpis["tickets_per_customer"] == pytest.approx(1.0)


def test_a_secondary_folder_brings_goals_for_the_crms_partners(
    org: FakeOrg, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    write_csv(
        folder / "goals.csv",
        f"""
partner_id,kpi,period,target,direction
{P1},deal_count,2026,4,
,partners_joined,2026,3,
001000000000X99AAA,deal_count,2026,4,
""",
    )
    app = app_config()
    secondary = SecondaryFiles.for_crm(folder, app, syncs_customers=True)
    report = sync(store, org, full=True, app=app, secondary=secondary)
    assert report.objects["files:goals"].new == 2
    assert report.problems[-1] == (
        "goals.csv:4: partner_id '001000000000X99AAA' is not one of the partners"
    )
    goals, _ = KpiEngine(store, app.kpi_settings).goals(None, date(2026, 12, 1))
    assert [(g["partner"] and g["partner"]["id"], g["kpi"]) for g in goals] == [
        (None, "partners_joined"),
        (P1, "deal_count"),
    ]
