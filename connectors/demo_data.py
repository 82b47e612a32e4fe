"""Deterministic demo data: a made-up channel-partner program written as a files source.

`write_demo_data(folder, as_of, seed)` writes the CSV folder format of kpi-spec.md section 1
(`partners.csv`, `deals.csv`, `stage_changes.csv`, `trainings.csv`, `survey_responses.csv`,
`customers.csv`, `tickets.csv`, each with a header row of exactly the spec's field names; survey
responses also carry an `id` first) for about 60 partners and two years of history ending at
`as_of`, plus the `DEMO_MARKER` file that tells later runs the folder is ours. Customers and
tickets come from `connectors.demo_customers`.

The program is shaped so that every KPI has something to show:

* partner archetypes: strong (many, large, mostly won deals, high NPS, many courses), average,
  declining (good a year ago, poor in the last ~6 months), new (joined in the last 90 days)
  and departed (`left_on` set, no deals or trainings after it);
* about a third of the deals are direct (no partner), so the partner revenue share means
  something, and deals walk the pipeline `DEMO_PIPELINE` with realistic times in each stage;
* the warts of a real CRM export: ~2% of deals without an amount, ~0.5% in CHF (which has no
  rate in `DEMO_CURRENCY_RATES`), empty and unmapped lead sources ("Podcast"), empty deal
  types, registrations without a registration date, stale open deals whose expected close
  date has passed, and five won deals "closed before they were created" (a migration reset
  their created date; their stage history keeps the true dates); one survey comment holds
  `&` and `<b>` and another a line break, so escaping and CSV quoting get exercised.

Every draw comes from one `random.Random(seed)` in a fixed order and every date is an offset
from `as_of`, so the same (as_of, seed) gives byte-identical files. Timestamps are UTC: stage
changes are written with a "Z" suffix, survey responses with "+00:00".
"""

from __future__ import annotations

import csv
import math
import random
import string
import unicodedata
from bisect import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

from connectors.demo_customers import (
    DemoCustomer,
    DemoPartner,
    DemoTicket,
    demo_customers,
    poisson,
)
from kpi.models import Channel, DealStatus, DealType

DEMO_MARKER = ".partner-kpi-demo"
DEMO_PIPELINE: tuple[str, ...] = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
)
#: Rates into the demo deployment's currency, USD. CHF is deliberately missing.
DEMO_CURRENCY_RATES: dict[str, float] = {"EUR": 1.08, "GBP": 1.27}


@dataclass(frozen=True)
class DemoSummary:
    """How many rows each file got."""

    partners: int
    deals: int
    stage_changes: int
    trainings: int
    survey_responses: int
    customers: int
    tickets: int


T = TypeVar("T")
#: A UTC timestamp as whole seconds since 0001-01-01 (date ordinal * 86400 + second of the day):
#: cheaper to make and order than thousands of datetimes.
_Stamp = int
_DAY_SECONDS = 86_400
_CLOCK = tuple(f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(24 * 60))  # "HH:MM"

HISTORY_DAYS = 730  # two years of deals, trainings and surveys end at as_of
DECLINE_DAYS = 180  # a declining partner turns poor this many days before as_of
STALE_RATE = 0.012  # share of last year's deals left open past their expected close
BACKDATED_WINS = 5  # won deals whose created_on lies after their closed_on
WORKDAY_SECONDS = (7 * 3600, 20 * 3600)  # when stage changes and survey answers happen

_OPEN_STAGES = DEMO_PIPELINE[:5]
_WON_STAGE, _LOST_STAGE = DEMO_PIPELINE[5], DEMO_PIPELINE[6]
#: Relative time a deal spends in each open stage.
_STAGE_WEIGHTS: dict[str, float] = {
    "Prospecting": 1.0,
    "Qualification": 1.5,
    "Needs Analysis": 1.5,
    "Proposal": 2.0,
    "Negotiation": 2.5,
}
_SKIPPABLE_STAGE = "Needs Analysis"


# Random's randint/choice/choices/sample are pure Python and dominate the runtime; these use
# one rng.random() each (still fully determined by the seed).


def _randint(rng: random.Random, low: int, high: int) -> int:
    """Like rng.randint: a whole number in [low, high]."""
    return low + int(rng.random() * (high - low + 1))


def _choice(rng: random.Random, values: Sequence[T]) -> T:
    return values[int(rng.random() * len(values))]


class _Weighted(Generic[T]):
    """A fixed weighted choice."""

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.values = tuple(value for value, _ in pairs)
        self.cum_weights = tuple(accumulate(weight for _, weight in pairs))

    def pick(self, rng: random.Random) -> T:
        return self.values[bisect(self.cum_weights, rng.random() * self.cum_weights[-1])]


def _nps(*weights: float) -> _Weighted[int]:
    """Survey scores 0, 1, ... with these weights."""
    return _Weighted([(score, weight) for score, weight in enumerate(weights)])


