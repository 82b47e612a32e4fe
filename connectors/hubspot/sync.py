"""The HubSpot source: syncs a portal's partner data into the store, incrementally.

Order of a run: read the partner property's options (the configured values are checked against
them) and every other configured property (an unknown one stops the sync before anything is
written); the deal pipelines (stage labels, won/lost, and the stage order kept in the store);
then one stream per object, each page committed with its watermark:

- `companies`: changed companies; partners become records (with the emails of their associated
  contacts), and a stored partner that no longer matches the filter is deleted;
- `contacts`: changed contacts; their partner companies are read again, emails and all;
- `companies:archived`, `deals:archived`: the archived lists, whose entries archived since the
  watermark are deleted (archiving changes no `hs_lastmodifieddate` and search never shows it);
- `deals`: changed deals with their partner (through associations or a property) and their
  whole stage history (`dealstage`'s propertiesWithHistory, or with `stage_history:
  date_entered` the deals' own `hs_v2_date_entered_<stage id>` properties), which replaces the
  stored one in the same transaction;
- unless `hubspot.customers` is null: `companies:customers` (a second stream over companies,
  with its own watermark: customers, their partner through a property or an association, a
  company that is no longer a customer deleted, a new customer's older tickets read with it),
  `companies:customers:archived`, `tickets:archived` and `tickets` (each with its customer:
  the associated company that is a stored customer).

A partner's owner email comes from the owners API when `owner_id` names it. The secondary folder
(`connectors.secondary`), when app.yaml names one, is read at the end (`finish_crm_sync`).

Changes come from the search API (`connectors.hubspot.search`); a full sync (`--full`), or an
object with no watermark yet, reads the list endpoints instead and sweeps what it did not see
(survey answers are never touched). A stop for the daily allowance or an unrelenting 429 ends
the run cleanly with `report.stopped_early` set and every committed watermark kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from connectors.errors import SourceError
from connectors.guard import DeleteGuard
from connectors.hubspot.client import HubSpotApi, JsonObject
from connectors.hubspot.limiter import RateLimiter
from connectors.hubspot.mapping import (
    CompanyMapper,
    CustomerMapper,
    DealMapper,
    Pipelines,
    Unmappable,
    parse_timestamp,
    text,
)
from connectors.hubspot.search import changed_pages, windows
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
from connectors.secondary import SecondaryFiles
from kpi.models import Customer, Deal, Partner, Record, StageChange, SupportTicket
from kpi.store import KINDS, Store
from settings.app import AppConfig
from settings.secrets import Secrets

SOURCE = "hubspot"
#: The customer properties app.yaml may name, checked against the portal's.
CUSTOMER_KEYS = (
    "name",
    "became_customer_on",
    "partner_property",
    "churned_on",
    "mrr",
    "currency",
    "onboarded_on",
    "referred_by",
)


@dataclass
class DealPage(Page):
    """A page of deals with the stage history that replaces theirs."""

    history: list[StageChange] = field(default_factory=list)
    history_of: list[str] = field(default_factory=list)  # deals whose history was read


class HubSpotSource:
    name = SOURCE

    def __init__(
        self,
        app: AppConfig,
        normalizer: Normalizer,
        env: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] | None = None,  # when OAuth tokens expire (the limiter's)
        secondary: SecondaryFiles | None = None,
    ) -> None:
        self.app = app
        self.secondary = secondary
        self.settings = app.hubspot
        self.normalizer = normalizer
        self.env = Secrets().environment() if env is None else env
        self.retry = retry or RetryPolicy(attempts=8)
        self.limiter = limiter
        self.now = now
        self.clock = clock
        self.api: HubSpotApi | None = None  # the last run's client, for its figures

    def sync(
        self,
        store: Store,
        report: SyncReport,
        progress: Progress | None = None,
        accept_deletes: bool = False,
    ) -> None:
        guard = DeleteGuard(self.app.sync.max_delete_share, accept_deletes)
        budget = ApiBudget(self.settings.max_api_share)
        limiter = self.limiter or RateLimiter(
            self.settings.requests_per_10_seconds, self.settings.searches_per_second
        )
        waited_before = limiter.waited
        try:
            api = self.api = HubSpotApi(
                self.settings, self.env, budget, limiter, self.retry, self.clock
            )
            self._sync(api, store, report, progress, guard)
        except StopSync as stop:
            report.stopped_early = str(stop)
        finally:
            report.api_calls = budget.calls
            waited = limiter.waited - waited_before
            report.throttled_seconds = waited
            retried = self.api.retried if self.api else 0
            if waited >= 1 or retried:
                report.warnings.append(
                    f"HubSpot rate limits: the client-side limiter waited {waited:.1f} s over "
                    f"{budget.calls} API calls, and {retried} answer(s) were retried"
                )
        finish_crm_sync(store, report, self.normalizer, guard, self.secondary, progress)

    def _sync(
        self,
        api: HubSpotApi,
        store: Store,
        report: SyncReport,
        progress: Progress | None,
        guard: DeleteGuard,
    ) -> None:
        started_at = self.now()
        plan = _Plan(self, api, store, report, started_at)
        with store.transaction() as connection:
            store.replace_pipeline(connection, SOURCE, plan.pipelines.order)
        writer = StreamWriter(store, SOURCE, report, progress, started_at, guard)
        lookback = timedelta(minutes=self.settings.lookback_minutes)
        for stream in plan.streams():
            writer.run(stream, report.full, lookback)
        writer.sweep()
        report.warnings.extend(plan.deals.warnings())
        if report.full:
            with store.transaction() as connection:
                report.object("deals").deleted += store.delete_orphan_history(connection, SOURCE)


class _Plan:
    """The properties and streams of one run, built from app.yaml and the portal."""

    def __init__(
        self,
        source: HubSpotSource,
        api: HubSpotApi,
        store: Store,
        report: SyncReport,
        started_at: datetime,
    ) -> None:
        self.source = source
        self.api = api
        self.store = store
        self.report = report
        self.settings = source.settings
        self.started_at = started_at
        self.full = report.full
        self.lookback = timedelta(minutes=self.settings.lookback_minutes)
        zone = source.app.tz
        self.defined = {kind: api.properties(kind) for kind in ("companies", "deals")}
        self.check_properties()
        partners = self.settings.partners
        values = self.option_values(partners.property, partners.values, "hubspot.partners")
        owners = None
        if partners.owner_email is None and partners.owner_id is not None:
            owners = api.owners(self.settings.page_size)
        self.companies = CompanyMapper(self.settings, zone, values, owners)
        self.pipelines = Pipelines(api.pipelines("deals"))
        self.deals = DealMapper(self.settings, source.normalizer, zone, self.pipelines)
        self.report.warnings.extend(self.pipeline_warnings())
        self.customers: CustomerMapper | None = None
        wanted = self.settings.customers
        if wanted is not None:
            values = self.option_values(wanted.property, wanted.values, "hubspot.customers")
            self.customers = CustomerMapper(wanted, source.normalizer, zone, values)
        # An incremental sync brings a new customer's older tickets, unless the tickets stream
        # reads them all anyway (its first run)
        self.reads_new_customers_tickets = (
            not self.full
            and wanted is not None
            and wanted.tickets
            and read_watermark(store, SOURCE, "tickets") is not None
        )

    # --- the portal's schema --------------------------------------------------------------

    def option_values(self, name: str, given: Sequence[str], where: str) -> list[str]:
        """The configured values of a company property that marks partners or customers, as
        the property's option values (a label given in app.yaml is translated); values that
        are no option are kept and reported."""
        definition = self.defined["companies"].get(name)
        if definition is None:
            raise SourceError(
                f"HubSpot companies have no property {name!r}; set {where}.property in "
                f"app.yaml to the property that marks {where.rsplit('.', 1)[-1]}."
            )
        options = definition.get("options") or []
        if not options:
            return list(given)
        by_key: dict[str, str] = {}
        for option in options:
            value = str(option.get("value", ""))
            by_key[value.casefold()] = value
            by_key.setdefault(str(option.get("label", "")).casefold(), value)
        values, unknown = [], []
        for wanted in given:
            found = by_key.get(wanted.casefold())
            values.append(found or wanted)
            if found is None:
                unknown.append(wanted)
        if unknown:
            known = ", ".join(str(o.get("value")) for o in options)
            self.report.warnings.append(
                f"{where}.values: {', '.join(unknown)} is no option of the companies' "
                f"{name} property (options: {known})"
            )
        return values

    def pipeline_warnings(self) -> list[str]:
        known = {key.casefold() for p in self.pipelines.labels.items() for key in p}
        unknown = [k for k in self.settings.deals.type_by_pipeline if k.casefold() not in known]
        if not unknown:
            return []
        return [
            f"hubspot.deals.type_by_pipeline: {', '.join(unknown)} is no deal pipeline's id or "
            f"label (pipelines: {', '.join(self.pipelines.labels.values())})"
        ]

    def check_properties(self) -> None:
        """Every optional property app.yaml names must exist, before anything is written."""
        p, d = self.settings.partners, self.settings.deals
        wanted = [
            ("companies", "hubspot.partners.tier", p.tier),
            ("companies", "hubspot.partners.left_on", p.left_on),
            ("companies", "hubspot.partners.owner_email", p.owner_email),
            ("companies", "hubspot.partners.owner_id", None if p.owner_email else p.owner_id),
            ("companies", "hubspot.partners.region", p.region),
            ("deals", "hubspot.deals.partner_property", d.partner_property),
            ("deals", "hubspot.deals.channel", d.channel),
            ("deals", "hubspot.deals.registered", d.registered),
            ("deals", "hubspot.deals.registered_on", d.registered_on),
            ("deals", "hubspot.deals.csat", d.csat),
        ]
        wanted += [("deals", "hubspot.deals.type", name) for name in d.type_properties]
        c = self.settings.customers
        if c is not None:
            for key in CUSTOMER_KEYS:
                wanted.append(("companies", f"hubspot.customers.{key}", getattr(c, key)))
        missing = [
            f"{setting} ({name})"
            for object_type, setting, name in wanted
            if name and name not in self.defined[object_type]
        ]
        if missing:
            raise SourceError(
                f"HubSpot has no such property for {', '.join(missing)}; fix app.yaml."
            )

    # --- streams --------------------------------------------------------------------------

    def streams(self) -> Iterator[Stream]:
        # Archived objects first: the sweep of a full sync then counts only what nobody
        # reported deleted.
        for object_type, model in (("companies", Partner), ("deals", Deal)):
            yield Stream(
                f"{object_type}:archived",
                model,
                self._archived(object_type),
                changes_only=True,
                explicit_deletions=True,
            )
        yield Stream(
            "companies",
            Partner,
            self._pages("companies", self.companies.properties(), self._company_page),
        )
        yield Stream(
            "contacts",
            Partner,
            self._pages("contacts", ["email"], self._contact_page),
            changes_only=True,
        )
        yield Stream(
            "deals",
            Deal,
            self._pages("deals", self.deals.properties(), self._deal_page),
            after_write=self._replace_history,
        )
        if self.customers is not None:
            yield from self.customer_streams(self.customers)

    def customer_streams(self, customers: CustomerMapper) -> Iterator[Stream]:
        """Customer companies and their tickets, archived ones first as for partners."""
        tickets = customers.fields.tickets
        yield Stream(
            "companies:customers:archived",
            Customer,
            self._archived("companies"),
            changes_only=True,
            explicit_deletions=True,
        )
        if tickets:
            yield Stream(
                "tickets:archived",
                SupportTicket,
                self._archived("tickets"),
                changes_only=True,
                explicit_deletions=True,
            )
        yield Stream(
            "companies:customers",
            Customer,
            self._pages("companies", customers.properties(), self._customer_page, "customers"),
        )
        if tickets:
            yield Stream("tickets", SupportTicket, self._pages("tickets", [], self._ticket_page))

    def _pages(
        self,
        object_type: str,
        properties: Sequence[str],
        build: Callable[[list[JsonObject]], Page],
        role: str | None = None,
    ) -> Callable[[Cursor | None], Iterator[Page]]:
        """Changed objects through search from the stored watermark; with none (or in a full
        sync) every object through the list endpoint. `role` names a second stream over the
        same object (`companies:customers`), with its own watermark."""
        page_size = self.settings.page_size
        watermark = f"{object_type}:{role}" if role else object_type

        def pages(start: Cursor | None) -> Iterator[Page]:
            stored = read_watermark(self.store, SOURCE, watermark) if start is not None else None
            if stored is None:
                for rows in self.api.list_pages(object_type, properties, page_size):
                    yield build(rows)
                yield Page(cursor=Cursor(self.started_at))
                return
            for window in windows(stored, self.lookback, self.started_at):
                for rows, cursor in changed_pages(
                    self.api, object_type, properties, window, page_size
                ):
                    page = build(rows)
                    page.cursor = cursor
                    yield page

        return pages

    def _archived(self, object_type: str) -> Callable[[Cursor | None], Iterator[Page]]:
        """The archived list (not ordered by archivedAt, so read whole); entries archived
        since the watermark (less the look-back) are deleted."""

        def pages(start: Cursor | None) -> Iterator[Page]:
            since = start.modified if start else None
            for rows in self.api.list_pages(object_type, [], self.settings.page_size, True):
                ids = []
                for row in rows:
                    archived_at = parse_timestamp(row.get("archivedAt"))
                    if since is None or archived_at is None or archived_at >= since:
                        ids.append(str(row["id"]))
                yield Page(deleted_ids=ids, rows_read=len(rows))
            yield Page(cursor=Cursor(self.started_at))

        return pages

    # --- pages ----------------------------------------------------------------------------

    def _skip(self, object_type: str, row: Mapping[str, Any], error: Unmappable) -> None:
        self.report.object(object_type).skip(str(error))
        self.report.problems.append(f"{object_type} {row.get('id')}: {error}")

    def _company_page(self, rows: list[JsonObject]) -> Page:
        page = Page(rows_read=len(rows))
        partners = [row for row in rows if self.companies.is_partner(row)]
        page.records.extend(self._partners(partners))
        partner_ids = {str(row["id"]) for row in partners}
        page.deleted_ids = [str(r["id"]) for r in rows if str(r["id"]) not in partner_ids]
        return page

    def _partners(self, companies: list[JsonObject]) -> list[Record]:
        emails = self._contact_emails([str(c["id"]) for c in companies])
        records: list[Record] = []
        for company in companies:
            try:
                records.append(self.companies.partner(company, emails.get(str(company["id"]), [])))
            except Unmappable as error:
                self._skip("companies", company, error)
        return records

    def _contact_emails(self, company_ids: list[str]) -> dict[str, list[str]]:
        if not company_ids:
            return {}
        links = self.api.associations("companies", "contacts", company_ids)
        contact_ids = sorted({to for targets in links.values() for to, _ in targets})
        contacts = self.api.batch_read("contacts", contact_ids, ["email"])
        email_of = {
            str(c["id"]): e for c in contacts if (e := text(c.get("properties") or {}, "email"))
        }
        return {
            company: [email_of[to] for to, _ in targets if to in email_of]
            for company, targets in links.items()
        }

    def _customer_page(self, rows: list[JsonObject]) -> Page:
        """Customers among the companies (the others leave the store's customers); in an
        incremental sync a company new to the store's customers brings its tickets too."""
        assert self.customers is not None
        page = Page(rows_read=len(rows))
        if not rows:
            return page
        chosen = [row for row in rows if self.customers.is_customer(row)]
        partner_of = self._customer_partners(chosen)
        for company in chosen:
            try:
                page.records.append(
                    self.customers.customer(company, partner_of.get(str(company["id"])))
                )
            except Unmappable as error:
                self._skip("companies:customers", company, error)
        ids = {str(row["id"]) for row in chosen}
        page.deleted_ids = [str(r["id"]) for r in rows if str(r["id"]) not in ids]
        if self.reads_new_customers_tickets and ids:
            new = sorted(ids - self.store.stored_ids(Customer, SOURCE, ids), key=int)
            page.records.extend(self._tickets_of(new))
        return page

    def _customer_partners(self, companies: list[JsonObject]) -> dict[str, str]:
        """Each customer's partner: a property's value, the company associated through the
        configured label, or the associated company that is a stored partner (the lowest id)."""
        assert self.customers is not None
        fields = self.customers.fields
        if fields.partner_property:
            return {
                str(c["id"]): value
                for c in companies
                if (value := text(c.get("properties") or {}, fields.partner_property))
            }
        if not companies:
            return {}
        ids = [str(c["id"]) for c in companies]
        links = self.api.associations("companies", "companies", ids)
        return self._pick(links, fields.association_type_id, Partner)

    def _pick(
        self,
        links: dict[str, list[tuple[str, set[int]]]],
        label: int | None,
        model: type[Record],
    ) -> dict[str, str]:
        """For each object, its associated object through the label `label`, or (without
        one) the associated object the store holds as `model`: the lowest id when several."""
        if label is not None:
            return {
                key: min((to for to, types in targets if label in types), key=int)
                for key, targets in links.items()
                if any(label in types for _, types in targets)
            }
        candidates = {to for targets in links.values() for to, _ in targets}
        known = self.store.stored_ids(model, SOURCE, candidates)
        found: dict[str, str] = {}
        for key, targets in links.items():
            mine = [to for to, _ in targets if to in known]
            if mine:
                found[key] = min(mine, key=int)
        return found

    def _tickets_of(self, company_ids: list[str]) -> list[Record]:
        if not company_ids:
            return []
        links = self.api.associations("companies", "tickets", company_ids)
        owner = {to: company for company, targets in links.items() for to, _ in targets}
        read = self.api.batch_read("tickets", sorted(owner, key=int), ["createdate"])
        records: list[Record] = []
        for ticket in read:
            try:
                records.append(CustomerMapper.ticket(ticket, owner[str(ticket["id"])]))
            except Unmappable as error:
                self._skip("tickets", ticket, error)
        return records

    def _ticket_page(self, rows: list[JsonObject]) -> Page:
        """Tickets with the customer company they are associated with; a ticket of no
        customer is none of ours (and leaves the store if it was)."""
        page = Page(rows_read=len(rows))
        if not rows:
            return page
        links = self.api.associations("tickets", "companies", [str(r["id"]) for r in rows])
        customer_of = self._pick(links, None, Customer)
        for row in rows:
            ticket_id = str(row["id"])
            customer = customer_of.get(ticket_id)
            if customer is None:
                page.deleted_ids.append(ticket_id)
                continue
            try:
                page.records.append(CustomerMapper.ticket(row, customer))
            except Unmappable as error:
                self._skip("tickets", row, error)
        return page

    def _contact_page(self, rows: list[JsonObject]) -> Page:
        """Contacts changed: their partner companies are read again, emails and all."""
        if not rows:
            return Page()
        links = self.api.associations("contacts", "companies", [str(r["id"]) for r in rows])
        companies = {to for targets in links.values() for to, _ in targets}
        known = sorted(self.store.stored_ids(Partner, SOURCE, companies))
        read = self.api.batch_read("companies", known, self.companies.properties())
        partners = [c for c in read if self.companies.is_partner(c)]
        return Page(records=self._partners(partners), rows_read=len(rows))

    def _deal_page(self, rows: list[JsonObject]) -> Page:
        page = DealPage(rows_read=len(rows))
        if not rows:
            return page
        partner_of = self._deal_partners(rows)
        if self.deals.by_date_entered:
            with_history = rows  # the stages' entry dates came with the deals
        else:
            ids = [str(r["id"]) for r in rows]
            with_history = self.api.batch_read("deals", ids, [], ["dealstage"])
        history = {str(d["id"]): self.deals.history(d) for d in with_history}
        for row in rows:
            deal_id = str(row["id"])
            changes = history.get(deal_id, [])
            try:
                page.records.append(self.deals.deal(row, partner_of.get(deal_id), changes))
            except Unmappable as error:
                self._skip("deals", row, error)
                continue
            page.history.extend(changes)
            page.history_of.append(deal_id)
        return page

    def _deal_partners(self, rows: list[JsonObject]) -> dict[str, str]:
        """Each deal's partner company: a property's value, the company associated with the
        configured label, or the associated company that is a partner (the lowest id when
        several are)."""
        settings = self.settings.deals
        if settings.partner_property:
            return {
                str(r["id"]): value
                for r in rows
                if (value := text(r.get("properties") or {}, settings.partner_property))
            }
        links = self.api.associations("deals", "companies", [str(r["id"]) for r in rows])
        return self._pick(links, settings.association_type_id, Partner)

    def _replace_history(self, connection: Connection, page: Page) -> None:
        """The page's deals' stage history replaces what the store had for them."""
        if not isinstance(page, DealPage) or not page.history_of:
            return
        counts = self.store.upsert(connection, page.history, SOURCE)
        history_report = self.report.object("deals:stage_history")
        history_report.count(counts)
        keep = {KINDS[StageChange].key(change) for change in page.history}
        history_report.deleted += self.store.delete_stale_history(
            connection, SOURCE, page.history_of, keep
        )
        self.store.refresh_stays(connection, page.history_of)


__all__ = ["SOURCE", "HubSpotSource"]
