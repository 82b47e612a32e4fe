"""The data sources' sections of app.yaml: the CSV folder, Salesforce and HubSpot (field and
property names, logins chosen, limits), and the deletion guard every sync obeys."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from settings.base import Section
from settings.vocab import DealType


class FilesSourceConfig(Section):
    path: Path = Path("demo-data")
    # The CSV files' text encoding, e.g. cp1252 for Excel exports on Windows.
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use a Python codec name such as utf-8 or cp1252"
            ) from None
        return value


class SyncConfig(Section):
    """Safeguards of every sync: a sweep that would delete more than `max_delete_share` of a
    table's stored rows, or all of them, is refused (`partner-kpi sync --accept-deletes`)."""

    max_delete_share: float = Field(default=0.2, ge=0, le=1)


def _salesforce_field(value: str) -> str:
    """A Salesforce field, or a path through lookups: `Partner_Tier__c`, `Owner.Email`."""
    parts = value.split(".")
    ok = value.isascii() and all(p[:1].isalpha() and p.replace("_", "").isalnum() for p in parts)
    if len(value) > 255 or not ok:
        raise ValueError(
            f"{value!r} is not a Salesforce field name such as Partner__c or Owner.Email"
        )
    return value


SalesforceField = Annotated[str, AfterValidator(_salesforce_field)]

#: Opportunity Type picklist values (matched ignoring case) and the deal type each means.
DEFAULT_SALESFORCE_TYPES: dict[str, DealType] = {
    "new customer": DealType.NEW,
    "new business": DealType.NEW,
    "new": DealType.NEW,
    "existing customer - upgrade": DealType.UPSELL,
    "upsell": DealType.UPSELL,
    "upgrade": DealType.UPSELL,
    "existing customer - replacement": DealType.RENEWAL,
    "existing customer - downgrade": DealType.RENEWAL,
    "renewal": DealType.RENEWAL,
}


class SalesforcePartnerFields(Section):
    """Which Accounts are partners, and the Account fields a partner's record comes from."""

    # Field -> value (a list: any of them), all of which must hold; values are quoted safely.
    filter: dict[SalesforceField, bool | str | list[str]] = Field(
        default_factory=lambda: dict[str, bool | str | list[str]](IsPartner=True)
    )
    name: SalesforceField = "Name"
    tier: SalesforceField | None = None
    joined_on: SalesforceField = "CreatedDate"
    left_on: SalesforceField | None = None
    owner_email: SalesforceField | None = "Owner.Email"
    region: SalesforceField | None = None  # e.g. BillingCountry or Partner_Region__c

    @field_validator("filter")
    @classmethod
    def _some_filter(
        cls, value: dict[str, bool | str | list[str]]
    ) -> dict[str, bool | str | list[str]]:
        if not value:
            raise ValueError("name at least one field that marks partner accounts")
        if any(isinstance(v, list) and not v for v in value.values()):
            raise ValueError("a list of values must not be empty")
        return value


class SalesforceDealFields(Section):
    """The Opportunity fields a deal's record comes from; registration and CSAT are absent
    unless named. With `partner_role`, a deal's partner is its OpportunityPartner with that
    role (e.g. Reseller) instead of the `partner` lookup field."""

    partner: SalesforceField = "PartnerAccountId"
    partner_role: str | None = Field(default=None, min_length=1)
    name: SalesforceField = "Name"
    amount: SalesforceField = "Amount"
    type: SalesforceField | None = "Type"
    lead_source: SalesforceField | None = "LeadSource"
    registered: SalesforceField | None = None
    registered_on: SalesforceField | None = None
    csat: SalesforceField | None = None
    # A field holding paid, earned, owned or other: a non-empty value wins over lead_source.
    channel: SalesforceField | None = None
    # Type picklist value -> new | upsell | renewal, laid over DEFAULT_SALESFORCE_TYPES.
    type_map: dict[str, DealType] = Field(default_factory=dict)

    @property
    def types(self) -> dict[str, DealType]:
        given = {" ".join(key.split()).casefold(): kind for key, kind in self.type_map.items()}
        return {**DEFAULT_SALESFORCE_TYPES, **given}