def _csat(*weights: float) -> _Weighted[int]:
    """Customer-satisfaction ratings 1, 2, ... with these weights."""
    return _Weighted([(rating, weight) for rating, weight in enumerate(weights, start=1)])


# --- archetypes ---------------------------------------------------------------------------


class Archetype(StrEnum):
    """The kinds of partner the demo program has; see the module docstring."""

    STRONG = "strong"
    AVERAGE = "average"
    DECLINING = "declining"
    NEW = "new"
    DEPARTED = "departed"


@dataclass(frozen=True)
class _Profile:
    """How partners of one archetype (or direct sales) behave."""

    deals_per_week: float
    win_rate: float
    median_amount: float
    cycle_days: float
    registration_rate: float
    survey_rate: float
    nps: _Weighted[int]  # score 0-10
    csat: _Weighted[int]  # 1-5
    trainings: tuple[int, int] = (0, 0)  # courses completed in two years, min and max
    joined_days_ago: tuple[int, int] = (0, 0)
    tiers: _Weighted[str] = field(default_factory=lambda: _Weighted([("", 1.0)]))


_PROFILES: dict[Archetype, _Profile] = {
    Archetype.STRONG: _Profile(
        deals_per_week=1.8, win_rate=0.55, median_amount=55_000, cycle_days=45,
        registration_rate=0.85, survey_rate=0.75,
        nps=_nps(0, 0, 0, 0, 0, 0, 1, 3, 8, 30, 40), csat=_csat(1, 2, 6, 30, 40),
        trainings=(8, 16), joined_days_ago=(730, 1095),
        tiers=_Weighted([("Gold", 8.0), ("Silver", 2.0)]),
    ),
    Archetype.AVERAGE: _Profile(
        deals_per_week=0.6, win_rate=0.35, median_amount=22_000, cycle_days=65,
        registration_rate=0.65, survey_rate=0.55,
        nps=_nps(1, 1, 1, 2, 3, 6, 10, 18, 20, 14, 8), csat=_csat(3, 6, 20, 40, 20),
        trainings=(2, 7), joined_days_ago=(95, 1095),
        tiers=_Weighted([("Gold", 1.0), ("Silver", 5.0), ("Registered", 5.0), ("", 0.3)]),
    ),
    Archetype.DECLINING: _Profile(  # until DECLINE_DAYS before as_of; then _DECLINED
        deals_per_week=1.2, win_rate=0.5, median_amount=42_000, cycle_days=50,
        registration_rate=0.8, survey_rate=0.65,
        nps=_nps(0, 0, 0, 0, 1, 2, 4, 8, 20, 30, 25), csat=_csat(1, 3, 10, 35, 30),
        trainings=(4, 9), joined_days_ago=(600, 1095),
        tiers=_Weighted([("Gold", 5.0), ("Silver", 5.0)]),
    ),
    Archetype.NEW: _Profile(
        deals_per_week=0.7, win_rate=0.3, median_amount=14_000, cycle_days=40,
        registration_rate=0.6, survey_rate=0.6,
        nps=_nps(0, 0, 0, 1, 1, 3, 6, 14, 20, 18, 12), csat=_csat(2, 5, 20, 40, 25),
        trainings=(1, 3), joined_days_ago=(3, 88),
        tiers=_Weighted([("Registered", 1.0)]),
    ),
    Archetype.DEPARTED: _Profile(
        deals_per_week=0.5, win_rate=0.25, median_amount=16_000, cycle_days=75,
        registration_rate=0.5, survey_rate=0.45,
        nps=_nps(4, 4, 6, 10, 12, 14, 14, 10, 6, 3, 1), csat=_csat(8, 15, 35, 30, 10),
        trainings=(1, 4), joined_days_ago=(500, 1095),
        tiers=_Weighted([("Silver", 1.0), ("Registered", 2.0)]),
    ),
}  # fmt: skip
#: A declining partner in its last DECLINE_DAYS: few, small, mostly lost deals, unhappy.
_DECLINED = _Profile(
    deals_per_week=0.35, win_rate=0.12, median_amount=15_000, cycle_days=80,
    registration_rate=0.5, survey_rate=0.4,
    nps=_nps(3, 4, 6, 10, 14, 18, 16, 10, 6, 3, 2), csat=_csat(10, 20, 35, 25, 8),
)  # fmt: skip
#: Direct sales (no partner): never registered, never surveyed.
_DIRECT = _Profile(
    deals_per_week=22.0, win_rate=0.3, median_amount=28_000, cycle_days=60,
    registration_rate=0.0, survey_rate=0.0, nps=_nps(1), csat=_csat(3, 6, 20, 40, 22),
)  # fmt: skip
_ARCHETYPE_COUNTS: tuple[tuple[Archetype, int], ...] = (
    (Archetype.STRONG, 10),
    (Archetype.AVERAGE, 32),
    (Archetype.DECLINING, 8),
    (Archetype.NEW, 6),
    (Archetype.DEPARTED, 4),
)
#: Days before as_of at which the departed partners left, one range each (joined >= 500 ago).
_LEFT_DAYS_AGO: tuple[tuple[int, int], ...] = ((20, 80), (110, 200), (210, 320), (330, 450))

