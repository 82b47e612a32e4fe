"""app.yaml: the deployment's configuration, as a typed model whose errors name the field's path.

Secrets never live here; they come from the environment (see `kpi.secrets`). Relative paths
(the files source's folder, a SQLite database file) are relative to app.yaml's folder.
"""

from __future__ import annotations

import codecs
import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy.engine import make_url

from kpi.models import Channel, DealType
from kpi.store_faults import SUPPORTED_DATABASES, supported_list
from kpi.survey_config import SurveyCampaign, distinct_campaigns

CONFIG_ENV = "PARTNER_KPI_CONFIG"
DEFAULT_CONFIG_NAME = "app.yaml"
DEFAULT_DATABASE_FILE = "partner_kpi.db"

#: Lead-source values common in Salesforce (LeadSource picklist) and HubSpot
#: (hs_analytics_source), mapped to a marketing channel. app.yaml's channel_map is laid over this.
DEFAULT_CHANNEL_MAP: dict[str, Channel] = {
    # Salesforce's default LeadSource picklist and common additions
    "advertisement": Channel.PAID,
    "purchased list": Channel.PAID,
    "paid search": Channel.PAID,
    "paid social": Channel.PAID,
    "trade show": Channel.PAID,
    "partner": Channel.EARNED,
    "partner referral": Channel.EARNED,
    "employee referral": Channel.EARNED,
    "external referral": Channel.EARNED,
    "word of mouth": Channel.EARNED,
    "organic search": Channel.EARNED,
    "web": Channel.OWNED,
    "webinar": Channel.OWNED,
    "seminar - internal": Channel.OWNED,
    "seminar - partner": Channel.EARNED,
    "phone inquiry": Channel.OWNED,
    "email": Channel.OWNED,
    # HubSpot's hs_analytics_source values
    "paid_search": Channel.PAID,
    "paid_social": Channel.PAID,
    "organic_search": Channel.EARNED,
    "social_media": Channel.EARNED,
    "referrals": Channel.EARNED,
    "email_marketing": Channel.OWNED,
    "direct_traffic": Channel.OWNED,
    "offline": Channel.OWNED,
    "other_campaigns": Channel.OTHER,
}

#: kpi-spec.md section 4: the quality score's components and their default weights.
DEFAULT_WEIGHTS: dict[str, float] = {
    "won_revenue": 0.30,
    "close_rate": 0.20,
    "avg_deal_size": 0.15,
    "sales_velocity": 0.15,
    "partner_nps": 0.10,
    "courses_completed": 0.10,
}


class ConfigError(Exception):
    """A configuration a person can fix; the message is one sentence per problem."""


class Section(BaseModel):
    """A block of app.yaml. Unknown keys are errors, so a typo never passes silently.

    `unknown_key_noun` names what the keys of this section are, for the error message.
    """

    model_config = ConfigDict(extra="forbid")
    unknown_key_noun: ClassVar[str] = "field"


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
    # Type picklist value -> new | upsell | renewal, laid over DEFAULT_SALESFORCE_TYPES.
    type_map: dict[str, DealType] = Field(default_factory=dict)

    @property
    def types(self) -> dict[str, DealType]:
        given = {" ".join(key.split()).casefold(): kind for key, kind in self.type_map.items()}
        return {**DEFAULT_SALESFORCE_TYPES, **given}


class SalesforceConfig(Section):
    instance_url: str | None = None
    domain: str = "login"
    api_version: str = "62.0"
    # password | jwt | client_credentials | token; by default chosen from the SALESFORCE_*
    # variables that are set.
    auth: Literal["password", "jwt", "client_credentials", "token"] | None = None
    partners: SalesforcePartnerFields = Field(default_factory=SalesforcePartnerFields)
    deals: SalesforceDealFields = Field(default_factory=SalesforceDealFields)
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


