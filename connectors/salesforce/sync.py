"""The Salesforce source: syncs the org's partner data into the store, incrementally.

Order of a run: log in; describe and check every configured field (an unknown one stops the
sync before anything is written); the stage order (OpportunityStage.SortOrder); then one stream
per object, each page committed with its watermark: partner Accounts (with their Contacts'
emails), partners that left the filter, Contact edits (their account is read again),
Opportunities, the OpportunityHistory (stage changes), OpportunityPartner edits when deals'
partners come from a role, and hard deletions (getDeleted); then, unless
`salesforce.customers` is null, customer Accounts (those matching its filter), customers that
left the filter, and the Cases of customer accounts as support tickets. Soft deletions arrive
through queryAll with IsDeleted. The secondary folder (`connectors.secondary`), when app.yaml
names one, is read at the end. A stop before the allowance share, or REQUEST_LIMIT_EXCEEDED,
ends the run cleanly with `report.stopped_early` set and every committed watermark kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from connectors.guard import DeleteGuard
from connectors.incremental import (
    ApiBudget,
    Cursor,
    Page,
    Progress,
    RetryPolicy,
    StopSync,
    Stream,
    StreamWriter,
    finish_crm_sync,
    read_watermark,
)
from connectors.normalize import Normalizer
from connectors.report import SyncReport
from connectors.salesforce.bulk import BulkReader
from connectors.salesforce.client import SalesforceApi
from connectors.salesforce.describe import OrgSchema, check_fields
from connectors.salesforce.mapping import (
    CustomerMapper,
    DealMapper,
    PartnerMapper,
    Unmappable,
    collapse_history,
    parse_datetime,
)
from connectors.salesforce.soql import Query, all_of, equals
from connectors.salesforce.streams import IDS_PER_QUERY, modstamp_pages, query_pages, rows_by_id
from connectors.secondary import SecondaryFiles
from kpi.models import Customer, Deal, Partner, Record, StageChange, SupportTicket
from kpi.store import Store
from settings.app import AppConfig
from settings.secrets import Secrets

SOURCE = "salesforce"
DELETED_HISTORY = timedelta(days=29)  # getDeleted answers for the last 30 days only
HISTORY = Query("OpportunityHistory", ["OpportunityId", "StageName", "CreatedDate"])


class SalesforceSource:
    name = SOURCE

    def __init__(
        self,
        app: AppConfig,
        normalizer: Normalizer,
        env: Mapping[str, str] | None = None,
        http: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        secondary: SecondaryFiles | None = None,
    ) -> None:
        self.app = app
        self.secondary = secondary
        self.settings = app.salesforce
        self.normalizer = normalizer
        self.env = Secrets().environment() if env is None else env
        self.http = http
        self.retry = retry
        self.now = now
        self.api: SalesforceApi | None = None  # the last run's client, for its figures

    def sync(
        self,
        store: Store,
        report: SyncReport,
        progress: Progress | None = None,
        accept_deletes: bool = False,
    ) -> None:
        guard = DeleteGuard(self.app.sync.max_delete_share, accept_deletes)
        budget = ApiBudget(self.settings.max_api_share)
        api = self.api = SalesforceApi(self.settings, budget, self.retry, self.env, self.http)
        try:
            self._sync(api, store, report, progress, guard)
        except StopSync as stop:
            report.stopped_early = str(stop)
        finally:
            report.api_calls = budget.calls
        finish_crm_sync(store, report, self.normalizer, guard, self.secondary, progress)

    def _sync(
        self,
        api: SalesforceApi,
        store: Store,
        report: SyncReport,
        progress: Progress | None,
        guard: DeleteGuard,
    ) -> None:
        started_at = self.now()
        api.connect()
        org = OrgSchema(api)
        check_fields(org, self.settings)
        plan = _Plan(self, api, org, store, report)
        report.warnings.extend(plan.picklist_warnings())
        with store.transaction() as connection:
            store.replace_pipeline(connection, SOURCE, plan.stage_order())
        writer = StreamWriter(store, SOURCE, report, progress, started_at, guard)
        lookback = timedelta(minutes=self.settings.lookback_minutes)
        for stream in plan.streams():
            writer.run(stream, report.full, lookback)
        writer.sweep()


class _Plan:
    """The queries and streams of one run, built from app.yaml and the org's describe."""

    def __init__(
        self,
        source: SalesforceSource,
        api: SalesforceApi,
        org: OrgSchema,
        store: Store,
        report: SyncReport,
    ) -> None:
        self.source = source
        self.api = api
        self.org = org
        self.store = store
        self.report = report
        self.settings = source.settings
        zone = source.app.tz
        has_currency = org.find("Opportunity", "CurrencyIsoCode") is not None
        self.partners = PartnerMapper(self.settings, zone)
        self.deals = DealMapper(self.settings, source.normalizer, zone, has_currency)
        self.customers = (
            None
            if self.settings.customers is None
            else CustomerMapper(
                self.settings.customers,
                source.normalizer,
                zone,
                org.find("Account", "CurrencyIsoCode") is not None,
            )
        )
        self.full = report.full
        sleep = source.retry.sleep if source.retry else RetryPolicy().sleep
        self.bulk = BulkReader(api, self.settings.bulk_threshold, report, self._type, sleep)
        # An incremental sync brings a new customer's older Cases, unless the Case stream
        # reads them all anyway (its first run)
        self.reads_new_customers_cases = (
            not self.full
            and self.settings.customers is not None
            and self.settings.customers.tickets
            and read_watermark(store, SOURCE, "Case") is not None
        )

    # --- queries --------------------------------------------------------------------------

    def partner_filter(self) -> str:
        return all_of(equals(name, value) for name, value in self.settings.partners.filter.items())

    def account_query(self) -> Query:
        contacts = Query("Contacts", ["Email"], ["Email != null"])
        fields = ["IsDeleted", *self.partners.select()]
        return Query("Account", fields, [self.partner_filter()], children=[contacts])

    def customer_filter(self) -> str:
        assert self.settings.customers is not None
        return all_of(equals(name, v) for name, v in self.settings.customers.filter.items())

    def customer_query(self) -> Query:
        assert self.customers is not None
        fields = ["IsDeleted", *self.customers.select()]
        return Query("Account", fields, [self.customer_filter()])

    def case_query(self) -> Query:
        """Cases of customer accounts: the filter's fields through the Case's Account lookup."""
        assert self.settings.customers is not None
        through = all_of(
            equals(f"Account.{name}", value)
            for name, value in self.settings.customers.filter.items()
        )
        return Query("Case", ["IsDeleted", "AccountId", "CreatedDate"], [through])

    def opportunity_query(self) -> Query:
        children = []
        role = self.settings.deals.partner_role
        if role is not None:
            links = Query(
                "OpportunityPartnersFrom",
                ["AccountToId"],
                [equals("Role", role)],
                ["IsPrimary DESC", "CreatedDate"],
            )
            children.append(links)
        return Query("Opportunity", ["IsDeleted", *self.deals.select()], children=children)

    # --- describe -------------------------------------------------------------------------

    def stage_order(self) -> list[str]:
        name = "ApiName" if self.org.find("OpportunityStage", "ApiName") else "MasterLabel"
        query = Query("OpportunityStage", [name], order_by=["SortOrder"])
        return [str(row[name]) for rows in self.api.query_pages(query.text()) for row in rows]

    def picklist_warnings(self) -> list[str]:
        warnings = self.customer_filter_warnings()
        deals = self.settings.deals
        if deals.type:
            unmapped = [
                v
                for v in self.org.picklist("Opportunity", deals.type)
                if not self.deals.deal_type(v)
            ]
            if unmapped:
                warnings.append(
                    f"Opportunity {deals.type} value(s) {', '.join(unmapped)} map to no deal "
                    "type; add them to salesforce.deals.type_map"
                )
        if deals.lead_source:
            channels = self.source.app.lead_source_channels
            unmapped = [
                v
                for v in self.org.picklist("Opportunity", deals.lead_source)
                if " ".join(v.split()).casefold() not in channels
            ]
            if unmapped:
                warnings.append(
                    f"lead source(s) {', '.join(unmapped)} map to no channel and count as "
                    "other; add them to channel_map"
                )
        return warnings

    def customer_filter_warnings(self) -> list[str]:
        """A customer mapping without a partner field, and filter values that are no value of
        their picklist: such a filter matches no account (the default `Type = 'Customer'` on an
        org whose types are `Customer - Direct`...)."""
        customers = self.settings.customers
        warnings = []
        if customers is not None and customers.partner is None:
            warnings.append(
                "salesforce.customers.partner names no field, so every customer counts as "
                "direct and no partner has customer KPIs; name the Account lookup to the "
                "partner (e.g. Sourcing_Partner__c), or set customers: null"
            )
        for name, wanted in (customers.filter if customers else {}).items():
            options = self.org.picklist("Account", name)
            given = [wanted] if isinstance(wanted, str) else wanted
            if not options or not isinstance(given, list):
                continue
            known = {o.casefold() for o in options}
            missing = [v for v in given if v.casefold() not in known]
            if missing:
                warnings.append(
                    f"salesforce.customers.filter: {', '.join(missing)} is no value of "
                    f"Account.{name} (values: {', '.join(options)})"
                )
        return warnings

    # --- streams --------------------------------------------------------------------------

    def streams(self) -> Iterator[Stream]:
        # Deletions first: the sweep of a full sync then counts only what nobody reported
        # deleted, and a record restored from the recycle bin is read again after its deletion.
        for sobject, model in (("Account", Partner), ("Opportunity", Deal)):
            yield Stream(
                f"{sobject}:deleted",
                model,
                self._deleted_pages(sobject),
                changes_only=True,
                explicit_deletions=True,
            )
        yield Stream("Account", Partner, self._pages(self.account_query(), self._partner_page))
        left = Query("Account", [], [f"NOT ({self.partner_filter()})"])
        yield Stream(
            "Account:left", Partner, self._pages(left, _gone_page, False), changes_only=True
        )
        contacts = Query("Contact", ["AccountId"])
        yield Stream(
            "Contact", Partner, self._pages(contacts, self._contact_page), changes_only=True
        )
        # The deals before their history: a stage change then takes its partner key from its
        # stored deal, where a deal written after its history rewrites the key in every index
        # that holds it (a third of a large full sync's time).
        deals = self._pages(self.opportunity_query(), self._deal_page, True, self._deal_values_page)
        yield Stream("Opportunity", Deal, deals)
        yield Stream(
            "OpportunityHistory",
            StageChange,
            self._pages(HISTORY, self._history_page, False),
            after_write=self._refresh_stays,
            before_write=self._collapse_history,
            reads_by=("ix_stage_changes_deal",),  # the stored history, the stays: by deal
        )
        if self.settings.deals.partner_role is not None:
            links = Query("OpportunityPartner", ["OpportunityId"])
            yield Stream(
                "OpportunityPartner",
                Deal,
                self._pages(links, self._opportunity_partner_page),
                changes_only=True,
            )
        if self.customers is not None:
            yield from self.customer_streams()

    def customer_streams(self) -> Iterator[Stream]:
        """Customer Accounts and their Cases, deletions first as for partners and deals."""
        assert self.settings.customers is not None
        tickets = self.settings.customers.tickets
        deleted: list[tuple[str, str, type[Record]]] = [
            ("Account", "Account:customers:deleted", Customer)
        ]
        if tickets:
            deleted.append(("Case", "Case:deleted", SupportTicket))
        for sobject, name, model in deleted:
            yield Stream(
                name,
                model,
                self._deleted_pages(sobject),
                changes_only=True,
                explicit_deletions=True,
            )
        yield Stream(
            "Account:customers",
            Customer,
            self._pages(self.customer_query(), self._customer_page),
        )
        left = Query("Account", [], [f"NOT ({self.customer_filter()})"])
        yield Stream(
            "Account:customers:left",
            Customer,
            self._pages(left, _gone_page, False),
            changes_only=True,
        )
        if tickets:
            yield Stream("Case", SupportTicket, self._pages(self.case_query(), self._case_page))

    def _pages(
        self,
        query: Query,
        build: Callable[[list[dict[str, Any]]], Page],
        include_deleted: bool = True,
        bulk_build: Callable[[list[dict[str, Any]]], Page] | None = None,
    ) -> Callable[[Cursor | None], Iterator[Page]]:
        """Pages of `query` from a cursor; a full sync reads only live rows (query, not
        queryAll), since what it does not see is swept afterwards anyway. Bulk API 2.0's
        pages are built by `bulk_build` where given (stored columns, not models: the REST
        path's `build` stays the reference a test holds them to)."""

        def pages(start: Cursor | None) -> Iterator[Page]:
            deleted_too = include_deleted and not self.full

            def rest() -> Iterator[Page]:
                now = self.source.now
                return modstamp_pages(self.api, query, start, build, deleted_too, now)

            if self.full and start is None:
                return self.bulk.pages(query, bulk_build or build, deleted_too, rest)
            return rest()

        return pages

    def _type(self, sobject: str, path: str) -> str | None:
        found = self.org.find(sobject, path)
        return str(found["type"]) if found else None

    def _deleted_pages(self, sobject: str) -> Callable[[Cursor | None], Iterator[Page]]:
        def pages(start: Cursor | None) -> Iterator[Page]:
            end = self.source.now()
            earliest = end - DELETED_HISTORY
            begin = start.modified if start else earliest
            if begin < earliest:
                self.report.warnings.append(
                    f"{sobject} deletions older than 30 days cannot be read; run a full sync "
                    "to drop them"
                )
                begin = earliest
            result = self.api.deleted(sobject, begin, end)
            ids = [str(r["id"]) for r in result.get("deletedRecords", [])]
            covered = parse_datetime(result.get("latestDateCovered")) or end
            yield Page(deleted_ids=ids, cursor=Cursor(covered), rows_read=len(ids))

        return pages

    # --- pages ----------------------------------------------------------------------------

    def _skip(self, sobject: str, row: dict[str, Any], error: Unmappable) -> None:
        self.report.object(sobject).skip(str(error))
        self.report.problems.append(f"{sobject} {row.get('Id')}: {error}")

    def _mapped_page(
        self,
        sobject: str,
        rows: list[dict[str, Any]],
        build: Callable[[Any], Record | dict[str, Any]],
    ) -> Page:
        """A page of records built row by row (a record, or its stored columns): a deleted
        row's id is deleted, a row that cannot become a record is skipped and reported."""
        page = Page(rows_read=len(rows))
        for row in rows:
            if row.get("IsDeleted"):
                page.deleted_ids.append(str(row["Id"]))
                continue
            try:
                made = build(row)
            except Unmappable as error:
                self._skip(sobject, row, error)
                continue
            if isinstance(made, dict):
                page.values.append(made)
            else:
                page.records.append(made)
        return page

    def _partner_page(self, rows: list[dict[str, Any]]) -> Page:
        return self._mapped_page("Account", rows, self.partners.partner)

    def _deal_page(self, rows: list[dict[str, Any]]) -> Page:
        entered = self._stage_entry
        return self._mapped_page("Opportunity", rows, lambda row: self.deals.deal(row, entered))

    def _deal_values_page(self, rows: list[dict[str, Any]]) -> Page:
        """`_deal_page` for Bulk's rows: each deal's stored columns made without the model,
        which is built only for a row they cannot take (so it says why)."""
        entered = self._stage_entry
        return self._mapped_page(
            "Opportunity", rows, lambda row: self.deals.values_or_deal(row, entered)
        )

    def _stage_entry(self, deal_id: str, stage: str) -> datetime | None:
        """When a closed deal without CloseDate last entered `stage`: by its history in the
        org, with what the store holds, as the history stream would store it (the deals are
        read before it). Salesforce requires CloseDate, so this is hardly ever asked."""
        query = HISTORY.having(equals("OpportunityId", deal_id))
        read = [change for rows in query_pages(self.api, query) for change in _changes(rows)]
        kept, _ = collapse_history(self.store.stage_history([deal_id]), read)
        return max((c.entered_at for c in kept if c.stage == stage), default=None)

    def _customer_page(self, rows: list[dict[str, Any]]) -> Page:
        """Customers; in an incremental sync, an account new to the store brings its Cases
        too (they were not read while it was no customer, and need not change now)."""
        assert self.customers is not None and self.settings.customers is not None
        page = self._mapped_page("Account:customers", rows, self.customers.customer)
        if self.reads_new_customers_cases and page.records:
            ids = {str(r["Id"]) for r in rows if not r.get("IsDeleted")}
            new = sorted(ids - self.store.stored_ids(Customer, SOURCE, ids))
            page.records.extend(self._cases_of(new))
        return page

    def _cases_of(self, account_ids: list[str]) -> list[Record]:
        found: list[Record] = []
        query = Query("Case", ["Id", "AccountId", "CreatedDate"])
        for start in range(0, len(account_ids), IDS_PER_QUERY):
            batch = account_ids[start : start + IDS_PER_QUERY]
            for rows in query_pages(self.api, query.having(equals("AccountId", batch))):
                found.extend(self._case_page(rows).records)
        return found

    def _case_page(self, rows: list[dict[str, Any]]) -> Page:
        return self._mapped_page("Case", rows, CustomerMapper.ticket)

    def _contact_page(self, rows: list[dict[str, Any]]) -> Page:
        """Contacts changed: their partner accounts are read again, emails and all."""
        accounts = {str(r["AccountId"]) for r in rows if r.get("AccountId")}
        known = sorted(self.store.stored_ids(Partner, SOURCE, accounts))
        reread = self._reread(self.account_query(), known, self._partner_page)
        return Page(records=reread.records, rows_read=len(rows))

    def _opportunity_partner_page(self, rows: list[dict[str, Any]]) -> Page:
        """OpportunityPartner rows changed: their opportunities are read again."""
        ids = sorted({str(r["OpportunityId"]) for r in rows if r.get("OpportunityId")})
        reread = self._reread(self.opportunity_query(), ids, self._deal_page)
        return Page(records=reread.records, rows_read=len(rows))

    def _reread(
        self, query: Query, ids: list[str], build: Callable[[list[dict[str, Any]]], Page]
    ) -> Page:
        merged = Page()
        for rows in rows_by_id(self.api, query, ids):
            merged.records.extend(build(rows).records)
        return merged

    def _history_page(self, rows: list[dict[str, Any]]) -> Page:
        """The rows' stage changes as read; `_collapse_history` settles them when written."""
        records: list[Record] = list(_changes(rows))
        return Page(records=records, rows_read=len(rows))

    def _collapse_history(self, connection: Any, page: Page) -> None:
        """A page's stage changes merged with their deals' stored ones, read in the page's
        transaction (so with the earlier pages of a Bulk result written with it): the rows
        that change no stage are dropped, stored ones deleted."""
        read = [change for change in page.records if isinstance(change, StageChange)]
        stored = self.store.stage_history({change.deal_id for change in read}, connection)
        kept, dropped = collapse_history(stored, read)
        page.records = list(kept)
        page.deleted_ids = sorted(dropped)

    def _refresh_stays(self, connection: Any, page: Page) -> None:
        deal_ids = sorted({r.deal_id for r in page.records if isinstance(r, StageChange)})
        if deal_ids:
            self.store.refresh_stays(connection, deal_ids)


def _changes(rows: list[dict[str, Any]]) -> list[StageChange]:
    """OpportunityHistory rows as stage changes (a row without its deal, stage or moment is
    none)."""
    read = []
    for row in rows:
        entered_at = parse_datetime(row.get("CreatedDate"))
        if row.get("OpportunityId") and row.get("StageName") and entered_at:
            read.append(
                StageChange(
                    deal_id=str(row["OpportunityId"]),
                    stage=str(row["StageName"]),
                    entered_at=entered_at,
                )
            )
    return read


def _gone_page(rows: list[dict[str, Any]]) -> Page:
    return Page(deleted_ids=[str(r["Id"]) for r in rows], rows_read=len(rows))


__all__ = ["SOURCE", "SalesforceSource"]