# --- names and vocabularies ---------------------------------------------------------------

ACME = "Acme Corp"  # always a strong partner
_PARTNER_NAMES: tuple[str, ...] = (
    ACME, "Northwind Traders", "Northwind Digital", "Contoso Solutions", "Fabrikam Systems",
    "Blue Harbor Consulting", "Blue Harbor IT", "Summit Cloud Partners", "Brightline Analytics",
    "Redwood Integration Group", "Ironclad Security", "Meridian Tech", "Cobalt Ridge Software",
    "Lakeside Data", "Pinnacle Business Systems", "Harborview IT Services", "Silverline Consulting",
    "Atlas Networks", "Clearpath Advisors", "Granite Peak Solutions", "Evergreen Digital",
    "Quantum Leap Consulting", "Bluebird Cloud", "Crescent Systems", "Vertex Integrators",
    "Oakridge Technologies", "Polaris IT", "Sapphire Analytics", "Trailhead Partners",
    "Keystone Data Services", "Nimbus Cloud Works", "Copperleaf Consulting", "Falcon Ridge Systems",
    "Starboard Digital", "Westbrook Solutions", "Helix Software Group", "Beacon Point Consulting",
    "Driftwood Labs", "Tidewater Technologies", "Orchard Street IT", "Müller Systemhaus GmbH",
    "Nordlicht Consulting", "Café Numérique", "Kestrel Data", "Lumen & Ledger",
    "Maple Grove Software", "Cedar Stone Advisors", "Riverbend Solutions", "Aurora Integration",
    "Skyward IT", "Horizon Point Systems", "Tangent Analytics", "Bright Harbor Media",
    "Ember Digital", "Solstice Consulting", "Wavecrest Networks", "Juniper Lane Partners",
    "Ironwood Cloud", "Stonebridge Consulting", "Greenfield Data Co",
)  # fmt: skip
_CUSTOMERS: tuple[str, ...] = (
    "Globex", "Initech", "Umbrella Health", "Hooli", "Vandelay Industries", "Soylent",
    "Wayne Logistics", "Stark Analytics", "Wonka Foods", "Tyrell Systems", "Cyberdyne",
    "Oscorp", "Duff Brewing", "Pied Piper", "Massive Dynamic", "Aperture Labs", "Black Mesa",
    "Monarch Solutions", "Dunder Mifflin", "Sterling Cooper", "Prestige Worldwide",
    "Bluth Company", "Kramerica", "Nakatomi Trading", "Gekko & Co", "Wernham Hogg",
    "Virtucon", "Spacely Sprockets", "Cogswell Cogs", "Gringotts Bank", "Ollivander Supply",
    "Oceanic Airlines", "Dharma Research", "Weyland Freight", "Rekall Travel", "Zorg Industries",
    "Sirius Cybernetics", "InGen Bio", "Yoyodyne", "Blue Sun", "Tessier-Ashpool", "Halcyon Foods",
)  # fmt: skip
_DOMAIN_SUFFIXES = frozenset({"corp", "inc", "llc", "ltd", "gmbh", "co"})
_MANAGERS: tuple[str, ...] = (
    "maria.lopez@example.com",
    "james.chen@example.com",
    "priya.nair@example.com",
    "tom.becker@example.com",
)
_FIRST_NAMES: tuple[str, ...] = (
    "anna", "ben", "carlos", "dana", "elena", "farid", "grace", "hiro", "isabel", "jonas",
    "kate", "liam", "mei", "nora", "omar", "paula", "raj", "sofia", "tariq", "yuki",
)  # fmt: skip
_LAST_NAMES: tuple[str, ...] = (
    "adams", "baker", "costa", "dubois", "evans", "fischer", "garcia", "hansen", "ito",
    "jensen", "kowalski", "larsen", "moreau", "novak", "okafor", "patel", "quinn", "rossi",
    "silva", "tanaka",
)  # fmt: skip
_CONTACT_COUNTS = _Weighted([(1, 30.0), (2, 45.0), (3, 25.0)])
_CURRENCIES = _Weighted([("USD", 84.5), ("EUR", 10.0), ("GBP", 5.0), ("CHF", 0.5)])
_DEAL_TYPES: _Weighted[DealType | None] = _Weighted(
    [(DealType.NEW, 55.0), (DealType.UPSELL, 25.0), (DealType.RENEWAL, 15.0), (None, 5.0)]
)
_PARTNER_LEAD_SOURCES = _Weighted(
    [
        ("Partner Referral", 45.0), ("Partner", 15.0), ("Seminar - Partner", 8.0), ("Web", 8.0),
        ("Webinar", 6.0), ("Trade Show", 5.0), ("Email", 3.0), ("Podcast", 1.0), ("", 7.0),
    ]
)  # fmt: skip
_DIRECT_LEAD_SOURCES = _Weighted(
    [
        ("Web", 22.0), ("Webinar", 12.0), ("Trade Show", 10.0), ("Advertisement", 10.0),
        ("Paid Search", 10.0), ("Organic Search", 8.0), ("Email", 6.0), ("Phone Inquiry", 5.0),
        ("Employee Referral", 4.0), ("Word of Mouth", 3.0), ("Podcast", 2.0),
        ("LinkedIn Live", 1.0), ("", 7.0),
    ]
)  # fmt: skip
_EXPLICIT_CHANNEL_RATE = 0.05  # deals whose channel cell is filled in (else: from lead_source)
_NO_AMOUNT_RATE = 0.02
_UNDATED_REGISTRATION_RATE = 0.15  # registered deals without registered_on
_CSAT_RATE = 0.5  # won deals with a csat
_NO_OWNER_RATE = 0.04  # partners without a channel manager
_REGIONS = ("AMER", "EMEA", "APAC")
_SKIP_RATE = 0.2  # deals that skip _SKIPPABLE_STAGE
_MIN_AMOUNT, _MAX_AMOUNT = 5_000, 250_000
_COURSES = _Weighted(
    [
        ("Partner Onboarding", 3.0), ("Product Fundamentals", 4.0), ("Sales Certification", 3.0),
        ("Technical Certification", 2.0), ("Advanced Implementation", 2.0),
        ("Solution Selling", 2.0), ("Pricing & Packaging", 1.5), ("Security & Compliance", 1.0),
    ]
)  # fmt: skip
_COMMENT_RATE = 0.35
_ESCAPING_COMMENT = "Deal desk is quick & helpful, but the <b>partner portal</b> keeps timing out."
_COMMENTS_BY_BAND: tuple[tuple[int, tuple[str, ...]], ...] = (
    (6, (  # detractors: 0-6
        "Registered deals still get poached by direct sales.",
        'Two things:\n1) commissions are paid late\n2) "registered" is not respected',
        "Lead sharing has dried up this year.",
        "Too many price changes, our customers are confused.",
    )),
    (8, (  # passives: 7-8
        "Good product, the partner portal could be faster.",
        "Training is useful; would like more hands-on labs.",
        "MDF approvals take too long.",
    )),
    (10, (  # promoters: 9-10
        "Great channel team, very responsive.",
        "Joint webinars bring us real pipeline.",
        "Best partner program we work with.",
        "Certification paid off: we win more technical evaluations.",
    )),
)  # fmt: skip

# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Partner:
    id: str
    name: str
    archetype: Archetype
    tier: str
    joined_on: date
    left_on: date | None
    owner_email: str
    contact_emails: tuple[str, ...]
    region: str


class _Deal(NamedTuple):  # a NamedTuple: thousands are built, and it is quicker than a dataclass
    id: str
    partner_id: str | None
    name: str
    amount_cents: int | None
    currency: str
    status: DealStatus
    created_on: date
    closed_on: date | None
    expected_close_on: date | None
    type: DealType | None
    lead_source: str
    channel: Channel | None
    registered: bool
    registered_on: date | None
    csat: int | None
    stages: tuple[tuple[str, _Stamp], ...]  # the stage history, oldest first


@dataclass(frozen=True)
class _Training:
    partner_id: str
    course: str
    completed_on: date


@dataclass(frozen=True)
class _Response:
    partner_id: str
    respondent: str
    campaign_id: str
    score: int
    comment: str
    submitted_at: _Stamp


_ID_ALPHABET = string.ascii_letters + string.digits
_ID_SUFFIX_LENGTH = 5


@dataclass
class _Context:
    rng: random.Random
    as_of: date
    used_ids: set[str] = field(default_factory=set)
    start: date = field(init=False)  # the first day of the history
    decline_start: date = field(init=False)  # a declining partner is poor from this day on

    def __post_init__(self) -> None:
        self.start = self.days_ago(HISTORY_DAYS - 1)
        self.decline_start = self.days_ago(DECLINE_DAYS - 1)

    def new_id(self, prefix: str) -> str:
        """A unique Salesforce-style id: the prefix and five random letters or digits."""
        size = len(_ID_ALPHABET)
        while True:
            number = int(self.rng.random() * size**_ID_SUFFIX_LENGTH)
            suffix = ""
            for _ in range(_ID_SUFFIX_LENGTH):
                number, digit = divmod(number, size)
                suffix += _ID_ALPHABET[digit]
            candidate = prefix + suffix
            if candidate not in self.used_ids:
                self.used_ids.add(candidate)
                return candidate

    def days_ago(self, days: int) -> date:
        return self.as_of - timedelta(days=days)

    def profile(self, partner: _Partner | None, on: date) -> _Profile:
        if partner is None:
            return _DIRECT
        if partner.archetype is Archetype.DECLINING and on >= self.decline_start:
            return _DECLINED
        return _PROFILES[partner.archetype]


# --- partners -----------------------------------------------------------------------------