class SlackConfig(Section):
    command: str = "/partner-kpi"
    app_name: str = "partner-kpi"
    port: int = Field(default=3000, ge=1, le=65535)
    path: str = "/slack/events"
    # The public URL Slack sends requests to (HTTP mode), for the app manifest.
    request_url: str | None = None
    # How long one Web API call may take before it counts as failed (a refusal, for access).
    api_timeout_seconds: int = Field(default=10, ge=1, le=120)
    # Socket Mode: /health answers 503 once no connection has been open for this long.
    socket_down_seconds: float = Field(default=60, gt=0)
    # serve: how long Slack may stay unreachable after the start (auth.test) before serve exits.
    startup_timeout_seconds: float = Field(default=300, gt=0)

    @field_validator("command")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError("a slash command starts with / and has no spaces, e.g. /partner-kpi")
        return value


class ExternalAccessConfig(Section):
    """Slack Connect users (partners): each sees at most its own partner's scorecard."""

    # email domain -> partner CRM id
    domains: dict[str, str] = Field(default_factory=dict)
    # Slack user id or email -> partner CRM id
    users: dict[str, str] = Field(default_factory=dict)
    # Slack channel id shared with a partner's organisation (Slack Connect) -> that partner's
    # CRM id: the only partner whose data may be posted there (shares, digests, results).
    channels: dict[str, str] = Field(default_factory=dict)
    # Whether a partner's people see their rank among the program's partners.
    show_rank: bool = False

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for channel in value:
            if not (channel[:1] in ("C", "G") and channel.isalnum() and channel.isupper()):
                raise ValueError(
                    f"{channel!r} is not a channel id such as C0123ABCDEF (Slack shows it in "
                    "the channel's details)"
                )
        return value


class AccessConfig(Section):
    """Who may use the command. With no users, user groups or channels, every member of the
    workspace may; external users are limited by `external` either way."""

    users: list[str] = Field(default_factory=list)
    usergroups: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    external: ExternalAccessConfig = Field(default_factory=ExternalAccessConfig)


def _hubspot_property(value: str) -> str:
    """A HubSpot property's internal name: `type`, `hs_analytics_source`, `partner_tier`."""
    ok = value.isascii() and value[:1].isalpha() and value.replace("_", "").isalnum()
    if len(value) > 100 or not ok or value != value.lower():
        raise ValueError(
            f"{value!r} is not a HubSpot property's internal name such as partner_tier"
        )
    return value


HubSpotProperty = Annotated[str, AfterValidator(_hubspot_property)]

#: dealtype values (matched ignoring case) and the deal type each means.
DEFAULT_HUBSPOT_TYPES: dict[str, DealType] = {
    "newbusiness": DealType.NEW,
    "existingbusiness": DealType.UPSELL,
    "renewal": DealType.RENEWAL,
}


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
    # A company property holding the channel manager's email (HubSpot owners are ids).
    owner_email: HubSpotProperty | None = None
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
    type: HubSpotProperty | None = "dealtype"
    lead_source: HubSpotProperty | None = "hs_analytics_source"
    registered: HubSpotProperty | None = None
    registered_on: HubSpotProperty | None = None
    csat: HubSpotProperty | None = None
    # dealtype value -> new | upsell | renewal, laid over DEFAULT_HUBSPOT_TYPES.
    type_map: dict[str, DealType] = Field(default_factory=dict)

    @property
    def types(self) -> dict[str, DealType]:
        given = {" ".join(key.split()).casefold(): kind for key, kind in self.type_map.items()}
        return {**DEFAULT_HUBSPOT_TYPES, **given}


class HubSpotConfig(Section):
    base_url: str = "https://api.hubapi.com"
    # The portal (hub) id, for links to deals in HubSpot.
    portal_id: str | None = None
    partners: HubSpotPartnerProperties = Field(default_factory=HubSpotPartnerProperties)
    deals: HubSpotDealProperties = Field(default_factory=HubSpotDealProperties)
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


