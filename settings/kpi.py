"""What the KPI core reads: the currency and its rates, the time zone, the pipeline's stages,
the lead-source map, the quality score's weights and the program tiers. `KpiSettings` is that
part of app.yaml, handed to `kpi/` instead of the whole file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field, field_validator

from settings.base import Section
from settings.goals import GoalEntry
from settings.vocab import Channel

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


def normalize_lead_source(text: str) -> str:
    return " ".join(text.split()).casefold()


def currency_code(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"{value!r} is not a three-letter currency code such as USD")
    return code


def currency_rates(value: dict[str, float]) -> dict[str, float]:
    rates = {}
    for code, rate in value.items():
        if rate <= 0:
            raise ValueError(f"the rate of {code} must be greater than 0")
        rates[currency_code(code)] = rate
    return rates


def channel_map(value: dict[str, Channel]) -> dict[str, Channel]:
    return {normalize_lead_source(key): channel for key, channel in value.items()}


CurrencyCode = Annotated[str, AfterValidator(currency_code)]
CurrencyRates = Annotated[dict[str, float], AfterValidator(currency_rates)]
ChannelMap = Annotated[dict[str, Channel], AfterValidator(channel_map)]


@dataclass(frozen=True)
class KpiSettings:
    """The part of app.yaml the KPI core reads, validated there (`AppConfig.kpi_settings`).
    `source` names the store's data source, whose own stage order is used when app.yaml names
    no stages."""

    source: str
    timezone: str
    currency: str
    currency_rates: dict[str, float]
    channel_map: dict[str, Channel]
    stages: list[str] | None
    kpi: KpiConfig
    goals: tuple[GoalEntry, ...] = ()  # app.yaml's `goals:`, read after goals.csv

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

    @property
    def tiers(self) -> list[TierConfig]:
        return self.kpi.tiers