def _archetypes(rng: random.Random) -> list[Archetype]:
    """One archetype per name of _PARTNER_NAMES, Acme Corp always strong."""
    others = [arch for arch, count in _ARCHETYPE_COUNTS for _ in range(count)]
    others.remove(Archetype.STRONG)
    rng.shuffle(others)
    acme = _PARTNER_NAMES.index(ACME)
    return [*others[:acme], Archetype.STRONG, *others[acme:]]


def _domain(name: str) -> str:
    """`Acme Corp` -> `acme.example`, `Café Numérique` -> `cafe-numerique.example`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = ["".join(ch for ch in word if ch.isalnum()) for word in ascii_name.lower().split()]
    kept = [word for word in words if word and word not in _DOMAIN_SUFFIXES]
    return "-".join(kept) + ".example"


def _contacts(rng: random.Random, domain: str) -> tuple[str, ...]:
    emails: list[str] = []
    for _ in range(_CONTACT_COUNTS.pick(rng)):
        email = f"{_choice(rng, _FIRST_NAMES)}.{_choice(rng, _LAST_NAMES)}@{domain}"
        if email not in emails:
            emails.append(email)
    return tuple(emails)


def _partners(ctx: _Context) -> list[_Partner]:
    rng = ctx.rng
    left_ranges = iter(_LEFT_DAYS_AGO)
    partners = []
    for name, archetype in zip(_PARTNER_NAMES, _archetypes(rng), strict=True):
        profile = _PROFILES[archetype]
        left_on = None
        if archetype is Archetype.DEPARTED:
            left_on = ctx.days_ago(_randint(rng, *next(left_ranges)))
        partners.append(
            _Partner(
                id=ctx.new_id("0015g00000"),
                name=name,
                archetype=archetype,
                tier=profile.tiers.pick(rng),
                joined_on=ctx.days_ago(_randint(rng, *profile.joined_days_ago)),
                left_on=left_on,
                owner_email="" if rng.random() < _NO_OWNER_RATE else _choice(rng, _MANAGERS),
                contact_emails=_contacts(rng, _domain(name)),
                region=_region(name),
            )
        )
    return sorted(partners, key=lambda partner: (partner.joined_on, partner.id))


def _region(name: str) -> str:
    """A region fixed by the name (no draw from the generator, so every other value stays)."""
    return _REGIONS[sum(name.encode()) % len(_REGIONS)]


# --- deals --------------------------------------------------------------------------------


def _deal_days(ctx: _Context, partner: _Partner | None) -> Iterator[date]:
    """Creation dates of one partner's (or direct sales') deals, week by week, growing over time."""
    first, last = ctx.start, ctx.as_of
    if partner is not None:
        first = max(first, partner.joined_on)
        last = min(last, partner.left_on or last)
    week = first
    while week <= last:
        days = min(7, (last - week).days + 1)
        growth = 0.75 + 0.5 * (week - ctx.start).days / HISTORY_DAYS
        mean = ctx.profile(partner, week).deals_per_week * growth * days / 7
        for _ in range(poisson(ctx.rng, mean)):
            yield week + timedelta(days=_randint(ctx.rng, 0, days - 1))
        week += timedelta(days=7)


def _outcome(
    ctx: _Context, profile: _Profile, start: date, cycle: int, left_on: date | None
) -> tuple[DealStatus, date]:
    """The deal's status and its close date (expected close date while open)."""
    close = start + timedelta(days=cycle)
    if left_on is not None and close > left_on:
        return DealStatus.LOST, left_on  # dropped when the partnership ended
    if close > ctx.as_of:
        return DealStatus.OPEN, close
    if (ctx.as_of - start).days < 365 and ctx.rng.random() < STALE_RATE:
        return DealStatus.OPEN, close  # stale: the expected close date has passed
    won = ctx.rng.random() < profile.win_rate
    return (DealStatus.WON if won else DealStatus.LOST), close


def _planned_stages(rng: random.Random, status: DealStatus) -> list[str]:
    """The stages a deal enters, in pipeline order; an open deal plans to be won."""
    stages = [
        stage for stage in _OPEN_STAGES if stage != _SKIPPABLE_STAGE or rng.random() >= _SKIP_RATE
    ]
    if status is DealStatus.LOST:
        return [*stages[: _randint(rng, 1, len(stages))], _LOST_STAGE]
    return [*stages, _WON_STAGE]


def _stage_offsets(rng: random.Random, stages: Sequence[str], span: int) -> list[int]:
    """Day offsets from the deal's start at which each stage is entered; the last at `span`."""
    durations = [_STAGE_WEIGHTS[stage] * (0.5 + rng.random()) for stage in stages[:-1]]
    total = sum(durations)
    starts = [int(span * elapsed / total) for elapsed in accumulate(durations, initial=0.0)]
    return [*starts[:-1], span]


def _timestamps(rng: random.Random, start: date, offsets: Sequence[int]) -> list[_Stamp]:
    """Strictly increasing working-hours UTC timestamps on the given (sorted) day offsets."""
    low, high = WORKDAY_SECONDS
    midnight = start.toordinal() * _DAY_SECONDS
    # Sorting keeps every stamp on its own day, as the time of day stays within working hours.
    stamps = sorted(
        midnight + offset * _DAY_SECONDS + _randint(rng, low, high) for offset in offsets
    )
    for index in range(1, len(stamps)):  # two changes in the same second: one second apart
        stamps[index] = max(stamps[index], stamps[index - 1] + 1)
    return stamps