class KpiWeights(Section):
    unknown_key_noun: ClassVar[str] = "KPI"

    won_revenue: float = Field(0.0, ge=0)
    close_rate: float = Field(0.0, ge=0)
    avg_deal_size: float = Field(0.0, ge=0)
    sales_velocity: float = Field(0.0, ge=0)
    partner_nps: float = Field(0.0, ge=0)
    courses_completed: float = Field(0.0, ge=0)


class TierConfig(Section):
    name: str = Field(min_length=1)
    min_score: float = Field(ge=0, le=100)


def _some_weight(weights: KpiWeights) -> KpiWeights:
    if sum(weights.model_dump().values()) <= 0:
        raise ValueError(
            "the weights sum to 0, so no quality score can be computed; give at least one "
            "KPI a weight above 0"
        )
    return weights


class KpiConfig(Section):
    # Given weights replace the defaults as a whole: a KPI left out weighs 0.
    weights: Annotated[KpiWeights, AfterValidator(_some_weight)] = Field(
        default_factory=lambda: KpiWeights(**DEFAULT_WEIGHTS)
    )
    # Program tiers earned by quality score, e.g. Gold >= 80, Silver >= 60, Registered >= 0.
    tiers: list[TierConfig] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _distinct_tiers(cls, tiers: list[TierConfig]) -> list[TierConfig]:
        names = [tier.name.casefold() for tier in tiers]
        if len(set(names)) != len(names):
            raise ValueError("two tiers have the same name")
        scores = [tier.min_score for tier in tiers]
        if len(set(scores)) != len(scores):
            raise ValueError("two tiers have the same min_score")
        return sorted(tiers, key=lambda tier: tier.min_score)


#: What a digest can show, in the order it shows them.
DigestSection = Literal["program", "leaderboard", "movers", "at_risk", "joined_left", "chart"]
DIGEST_SECTIONS: tuple[DigestSection, ...] = typing.get_args(DigestSection)


def _crontab(value: str) -> str:
    """A five-field cron expression (minute hour day month weekday), as crontab(5) reads it."""
    from kpi.cron import parse_cron

    return parse_cron(value).text


def _iana_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return value


def _period_text(value: str) -> str:
    from datetime import date

    from kpi.periods import PeriodError, parse_period

    try:
        parse_period(value, date(2026, 1, 15))  # any day: only the form is checked here
    except PeriodError as error:
        raise ValueError(str(error)) from None
    return value.strip()


def _distinct_digests(digests: list[DigestConfig]) -> list[DigestConfig]:
    names = [digest.name.casefold() for digest in digests]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"two digests are named {twice[0]!r}; give each its own name")
    return digests


CronSchedule = Annotated[str, AfterValidator(_crontab)]
TimezoneName = Annotated[str, AfterValidator(_iana_timezone)]
PeriodText = Annotated[str, AfterValidator(_period_text)]


class DigestPartnerFilter(Section):
    """Which partners a digest covers; with several lists a partner must match each of them.
    Tiers, owners and regions match ignoring case; `ids` are CRM ids."""

    tiers: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    ids: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.tiers or self.owners or self.regions or self.ids)


class DigestRiskRules(Section):
    """When a partner is at risk (kpi.risk.RiskRules, with `no_win_days` in place of "no deal
    won in the period", which a weekly digest would say of most partners)."""

    no_win_days: int = Field(default=90, ge=1)
    close_rate_drop_points: float = Field(default=15.0, ge=0, le=100)
    detractor_nps: float = Field(default=0.0, ge=-100, le=100)
    stale_pipeline_share: float = Field(default=0.5, ge=0, le=1)


