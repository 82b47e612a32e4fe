"""HubSpot objects → the normalized records of kpi-spec.md section 1, property by property as
app.yaml's `hubspot.partners` and `hubspot.deals` say.

Choices where HubSpot is ambiguous: a deal's status comes from its stage's metadata in the
pipelines API (`isClosed` false: open; closed with `probability` 1: won; other closed: lost); a
stage id missing from the pipelines (deleted since) counts as open under its raw id. `closedate`
is the close date of a closed deal and the expected close date of an open one; a closed deal
without it takes the moment it entered its current stage (from its `dealstage` history), else it
is skipped and reported. Stages are stored by label, the name people read. Timestamps become
dates in the deployment's timezone; HubSpot date properties (`2026-01-05`) are taken as they are.
A deal without `deal_currency_code` is in the deployment's currency. A registration property
counts as registered when it is `true` (checkbox) or any other non-empty value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from connectors.normalize import (
    Normalizer,
    customer_record,
    validation_reason,
)
from kpi.models import Customer, Deal, DealStatus, DealType, Partner, StageChange, SupportTicket
from settings.crm import HubSpotConfig, HubSpotCustomerProperties

JsonObject = dict[str, Any]
#: The prefix of the properties holding when a deal last entered each stage.
DATE_ENTERED = "hs_v2_date_entered_"


class Unmappable(ValueError):
    """An object that cannot become a record; the message is the reason, for the report."""


# --- values -----------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime | None:
    """HubSpot's `2026-01-05T09:30:00.000Z` (or epoch milliseconds) as an aware datetime."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_date(value: Any, zone: tzinfo) -> date | None:
    """A date property as is; a datetime property as its calendar date in `zone`."""
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    moment = parse_timestamp(text)
    return moment.astimezone(zone).date() if moment else None


def epoch_ms(moment: datetime) -> str:
    """A timestamp as the epoch milliseconds HubSpot's search filters take."""
    return str(int(moment.timestamp() * 1000))