def _iso_timestamp(stamp: _Stamp, utc_suffix: str, days: dict[int, str] | None = None) -> str:
    """`2026-03-04T14:23:11Z` (or with `+00:00`); `days` caches the dates' text by ordinal."""
    ordinal, second = divmod(stamp, _DAY_SECONDS)
    minute, second = divmod(second, 60)
    day = days.get(ordinal) if days is not None else None
    if day is None:
        day = date.fromordinal(ordinal).isoformat()
        if days is not None:
            days[ordinal] = day
    return f"{day}T{_CLOCK[minute]}:{second:02d}{utc_suffix}"


def _stage_history(
    ctx: _Context, status: DealStatus, start: date, close: date
) -> tuple[tuple[str, _Stamp], ...]:
    """Prospecting on the start day, through the pipeline, the closing stage on close."""
    stages = _planned_stages(ctx.rng, status)
    offsets = _stage_offsets(ctx.rng, stages, (close - start).days)
    if status is DealStatus.OPEN:
        elapsed = (ctx.as_of - start).days
        reached = sum(1 for offset in offsets[:-1] if offset <= elapsed)
        if close < ctx.as_of:  # stale deals got stuck somewhere
            reached = _randint(ctx.rng, 1, reached)
        stages, offsets = stages[:reached], offsets[:reached]
    return tuple(zip(stages, _timestamps(ctx.rng, start, offsets), strict=True))


def _amount_cents(rng: random.Random, profile: _Profile) -> int | None:
    if rng.random() < _NO_AMOUNT_RATE:
        return None
    amount = 0.0
    while not _MIN_AMOUNT <= amount <= _MAX_AMOUNT:  # redraw rather than pile up at the bounds
        amount = rng.lognormvariate(math.log(profile.median_amount), 0.7)
    return round(amount / 50) * 50 * 100


def _deal_name(rng: random.Random, deal_type: DealType | None, cents: int | None, on: date) -> str:
    customer = _choice(rng, _CUSTOMERS)
    seats = max(5, round((cents or 1_000_000) / 100 / _choice(rng, (300, 500, 800)) / 5) * 5)
    if deal_type is DealType.RENEWAL:
        return f"{customer} – Renewal {on.year + 1}"
    if deal_type is DealType.UPSELL:
        return f"{customer} – Expansion +{seats} seats"
    return f"{customer} – {seats} seats"


def _registration(
    ctx: _Context, profile: _Profile, partner: _Partner | None, start: date, last: date
) -> tuple[bool, date | None]:
    if partner is None or ctx.rng.random() >= profile.registration_rate:
        return False, None
    if ctx.rng.random() < _UNDATED_REGISTRATION_RATE:
        return True, None  # the spec then uses created_on
    return True, min(start + timedelta(days=_randint(ctx.rng, 0, 5)), last)


def _deal(ctx: _Context, partner: _Partner | None, start: date) -> _Deal:
    rng = ctx.rng
    profile = ctx.profile(partner, start)
    cycle = min(300, max(1, round(rng.lognormvariate(math.log(profile.cycle_days), 0.5))))
    left_on = partner.left_on if partner is not None else None
    status, close = _outcome(ctx, profile, start, cycle, left_on)
    closed = status is not DealStatus.OPEN
    deal_type = _DEAL_TYPES.pick(rng)
    cents = _amount_cents(rng, profile)
    sources = _DIRECT_LEAD_SOURCES if partner is None else _PARTNER_LEAD_SOURCES
    explicit_channel = rng.random() < _EXPLICIT_CHANNEL_RATE
    registered, registered_on = _registration(ctx, profile, partner, start, min(close, ctx.as_of))
    return _Deal(
        id=ctx.new_id("0065g00000"),
        partner_id=partner.id if partner is not None else None,
        name=_deal_name(rng, deal_type, cents, start),
        amount_cents=cents,
        currency=_CURRENCIES.pick(rng),
        status=status,
        created_on=start,
        closed_on=close if closed else None,
        expected_close_on=None if closed else close,
        type=deal_type,
        lead_source=sources.pick(rng),
        channel=_choice(rng, tuple(Channel)) if explicit_channel else None,
        registered=registered,
        registered_on=registered_on,
        csat=profile.csat.pick(rng)
        if status is DealStatus.WON and rng.random() < _CSAT_RATE
        else None,
        stages=_stage_history(ctx, status, start, close),
    )


