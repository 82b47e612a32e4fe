"""Salesforce rows → the normalized records of kpi-spec.md section 1, field by field as
app.yaml's `salesforce.partners` and `salesforce.deals` say.

Choices where Salesforce is ambiguous: a deal is won when `IsWon`, lost when `IsClosed` and not
won, else open; `CloseDate` is the close date of a closed deal and the expected close date of an
open one; a closed deal without `CloseDate` takes the moment it entered its current stage (from
the stage history), else it is skipped and reported. Timestamps become dates in the deployment's
timezone. Without `CurrencyIsoCode` (a single-currency org) amounts are taken as being in the
deployment's currency. A registration field that is not a checkbox counts as registered when set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
from kpi.models import (
    Customer,
    Deal,
    DealStatus,
    DealType,
    Partner,
    StageChange,
    SupportTicket,
)
from kpi.store import KINDS
from settings.crm import SalesforceConfig, SalesforceCustomerFields

#: Finds when a deal entered a stage: (deal id, stage) → timestamp or None.
StageEntry = Callable[[str, str], datetime | None]


class Unmappable(ValueError):
    """A row that cannot become a record; the message is the reason, for the report."""


def value_at(row: Mapping[str, Any], path: str) -> Any:
    """The value at a field or relationship path (`Owner.Email`); None past an empty lookup."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def parse_datetime(value: Any) -> datetime | None:
    """Salesforce's `2026-01-05T09:30:00.000+0000` as an aware datetime."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_date(value: Any, zone: tzinfo) -> date | None:
    """A Date field as is; a DateTime field as its calendar date in `zone`."""
    if not value:
        return None
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = parse_datetime(text)
    return moment.astimezone(zone).date() if moment else None


def text_at(row: Mapping[str, Any], path: str | None) -> str | None:
    if path is None:
        return None
    value = value_at(row, path)
    return None if value is None or value == "" else str(value)


class PartnerMapper:
    def __init__(self, settings: SalesforceConfig, zone: tzinfo) -> None:
        self.fields = settings.partners
        self.zone = zone

    def select(self) -> list[str]:
        f = self.fields
        optional = [f.tier, f.left_on, f.owner_email, f.region]
        return [f.name, f.joined_on, *[name for name in optional if name]]

    def partner(self, row: Mapping[str, Any]) -> Partner:
        f = self.fields
        joined_on = to_date(value_at(row, f.joined_on), self.zone)
        if joined_on is None:
            raise Unmappable(f"{f.joined_on} is empty")
        contacts = value_at(row, "Contacts.records") or []
        emails = sorted({str(c["Email"]).strip() for c in contacts if c.get("Email")})
        try:
            return Partner(
                id=str(row["Id"]),
                name=text_at(row, f.name) or "",
                tier=text_at(row, f.tier),
                joined_on=joined_on,
                left_on=to_date(value_at(row, f.left_on), self.zone) if f.left_on else None,
                owner_email=text_at(row, f.owner_email),
                contact_emails=tuple(emails),
                region=text_at(row, f.region),
            )
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None


class DealMapper:
    def __init__(
        self,
        settings: SalesforceConfig,
        normalizer: Normalizer,
        zone: tzinfo,
        has_currency: bool,
    ) -> None:
        self.fields = settings.deals
        self.types = self.fields.types
        self.normalizer = normalizer
        self.zone = zone
        self.has_currency = has_currency

    def select(self) -> list[str]:
        f = self.fields
        fixed = ["StageName", "IsClosed", "IsWon", "CreatedDate", "CloseDate", f.name, f.amount]
        optional = [f.type, f.lead_source, f.channel, f.registered, f.registered_on, f.csat]
        if f.partner_role is None:
            optional.append(f.partner)
        if self.has_currency:
            optional.append("CurrencyIsoCode")
        return [*fixed, *[name for name in optional if name]]

    def deal(self, row: Mapping[str, Any], entered: StageEntry) -> Deal:
        return self.model(self.fields_of(row, entered))

    def fields_of(self, row: Mapping[str, Any], entered: StageEntry) -> dict[str, Any]:
        """The deal's fields as `Deal` takes them, `amount` not yet converted (`model` and
        `stored` finish them); Unmappable when the row cannot become a deal."""
        f = self.fields
        deal_id = str(row["Id"])
        stage = text_at(row, "StageName")
        status = (
            DealStatus.WON
            if row.get("IsWon")
            else DealStatus.LOST
            if row.get("IsClosed")
            else DealStatus.OPEN
        )
        created_on = to_date(row.get("CreatedDate"), self.zone)
        if created_on is None:
            raise Unmappable("CreatedDate is empty")
        close_date = to_date(row.get("CloseDate"), self.zone)
        closed_on = None
        if status is not DealStatus.OPEN:
            closed_on = close_date
            if closed_on is None and stage is not None:
                moment = entered(deal_id, stage)
                closed_on = moment.astimezone(self.zone).date() if moment else None
            if closed_on is None:
                raise Unmappable("closed without a CloseDate or closed-stage history")
        currency = text_at(row, "CurrencyIsoCode") if self.has_currency else None
        lead_source = text_at(row, f.lead_source)
        return {
            "id": deal_id,
            "partner_id": self.partner_of(row),
            "name": text_at(row, f.name) or "",
            "original_amount": _decimal(value_at(row, f.amount)),
            "currency": currency.upper() if currency else None,
            "stage": stage,
            "status": status,
            "created_on": created_on,
            "closed_on": closed_on,
            "expected_close_on": close_date if status is DealStatus.OPEN else None,
            "type": self.deal_type(text_at(row, f.type)),
            "lead_source": lead_source,
            "channel": self.normalizer.channel(
                lead_source, self.normalizer.explicit_channel(text_at(row, f.channel))
            ),
            "registered": _registered(value_at(row, f.registered) if f.registered else None),
            "registered_on": to_date(value_at(row, f.registered_on), self.zone)
            if f.registered_on
            else None,
            "csat": _csat(value_at(row, f.csat) if f.csat else None),
        }

    def values_or_deal(self, row: Mapping[str, Any], entered: StageEntry) -> dict[str, Any] | Deal:
        """The deal's stored columns (`stored`), or its `Deal` where only the model can tell
        whether the row is one (Unmappable, with the model's reason, if not)."""
        fields = self.fields_of(row, entered)
        return self.stored(fields) or self.model(fields)

    def model(self, fields: dict[str, Any]) -> Deal:
        """The `Deal` of `fields`, its amount converted last (a deal that cannot be stored
        never counts as an unconverted amount); Unmappable when the model refuses a field."""
        try:
            deal = Deal(**fields)
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None
        amount = self.normalizer.amount(fields["original_amount"], fields["currency"])
        return deal.model_copy(update={"amount": amount})

    def stored(self, fields: dict[str, Any]) -> dict[str, Any] | None:
        """`fields` as the store keeps them (`KINDS[Deal].values` of `model(fields)`), without
        building the model; None when the model has to check them (and say why): `fields`
        makes every field the model would accept but the id, which the row brings."""
        if not fields["id"]:
            return None
        original = fields["original_amount"]
        amount = self.normalizer.amount(original, fields["currency"])
        deal_type = fields["type"]
        return fields | {
            "amount": None if amount is None else float(amount),
            "original_amount": None if original is None else float(original),
            "status": fields["status"].value,
            "type": None if deal_type is None else deal_type.value,
            "channel": fields["channel"].value,
        }

    def partner_of(self, row: Mapping[str, Any]) -> str | None:
        if self.fields.partner_role is None:
            return text_at(row, self.fields.partner)
        links = value_at(row, "OpportunityPartnersFrom.records") or []
        return str(links[0]["AccountToId"]) if links else None

    def deal_type(self, value: str | None) -> DealType | None:
        if value is None:
            return None
        return self.types.get(" ".join(value.split()).casefold())


@dataclass(frozen=True)
class CustomerMapper:
    """Customer Accounts → Customers, and their Cases → SupportTickets (kpi-spec.md section 7)."""

    fields: SalesforceCustomerFields
    normalizer: Normalizer
    zone: tzinfo
    has_currency: bool  # the org is multi-currency: Account.CurrencyIsoCode exists

    def select(self) -> list[str]:
        f = self.fields
        optional = [f.partner, f.churned_on, f.mrr, f.onboarded_on, f.referred_by]
        if self.has_currency:
            optional.append("CurrencyIsoCode")
        return [f.name, f.became_customer_on, *[name for name in optional if name]]

    def customer(self, row: Mapping[str, Any]) -> Customer:
        f = self.fields
        became = to_date(value_at(row, f.became_customer_on), self.zone)
        if became is None:
            raise Unmappable(f"{f.became_customer_on} is empty")
        currency = text_at(row, "CurrencyIsoCode") if self.has_currency else None
        try:
            return customer_record(
                self.normalizer,
                _decimal(value_at(row, f.mrr)) if f.mrr else None,
                currency,
                id=str(row["Id"]),
                partner_id=text_at(row, f.partner),
                name=text_at(row, f.name) or "",
                became_customer_on=became,
                churned_on=self._date(row, f.churned_on),
                onboarded_on=self._date(row, f.onboarded_on),
                referred_by=text_at(row, f.referred_by),
            )
        except ValidationError as error:
            raise Unmappable(validation_reason(error)) from None

    def _date(self, row: Mapping[str, Any], path: str | None) -> date | None:
        return to_date(value_at(row, path), self.zone) if path else None

    @staticmethod
    def ticket(row: Mapping[str, Any]) -> SupportTicket:
        opened_at = parse_datetime(row.get("CreatedDate"))
        if opened_at is None or not row.get("AccountId"):
            raise Unmappable("a Case without AccountId or CreatedDate")
        return SupportTicket(
            id=str(row["Id"]), customer_id=str(row["AccountId"]), opened_at=opened_at
        )


def collapse_history(
    stored: Iterable[StageChange], read: Iterable[StageChange]
) -> tuple[list[StageChange], set[str]]:
    """Stage changes from stored changes plus newly read history rows, per deal: rows in time
    order, a row in the same stage as the one before it (an amount or date edit) dropped.

    Returns the changes to keep and the stored keys that are no longer changes.
    """
    by_deal: dict[str, dict[tuple[str, datetime], StageChange]] = {}
    stored_keys: dict[str, set[tuple[str, datetime]]] = {}
    for change in stored:
        by_deal.setdefault(change.deal_id, {})[(change.stage, change.entered_at)] = change
        stored_keys.setdefault(change.deal_id, set()).add((change.stage, change.entered_at))
    for change in read:
        by_deal.setdefault(change.deal_id, {})[(change.stage, change.entered_at)] = change
    kept: list[StageChange] = []
    dropped: set[str] = set()
    for deal_id, changes in by_deal.items():
        previous: str | None = None
        for change in sorted(changes.values(), key=lambda c: (c.entered_at, c.stage)):
            if change.stage != previous:
                kept.append(change)
            elif (change.stage, change.entered_at) in stored_keys.get(deal_id, set()):
                dropped.add(_stage_key(change))
            previous = change.stage
    return kept, dropped


def _stage_key(change: StageChange) -> str:
    return KINDS[StageChange].key(change)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _registered(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return value not in (None, "")


def _csat(value: Any) -> int | None:
    number = _decimal(value)
    if number is None or number != number.to_integral_value() or not 1 <= number <= 5:
        return None
    return int(number)