def text(properties: Mapping[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = properties.get(name)
    return None if value is None or value == "" else str(value)


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


# --- pipelines --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    status: DealStatus


class Pipelines:
    """The deal pipelines of the portal: stage ids → labels and won/lost/open, and the order
    of every stage (pipelines by displayOrder, then their stages by displayOrder)."""

    def __init__(self, results: Iterable[Mapping[str, Any]]) -> None:
        self.stages: dict[str, Stage] = {}
        self.order: list[str] = []
        self.labels: dict[str, str] = {}  # pipeline id -> label
        live = [p for p in results if not p.get("archived")]
        for pipeline in sorted(live, key=_display_order):
            self.labels[str(pipeline["id"])] = str(pipeline.get("label") or pipeline["id"])
            stages = [s for s in pipeline.get("stages", []) if not s.get("archived")]
            for stage in sorted(stages, key=_display_order):
                label = str(stage.get("label") or stage["id"])
                self.stages[str(stage["id"])] = Stage(
                    str(stage["id"]), label, _stage_status(stage.get("metadata") or {})
                )
                self.order.append(label)

    def date_entered_properties(self) -> dict[str, str]:
        """`hs_v2_date_entered_<stage id>` of every stage, with the stage's label."""
        return {f"{DATE_ENTERED}{stage.id}": stage.label for stage in self.stages.values()}

    def label(self, stage_id: str) -> str:
        stage = self.stages.get(stage_id)
        return stage.label if stage else stage_id

    def status(self, stage_id: str | None) -> DealStatus:
        stage = self.stages.get(stage_id or "")
        return stage.status if stage else DealStatus.OPEN


def _display_order(item: Mapping[str, Any]) -> tuple[int, str]:
    return int(item.get("displayOrder") or 0), str(item.get("id"))


def _stage_status(metadata: Mapping[str, Any]) -> DealStatus:
    if str(metadata.get("isClosed", "false")).lower() != "true":
        return DealStatus.OPEN
    probability = decimal(metadata.get("probability"))
    return DealStatus.WON if probability is not None and probability >= 1 else DealStatus.LOST


# --- companies --------------------------------------------------------------------------


def holds_one_of(company: Mapping[str, Any], name: str, values: set[str]) -> bool:
    """The property holds one of `values` (casefolded option values); a multiple-checkbox
    property holds several values separated by semicolons."""
    value = text(company.get("properties") or {}, name) or ""
    return any(part.strip().casefold() in values for part in value.split(";"))


class CompanyMapper:
    def __init__(
        self,
        settings: HubSpotConfig,
        zone: tzinfo,
        values: Sequence[str],
        owners: Mapping[str, str] | None = None,
    ) -> None:
        self.fields = settings.partners
        self.zone = zone
        self.values = {v.casefold() for v in values}  # option values that mark a partner
        self.owners = owners or {}  # owner id -> email, when owner_id names the owner

    def properties(self) -> list[str]:
        f = self.fields
        owner = f.owner_email or f.owner_id
        wanted = [f.property, f.name, f.joined_on, f.tier, f.left_on, owner, f.region]
        return list(dict.fromkeys(["hs_lastmodifieddate", *[p for p in wanted if p]]))

    def is_partner(self, company: Mapping[str, Any]) -> bool:
        return holds_one_of(company, self.fields.property, self.values)

    def owner_email(self, props: Mapping[str, Any]) -> str | None:
        if self.fields.owner_email:
            return text(props, self.fields.owner_email)
        owner = text(props, self.fields.owner_id)
        return self.owners.get(owner) if owner else None

    def partner(self, company: Mapping[str, Any], emails: Iterable[str]) -> Partner:
        f = self.fields
        props = company.get("properties") or {}
        joined_on = to_date(props.get(f.joined_on), self.zone)
        if joined_on is None:
            raise Unmappable(f"{f.joined_on} is empty")
        try:
            return Partner(
                id=str(company["id"]),
                name=text(props, f.name) or "",
                tier=text(props, f.tier),
                joined_on=joined_on,
                left_on=to_date(props.get(f.left_on), self.zone) if f.left_on else None,
                owner_email=self.owner_email(props),
                contact_emails=tuple(sorted({e.strip() for e in emails if e.strip()})),
                region=text(props, f.region),
            )
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None


# --- customers and tickets --------------------------------------------------------------


class CustomerMapper:
    """Customer companies → Customers (kpi-spec.md section 7); tickets → SupportTickets."""

    def __init__(
        self,
        fields: HubSpotCustomerProperties,
        normalizer: Normalizer,
        zone: tzinfo,
        values: Sequence[str],
    ) -> None:
        self.fields = fields
        self.normalizer = normalizer
        self.zone = zone
        self.values = {v.casefold() for v in values}  # option values that mark a customer

    def properties(self) -> list[str]:
        f = self.fields
        wanted = [f.property, f.name, f.became_customer_on, f.partner_property, f.churned_on]
        wanted += [f.mrr, f.currency, f.onboarded_on, f.referred_by]
        return list(dict.fromkeys(["hs_lastmodifieddate", *[p for p in wanted if p]]))

    def is_customer(self, company: Mapping[str, Any]) -> bool:
        return holds_one_of(company, self.fields.property, self.values)

    def customer(self, company: Mapping[str, Any], partner_id: str | None) -> Customer:
        f = self.fields
        props = company.get("properties") or {}
        became = to_date(props.get(f.became_customer_on), self.zone)
        if became is None:
            raise Unmappable(f"{f.became_customer_on} is empty")
        try:
            return customer_record(
                self.normalizer,
                decimal(props.get(f.mrr)) if f.mrr else None,
                text(props, f.currency),
                id=str(company["id"]),
                partner_id=partner_id,
                name=text(props, f.name) or "",
                became_customer_on=became,
                churned_on=self._date(props, f.churned_on),
                onboarded_on=self._date(props, f.onboarded_on),
                referred_by=text(props, f.referred_by),
            )
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None

    def _date(self, props: Mapping[str, Any], name: str | None) -> date | None:
        return to_date(props.get(name), self.zone) if name else None

    @staticmethod
    def ticket(ticket: Mapping[str, Any], customer_id: str) -> SupportTicket:
        props = ticket.get("properties") or {}
        opened_at = parse_timestamp(props.get("createdate")) or parse_timestamp(
            ticket.get("createdAt")
        )
        if opened_at is None:
            raise Unmappable("createdate is empty")
        return SupportTicket(id=str(ticket["id"]), customer_id=customer_id, opened_at=opened_at)


# --- deals ------------------------------------------------------------------------------


class DealMapper:
    def __init__(
        self,
        settings: HubSpotConfig,
        normalizer: Normalizer,
        zone: tzinfo,
        pipelines: Pipelines,
    ) -> None:
        self.fields = settings.deals
        self.types = self.fields.types
        self.ambiguous = self.fields.ambiguous_types
        self.by_pipeline = _types_by_pipeline(self.fields.type_by_pipeline, pipelines)
        self.undecided = 0  # deals typed only by an ambiguous value (counted, then reported)
        self.normalizer = normalizer
        self.zone = zone
        self.pipelines = pipelines
        self.by_date_entered = settings.stage_history == "date_entered"
        self.entered = pipelines.date_entered_properties() if self.by_date_entered else {}

    def properties(self) -> list[str]:
        """The deal properties to read (with date_entered, every stage's entry date last)."""
        f = self.fields
        fixed = ["dealstage", "pipeline", "closedate", "createdate", "hs_lastmodifieddate"]
        optional = [
            f.name,
            f.amount,
            f.currency,
            *f.type_properties,
            f.lead_source,
            f.channel,
            f.registered,
            f.registered_on,
            f.csat,
            f.partner_property,
        ]
        return list(dict.fromkeys([*fixed, *[p for p in optional if p], *self.entered]))

    def history(self, deal: Mapping[str, Any]) -> list[StageChange]:
        """The deal's stage changes, oldest first, a repeat of the stage before it dropped:
        from its `dealstage` history (propertiesWithHistory), or with date_entered one per
        non-empty `hs_v2_date_entered_<stage id>` property."""
        dated = []
        if self.by_date_entered:
            props = deal.get("properties") or {}
            for name, label in self.entered.items():
                moment = parse_timestamp(props.get(name))
                if moment is not None:
                    dated.append((moment, label))
        else:
            entries = (deal.get("propertiesWithHistory") or {}).get("dealstage") or []
            for entry in entries:
                moment = parse_timestamp(entry.get("timestamp"))
                if moment is not None and entry.get("value"):
                    dated.append((moment, self.pipelines.label(str(entry["value"]))))
        deal_id = str(deal["id"])
        changes: list[StageChange] = []
        for moment, label in sorted(dated):
            if changes and changes[-1].stage == label:
                continue
            changes.append(StageChange(deal_id=deal_id, stage=label, entered_at=moment))
        return changes

    def deal(
        self, deal: Mapping[str, Any], partner_id: str | None, history: Sequence[StageChange]
    ) -> Deal:
        f = self.fields
        props = deal.get("properties") or {}
        stage_id = text(props, "dealstage")
        stage = self.pipelines.label(stage_id) if stage_id else None
        status = self.pipelines.status(stage_id)
        created_on = to_date(props.get("createdate"), self.zone)
        if created_on is None:
            raise Unmappable("createdate is empty")
        close_date = to_date(props.get("closedate"), self.zone)
        closed_on = None
        if status is not DealStatus.OPEN:
            closed_on = close_date
            if closed_on is None:
                entered = [c.entered_at for c in history if c.stage == stage]
                closed_on = max(entered).astimezone(self.zone).date() if entered else None
            if closed_on is None:
                raise Unmappable("closed without a closedate or closed-stage history")
        original = decimal(props.get(f.amount))
        currency = text(props, f.currency)
        lead_source = text(props, f.lead_source)
        try:
            record = Deal(
                id=str(deal["id"]),
                partner_id=partner_id,
                name=text(props, f.name) or "",
                original_amount=original,
                currency=currency.upper() if currency else None,
                stage=stage,
                status=status,
                created_on=created_on,
                closed_on=closed_on,
                expected_close_on=close_date if status is DealStatus.OPEN else None,
                type=self.deal_type_of(props),
                lead_source=lead_source,
                channel=self.normalizer.channel(
                    lead_source, self.normalizer.explicit_channel(text(props, f.channel))
                ),
                registered=_registered(text(props, f.registered)),
                registered_on=to_date(props.get(f.registered_on), self.zone)
                if f.registered_on
                else None,
                csat=_csat(props.get(f.csat) if f.csat else None),
            )
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None
        return record.model_copy(update={"amount": self.normalizer.amount(original, currency)})

    def deal_type(self, value: str | None) -> DealType | None:
        if value is None:
            return None
        return self.types.get(" ".join(value.split()).casefold())

    def deal_type_of(self, props: Mapping[str, Any]) -> DealType | None:
        """The first type property whose value maps to a type, unless that value cannot tell
        renewals from upsells (built-in `existingbusiness`); then the pipeline's type; then
        the ambiguous value's default, counted in `undecided` for the report."""
        fallback = None
        for name in self.fields.type_properties:
            value = text(props, name)
            kind = self.deal_type(value)
            if kind is None or value is None:
                continue
            if " ".join(value.split()).casefold() not in self.ambiguous:
                return kind
            fallback = fallback or kind
        pipeline = text(props, "pipeline")
        kind = self.by_pipeline.get(pipeline) if pipeline else None
        if kind is not None:
            return kind
        if fallback is not None:
            self.undecided += 1
        return fallback

    def warnings(self) -> list[str]:
        if not self.undecided:
            return []
        return [
            f"{self.undecided} deal(s) have dealtype existingbusiness, which does not tell "
            "renewals from upsells; they count as upsell: name another property first in "
            "hubspot.deals.type, map their pipeline in hubspot.deals.type_by_pipeline, or map "
            "existingbusiness in hubspot.deals.type_map"
        ]


def _types_by_pipeline(given: Mapping[str, DealType], pipelines: Pipelines) -> dict[str, DealType]:
    """type_by_pipeline by pipeline id; a key may be a pipeline's id or label (any case)."""
    ids = {key.casefold(): pid for pid, label in pipelines.labels.items() for key in (pid, label)}
    return {ids.get(key.casefold(), key): kind for key, kind in given.items()}


def _registered(value: str | None) -> bool:
    if value is None:
        return False
    return value.strip().casefold() not in ("false", "no", "0")


def _csat(value: Any) -> int | None:
    number = decimal(value)
    if number is None or number != number.to_integral_value() or not 1 <= number <= 5:
        return None
    return int(number)