def _backdate_wins(ctx: _Context, deals: list[_Deal], staying: set[str]) -> list[_Deal]:
    """Dirty data: a few won deals get a created_on after their closed_on.

    Only direct deals and deals of partners that have not left, so no deal appears after a
    partner's left_on; the stage history keeps the true dates.
    """
    latest = ctx.days_ago(31)
    candidates = [
        index
        for index, deal in enumerate(deals)
        if deal.status is DealStatus.WON
        and deal.closed_on is not None
        and deal.closed_on <= latest
        and (deal.partner_id is None or deal.partner_id in staying)
    ]
    chosen = sorted(ctx.rng.sample(candidates, min(BACKDATED_WINS, len(candidates))))
    for index in chosen:
        closed_on = deals[index].closed_on
        assert closed_on is not None
        created_on = closed_on + timedelta(days=_randint(ctx.rng, 2, 30))
        deals[index] = deals[index]._replace(created_on=created_on)
    return deals


def _deals(ctx: _Context, partners: Sequence[_Partner]) -> list[_Deal]:
    deals = [
        _deal(ctx, partner, day)
        for partner in [*partners, None]
        for day in _deal_days(ctx, partner)
    ]
    staying = {partner.id for partner in partners if partner.left_on is None}
    deals = _backdate_wins(ctx, deals, staying)
    return sorted(deals, key=lambda deal: (deal.created_on, deal.id))


# --- trainings and surveys ----------------------------------------------------------------


def _partner_trainings(ctx: _Context, partner: _Partner) -> list[_Training]:
    profile = _PROFILES[partner.archetype]
    first = max(ctx.start, partner.joined_on)
    last = min(ctx.as_of, partner.left_on or ctx.as_of)
    if partner.archetype is Archetype.DECLINING:
        last = ctx.decline_start - timedelta(days=1)  # stopped training when it declined
    trainings: list[_Training] = []
    for _ in range(_randint(ctx.rng, *profile.trainings)):
        completed_on = first + timedelta(days=_randint(ctx.rng, 0, max(0, (last - first).days)))
        training = _Training(partner.id, _COURSES.pick(ctx.rng), completed_on)
        if training not in trainings:
            trainings.append(training)
    return trainings


def _trainings(ctx: _Context, partners: Sequence[_Partner]) -> list[_Training]:
    trainings = [t for partner in partners for t in _partner_trainings(ctx, partner)]
    return sorted(trainings, key=lambda t: (t.completed_on, t.partner_id, t.course))


def _campaigns(ctx: _Context) -> list[tuple[str, date]]:
    """Quarterly NPS campaigns (id, send date: the 15th day of the quarter) in the history."""
    campaigns = []
    for year in range(ctx.start.year, ctx.as_of.year + 1):
        for quarter in range(1, 5):
            sent = date(year, 3 * quarter - 2, 15)
            if ctx.start <= sent <= ctx.as_of:
                campaigns.append((f"nps-{year}-Q{quarter}", sent))
    return campaigns


def _comment(rng: random.Random, score: int) -> str:
    if rng.random() >= _COMMENT_RATE:
        return ""
    comments = next(texts for top, texts in _COMMENTS_BY_BAND if score <= top)
    return _choice(rng, comments)


def _campaign_responses(
    ctx: _Context, partner: _Partner, campaign_id: str, sent: date
) -> Iterator[_Response]:
    if not (partner.joined_on <= sent and (partner.left_on is None or sent < partner.left_on)):
        return
    profile = ctx.profile(partner, sent)
    for respondent in partner.contact_emails:
        if ctx.rng.random() >= profile.survey_rate:
            continue
        day = sent + timedelta(days=_randint(ctx.rng, 0, 20))
        (submitted_at,) = _timestamps(ctx.rng, day, [0])
        score = profile.nps.pick(ctx.rng)
        if day <= min(ctx.as_of, partner.left_on or ctx.as_of):
            yield _Response(
                partner.id, respondent, campaign_id, score, _comment(ctx.rng, score), submitted_at
            )


def _responses(ctx: _Context, partners: Sequence[_Partner]) -> list[_Response]:
    responses = sorted(
        (
            response
            for campaign_id, sent in _campaigns(ctx)
            for partner in partners
            for response in _campaign_responses(ctx, partner, campaign_id, sent)
        ),
        key=lambda r: (r.submitted_at, r.partner_id, r.respondent),
    )
    # Acme's latest answer carries markup, so every renderer's escaping shows up in the demo.
    acme = next(partner.id for partner in partners if partner.name == ACME)
    latest = max((i for i, r in enumerate(responses) if r.partner_id == acme), default=None)
    if latest is not None:
        responses[latest] = replace(responses[latest], comment=_ESCAPING_COMMENT)
    return responses


# --- CSV ----------------------------------------------------------------------------------


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _money(cents: int | None) -> str:
    return "" if cents is None else f"{cents // 100}.{cents % 100:02d}"


def _partner_row(partner: _Partner) -> list[str]:
    return [
        partner.id, partner.name, partner.tier, _day(partner.joined_on), _day(partner.left_on),
        partner.owner_email, ";".join(partner.contact_emails), partner.region,
    ]  # fmt: skip