class SalesforceCustomerFields(Section):
    """Which Accounts are customers (kpi-spec.md section 7) and the Account fields a customer
    comes from; with `tickets`, the Cases of those accounts are its support tickets. Dates may
    be Date or DateTime fields; `partner` and `referred_by` are lookups to Accounts."""

    filter: dict[SalesforceField, bool | str | list[str]] = Field(
        default_factory=lambda: dict[str, bool | str | list[str]](Type="Customer")
    )
    partner: SalesforceField | None = None  # e.g. a custom Sourcing_Partner__c
    name: SalesforceField = "Name"
    became_customer_on: SalesforceField = "CreatedDate"
    churned_on: SalesforceField | None = None
    mrr: SalesforceField | None = None
    onboarded_on: SalesforceField | None = None
    referred_by: SalesforceField | None = None
    tickets: bool = True

    @field_validator("filter")
    @classmethod
    def _no_empty_list(
        cls, value: dict[str, bool | str | list[str]]
    ) -> dict[str, bool | str | list[str]]:
        if not value:
            raise ValueError("name at least one field that marks customer accounts")
        if any(isinstance(v, list) and not v for v in value.values()):
            raise ValueError("a list of values must not be empty")
        return value


class SalesforceConfig(Section):
    instance_url: str | None = None
    domain: str = "login"
    api_version: str = "62.0"
    # password | jwt | client_credentials | token; by default chosen from the SALESFORCE_*
    # variables that are set.
    auth: Literal["password", "jwt", "client_credentials", "token"] | None = None
    partners: SalesforcePartnerFields = Field(default_factory=SalesforcePartnerFields)
    deals: SalesforceDealFields = Field(default_factory=SalesforceDealFields)
    # `customers: null` leaves customers and tickets to the files (secondary_files).
    customers: SalesforceCustomerFields | None = Field(default_factory=SalesforceCustomerFields)
    lookback_minutes: float = Field(default=10.0, ge=0)
    # Stop before the sync itself uses more than this share of the org's daily API allowance.
    max_api_share: float = Field(default=0.5, gt=0, le=1)
    page_size: int = Field(default=2000, ge=200, le=2000)
    # The longest query URL sent; a longer field list is split into several queries merged by
    # Id. Salesforce refuses URIs over 16,384 bytes (with the headers), proxies may refuse less.
    max_url_length: int = Field(default=15_000, ge=1000, le=16_384)
    # Every request gives up when the connection takes longer, or the answer stops coming for
    # longer (Salesforce itself times a query out at 120 s); it is then retried.
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=130.0, gt=0)
    # A full sync reads an object through Bulk API 2.0 query jobs when the org holds more than
    # this many of its records; 0 keeps every object on the REST query API.
    bulk_threshold: int = Field(default=50_000, ge=0)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not value.replace(".", "", 1).isdigit() or "." not in value:
            raise ValueError("an API version such as 62.0 (no leading v)")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not all(part.isalnum() or part.replace("-", "").isalnum() for part in value.split(".")):
            raise ValueError("login, test or your My Domain such as acme.my")
        return value


def _hubspot_property(value: str) -> str:
    """A HubSpot property's internal name: `type`, `hs_analytics_source`, `partner_tier`."""
    ok = value.isascii() and value[:1].isalpha() and value.replace("_", "").isalnum()
    if len(value) > 100 or not ok or value != value.lower():
        raise ValueError(
            f"{value!r} is not a HubSpot property's internal name such as partner_tier"
        )
    return value


HubSpotProperty = Annotated[str, AfterValidator(_hubspot_property)]


def _one_or_more(value: object) -> object:
    """One property name, or a list of them: `type: dealtype` is `type: [dealtype]`."""
    return [value] if isinstance(value, str) else value


#: dealtype values (matched ignoring case) and the deal type each means.
DEFAULT_HUBSPOT_TYPES: dict[str, DealType] = {
    "newbusiness": DealType.NEW,
    "existingbusiness": DealType.UPSELL,
    "renewal": DealType.RENEWAL,
}
#: The built-in dealtype value that covers renewals and upsells alike.
AMBIGUOUS_HUBSPOT_TYPE = "existingbusiness"


class HubSpotPartnerProperties(Section):
    """Which companies are partners, and the company properties a partner comes from.

    A company is a partner when `property` holds one of `values` (option values or labels,
    checked against the portal's options). `joined_on` defaults to the company's createdate."""

    property: HubSpotProperty = "type"
    values: list[str] = Field(default_factory=lambda: ["PARTNER"], min_length=1)
    name: HubSpotProperty = "name"
    tier: HubSpotProperty | None = None
    joined_on: HubSpotProperty = "createdate"
    left_on: HubSpotProperty | None = None
    # A company property holding the channel manager's email; without one, the owner named
    # by `owner_id` (a HubSpot owner id, read through the owners API for its email).
    owner_email: HubSpotProperty | None = None
    owner_id: HubSpotProperty | None = "hubspot_owner_id"
    region: HubSpotProperty | None = None  # e.g. country or a custom partner_region