class DigestConfig(Section):
    """A digest posted to a channel on a cron schedule, e.g. Mondays 09:00 Europe/Berlin."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    channel: str = Field(min_length=2, max_length=80)
    schedule: CronSchedule
    timezone: TimezoneName | None = None  # default: app.yaml's timezone
    period: PeriodText = "last-7d"
    title: str | None = Field(default=None, max_length=100)
    partners: DigestPartnerFilter = Field(default_factory=DigestPartnerFilter)
    sections: list[DigestSection] = Field(default_factory=lambda: list(DIGEST_SECTIONS))
    top: int = Field(default=10, ge=1, le=25)
    movers: int = Field(default=5, ge=1, le=10)
    at_risk: DigestRiskRules = Field(default_factory=DigestRiskRules)
    # Warn when the data is older than this; default: a day for a period of up to a week,
    # else a seventh of the period (a monthly digest accepts 4 days).
    max_data_age_hours: float | None = Field(default=None, gt=0)
    # Program KPIs and leaders also compared with the average of the stored snapshots of the
    # same period over this many trailing quarters (0: only with the previous period).
    trailing_quarters: int = Field(default=4, ge=0, le=12)

    @field_validator("sections")
    @classmethod
    def _some_sections(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one section of {', '.join(DIGEST_SECTIONS)}")
        if len(set(value)) != len(value):
            raise ValueError("a section is listed twice")
        return value


class SyncScheduleConfig(Section):
    """When the scheduler syncs the source: on `schedule` (cron; null: never) and before a
    digest whose data is older than `before_digest_minutes`."""

    schedule: CronSchedule | None = "0 * * * *"
    timezone: TimezoneName | None = None
    before_digest_minutes: float = Field(default=30.0, ge=0)


class SchedulerConfig(Section):
    """The scheduler inside `partner-kpi serve`: digests missed by less than `grace_hours` are
    caught up once; a claim never posted is retried after `stale_claim_minutes`."""

    sync: SyncScheduleConfig = Field(default_factory=SyncScheduleConfig)
    grace_hours: float = Field(default=6.0, ge=0)
    stale_claim_minutes: float = Field(default=15.0, ge=1)
    tick_seconds: float = Field(default=60.0, ge=1)


class AppConfig(Section):
    source: Literal["files", "salesforce", "hubspot"] = "files"
    files: FilesSourceConfig = Field(default_factory=FilesSourceConfig)
    salesforce: SalesforceConfig = Field(default_factory=SalesforceConfig)
    hubspot: HubSpotConfig = Field(default_factory=HubSpotConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    database_url: str = f"sqlite:///{DEFAULT_DATABASE_FILE}"
    # How long a writer waits for another one that holds the store before giving up.
    database_lock_timeout_seconds: float = Field(default=30.0, gt=0)
    timezone: str = "UTC"
    currency: str = "USD"
    currency_rates: dict[str, float] = Field(default_factory=dict)
    channel_map: dict[str, Channel] = Field(default_factory=dict)
    stages: list[str] | None = None
    kpi: KpiConfig = Field(default_factory=KpiConfig)
    # Sections of the Slack app, digests, surveys and access control; each is validated
    # in full by the part of the bot that reads it.
    slack: SlackConfig = Field(default_factory=SlackConfig)
    digests: Annotated[list[DigestConfig], AfterValidator(_distinct_digests)] = Field(
        default_factory=list
    )
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    surveys: Annotated[list[SurveyCampaign], AfterValidator(distinct_campaigns)] = Field(
        default_factory=list
    )
    access: AccessConfig = Field(default_factory=AccessConfig)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin"
            ) from None
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        return _currency_code(value)

    @field_validator("currency_rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        rates = {}
        for code, rate in value.items():
            if rate <= 0:
                raise ValueError(f"the rate of {code} must be greater than 0")
            rates[_currency_code(code)] = rate
        return rates

    @field_validator("channel_map")
    @classmethod
    def _normalized_lead_sources(cls, value: dict[str, Channel]) -> dict[str, Channel]:
        return {normalize_lead_source(key): channel for key, channel in value.items()}

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except Exception:
            raise ValueError(f"not a database URL; use {supported_list()}") from None
        if backend not in SUPPORTED_DATABASES:
            raise ValueError(
                f"partner-kpi does not run on {backend} databases; use {supported_list()}"
            )
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def lead_source_channels(self) -> dict[str, Channel]:
        """The default lead-source map with app.yaml's entries laid over it."""
        return {**DEFAULT_CHANNEL_MAP, **self.channel_map}

    @property
    def weights(self) -> dict[str, float]:
        return self.kpi.weights.model_dump()