def _deal_row(deal: _Deal) -> list[str]:
    return [
        deal.id, deal.partner_id or "", deal.name, _money(deal.amount_cents), deal.currency,
        deal.stages[-1][0], deal.status.value, _day(deal.created_on), _day(deal.closed_on),
        _day(deal.expected_close_on), deal.type.value if deal.type else "", deal.lead_source,
        deal.channel.value if deal.channel else "", "true" if deal.registered else "false",
        _day(deal.registered_on), str(deal.csat) if deal.csat is not None else "",
    ]  # fmt: skip


def _stage_rows(deals: Iterable[_Deal]) -> Iterator[list[str]]:
    days: dict[int, str] = {}
    for deal in deals:
        for stage, entered_at in deal.stages:
            yield [deal.id, stage, _iso_timestamp(entered_at, "Z", days)]


def _training_row(training: _Training) -> list[str]:
    return [training.partner_id, training.course, _day(training.completed_on)]


def _response_rows(responses: Iterable[_Response]) -> Iterator[list[str]]:
    for number, r in enumerate(responses, start=1):
        yield [
            f"demo-sr-{number:05d}", r.partner_id, r.respondent, r.campaign_id, str(r.score),
            r.comment, _iso_timestamp(r.submitted_at, "+00:00"),
        ]  # fmt: skip


def _customer_row(customer: DemoCustomer) -> list[str]:
    return [
        customer.id, customer.partner_id or "", customer.name,
        _day(customer.became_customer_on), _day(customer.churned_on),
        _money(customer.mrr_cents), customer.currency, _day(customer.onboarded_on),
        customer.referred_by or "",
    ]  # fmt: skip


def _ticket_row(ticket: DemoTicket) -> list[str]:
    return [ticket.id, ticket.customer_id, ticket.opened_at.isoformat() + "Z"]


def _demo_partners(
    partners: Sequence[_Partner], trainings: Sequence[_Training]
) -> list[DemoPartner]:
    days: dict[str, list[date]] = {}
    for training in trainings:
        days.setdefault(training.partner_id, []).append(training.completed_on)
    return [
        DemoPartner(
            p.id, p.archetype.value, p.joined_on, p.left_on, tuple(sorted(days.get(p.id, [])))
        )
        for p in partners
    ]


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Write the header and rows; return the number of rows."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


PARTNER_FIELDS = (
    "id", "name", "tier", "joined_on", "left_on", "owner_email", "contact_emails", "region",
)  # fmt: skip
DEAL_FIELDS = (
    "id", "partner_id", "name", "amount", "currency", "stage", "status", "created_on",
    "closed_on", "expected_close_on", "type", "lead_source", "channel", "registered",
    "registered_on", "csat",
)  # fmt: skip
STAGE_CHANGE_FIELDS = ("deal_id", "stage", "entered_at")
TRAINING_FIELDS = ("partner_id", "course", "completed_on")
SURVEY_RESPONSE_FIELDS = (
    "id", "partner_id", "respondent", "campaign_id", "score", "comment", "submitted_at",
)  # fmt: skip
CUSTOMER_FIELDS = (
    "id", "partner_id", "name", "became_customer_on", "churned_on", "mrr", "currency",
    "onboarded_on", "referred_by",
)  # fmt: skip
TICKET_FIELDS = ("id", "customer_id", "opened_at")


def write_demo_data(folder: Path, as_of: date, seed: int = 2026) -> DemoSummary:
    """Write the demo program's CSV files and the DEMO_MARKER into `folder` (created if missing).

    Existing files of the same names are overwritten; deciding whether a folder may be
    overwritten (it holds the marker) is the caller's business.
    """
    ctx = _Context(random.Random(seed), as_of)
    partners = _partners(ctx)
    deals = _deals(ctx, partners)
    trainings = _trainings(ctx, partners)
    responses = _responses(ctx, partners)
    customers, tickets = demo_customers(
        seed, as_of, ctx.start, ctx.decline_start, _demo_partners(partners, trainings)
    )

    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text(
        f"Generated by partner-kpi demo data; do not edit.\nas_of: {as_of.isoformat()}\n"
        f"seed: {seed}\n",
        encoding="utf-8",
    )
    return DemoSummary(
        partners=_write_csv(folder / "partners.csv", PARTNER_FIELDS, map(_partner_row, partners)),
        deals=_write_csv(folder / "deals.csv", DEAL_FIELDS, map(_deal_row, deals)),
        stage_changes=_write_csv(
            folder / "stage_changes.csv", STAGE_CHANGE_FIELDS, _stage_rows(deals)
        ),
        trainings=_write_csv(
            folder / "trainings.csv", TRAINING_FIELDS, map(_training_row, trainings)
        ),
        survey_responses=_write_csv(
            folder / "survey_responses.csv", SURVEY_RESPONSE_FIELDS, _response_rows(responses)
        ),
        customers=_write_csv(
            folder / "customers.csv", CUSTOMER_FIELDS, map(_customer_row, customers)
        ),
        tickets=_write_csv(folder / "tickets.csv", TICKET_FIELDS, map(_ticket_row, tickets)),
    )