class HubSpotDealProperties(Section):
    """The deal properties a deal comes from; registration and CSAT are absent unless named.

    A deal's partner is the partner company it is associated with (only through the
    association type `association_type_id` when set: a label's typeId), or, with
    `partner_property`, the company id that deal property holds."""

    partner_property: HubSpotProperty | None = None
    association_type_id: int | None = Field(default=None, ge=1)
    name: HubSpotProperty = "dealname"
    amount: HubSpotProperty = "amount"
    currency: HubSpotProperty | None = "deal_currency_code"
    # One property or several, tried in order: the first value type_map (or the defaults)
    # maps decides; then the pipeline (type_by_pipeline).
    type: Annotated[list[HubSpotProperty], BeforeValidator(_one_or_more)] | None = Field(
        default_factory=lambda: ["dealtype"]
    )
    lead_source: HubSpotProperty | None = "hs_analytics_source"
    # A property holding paid, earned, owned or other: a non-empty value wins over lead_source.
    channel: HubSpotProperty | None = None
    registered: HubSpotProperty | None = None
    registered_on: HubSpotProperty | None = None
    csat: HubSpotProperty | None = None
    # type value -> new | upsell | renewal, laid over DEFAULT_HUBSPOT_TYPES.
    type_map: dict[str, DealType] = Field(default_factory=dict)
    # pipeline id or label -> the type of its deals, e.g. {Renewals: renewal}.
    type_by_pipeline: dict[str, DealType] = Field(default_factory=dict)

    @property
    def types(self) -> dict[str, DealType]:
        given = {" ".join(key.split()).casefold(): kind for key, kind in self.type_map.items()}
        return {**DEFAULT_HUBSPOT_TYPES, **given}

    @property
    def type_properties(self) -> list[str]:
        return list(self.type or [])

    @property
    def ambiguous_types(self) -> set[str]:
        """Default values that do not tell renewals from upsells (unless type_map maps them)."""
        given = {" ".join(key.split()).casefold() for key in self.type_map}
        return {AMBIGUOUS_HUBSPOT_TYPE} - given


class HubSpotCustomerProperties(Section):
    """Which companies are customers (kpi-spec.md section 7) and the company properties a
    customer comes from; with `tickets`, the tickets associated with them.

    A customer's partner is the company id `partner_property` holds, else the associated
    partner company (only through the association label `association_type_id` when set)."""

    property: HubSpotProperty = "lifecyclestage"
    # Evangelists are customers too (the stage after customer in HubSpot's lifecycle).
    values: list[str] = Field(default_factory=lambda: ["customer", "evangelist"], min_length=1)
    name: HubSpotProperty = "name"
    became_customer_on: HubSpotProperty = "hs_lifecyclestage_customer_date"
    partner_property: HubSpotProperty | None = None
    association_type_id: int | None = Field(default=None, ge=1)
    churned_on: HubSpotProperty | None = None
    mrr: HubSpotProperty | None = None
    currency: HubSpotProperty | None = None
    onboarded_on: HubSpotProperty | None = None
    referred_by: HubSpotProperty | None = None  # a property holding the referrer company's id
    tickets: bool = True


class HubSpotConfig(Section):
    base_url: str = "https://api.hubapi.com"
    # The portal (hub) id, for links to deals in HubSpot.
    portal_id: str | None = None
    partners: HubSpotPartnerProperties = Field(default_factory=HubSpotPartnerProperties)
    deals: HubSpotDealProperties = Field(default_factory=HubSpotDealProperties)
    # `customers: null` leaves customers and tickets to the files (secondary_files).
    customers: HubSpotCustomerProperties | None = Field(default_factory=HubSpotCustomerProperties)
    # Where a deal's stage changes come from: the `dealstage` property's history
    # (propertiesWithHistory, every change), or the `hs_v2_date_entered_<stage id>` properties
    # (the last time the deal entered each stage; fewer calls, but no repeated entries).
    stage_history: Literal["properties_with_history", "date_entered"] = "properties_with_history"
    # Search results are eventually consistent: each incremental read starts this much early.
    lookback_minutes: float = Field(default=10.0, ge=0)
    # Client-side rate limits: 100 per 10 s for private apps (190 on Professional and
    # Enterprise), and the search endpoints' 5 per second.
    requests_per_10_seconds: int = Field(default=100, ge=1)
    searches_per_second: int = Field(default=5, ge=1)
    page_size: int = Field(default=100, ge=10, le=100)
    # Stop before the sync itself uses more than this share of the portal's daily allowance.
    max_api_share: float = Field(default=0.5, gt=0, le=1)
    # Every request gives up when the connection or the answer takes longer; it is retried.
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=60.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL such as https://api.hubapi.com")
        return value.rstrip("/")