class LoadedConfig(typing.NamedTuple):
    """A validated app.yaml with its relative paths resolved."""

    app: AppConfig
    path: Path | None  # None when no file exists and the defaults are in force
    files_path: Path
    database_url: str


def normalize_lead_source(text: str) -> str:
    return " ".join(text.split()).casefold()


def _currency_code(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"{value!r} is not a three-letter currency code such as USD")
    return code


def config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Where the configuration is: --config, else $PARTNER_KPI_CONFIG, else ./app.yaml.

    Returns the path and whether it was asked for (an asked-for file must exist).
    """
    if explicit:
        return Path(explicit), True
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]), True
    return Path(DEFAULT_CONFIG_NAME), False


def load_config(explicit: str | os.PathLike[str] | None = None) -> LoadedConfig:
    path, asked_for = config_path(explicit)
    if not path.exists():
        if asked_for:
            raise ConfigError(
                f"{path}: no such file; pass --config with the path of your app.yaml."
            )
        return resolve(AppConfig(), None, Path.cwd())
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder; pass --config (or {CONFIG_ENV}) the path of the app.yaml "
            f"file, such as {path / DEFAULT_CONFIG_NAME}."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path.name} line {line} is not UTF-8 text (byte 0x{data[error.start]:02X} at "
            f"offset {error.start}); save app.yaml as UTF-8."
        ) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> LoadedConfig:
    name = path.name
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"{name}{where}: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of settings at the top level.")
    try:
        app = AppConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError("\n".join(f"{name}: {line}" for line in describe_errors(error))) from None
    return resolve(app, path, path.resolve().parent)


def resolve(app: AppConfig, path: Path | None, base_dir: Path) -> LoadedConfig:
    files_path = app.files.path if app.files.path.is_absolute() else base_dir / app.files.path
    url = make_url(app.database_url)
    database = url.database
    on_disk = url.get_backend_name() == "sqlite" and database and database != ":memory:"
    on_disk = on_disk and not str(database).startswith("file:")  # a URI names its own path
    if on_disk and not Path(str(database)).is_absolute():
        url = url.set(database=str(base_dir / str(database)))
    return LoadedConfig(app, path, files_path, url.render_as_string(hide_password=False))


# --- error messages -----------------------------------------------------------------------


def describe_errors(error: ValidationError) -> Iterator[str]:
    """One line per problem: `kpi.weights.close_rat: unknown KPI; expected one of ...`."""
    for problem in error.errors():
        loc = problem["loc"]
        where = format_loc(loc)
        if problem["type"] == "extra_forbidden":
            section = _model_at(AppConfig, loc[:-1])
            if section is not None:
                noun = getattr(section, "unknown_key_noun", "field")
                expected = ", ".join(section.model_fields)
                yield f"{where}: unknown {noun}; expected one of {expected}"
                continue
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "literal_error":
            message = f"{message}, not {problem['input']!r}"
        yield f"{where}: {message}"


def format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The section model found by following `loc` from `model`, if it is one."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not _is_model(current):
            current = _unwrap(current, container=True)
        if isinstance(part, str):
            if not _is_model(current):
                return None
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = _unwrap(field.annotation, container=False)
    return current if _is_model(current) else None


def _is_model(thing: Any) -> bool:
    return isinstance(thing, type) and issubclass(thing, BaseModel)


def _unwrap(annotation: Any, container: bool) -> Any:
    """Strip Optional, and with `container` a list or dict, down to the inner type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return _unwrap(inner[0], container) if len(inner) == 1 else annotation
    if container and origin in (list, tuple) and args:
        return args[0]
    if container and origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return annotation
