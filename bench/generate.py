"""A deterministic, large partner program for the KPI benchmark, loaded straight into the store.

`ensure_database(spec, path)` returns a SQLite store file holding `spec.partners` partners and
`spec.deals` deals (about 35% direct) created over `HISTORY_DAYS` days ending at `AS_OF`, with
their stage history (3-5 changes per closed deal, 1-4 per open one), training completions,
survey answers, and `spec.customers` customers (one per 20 deals, about 35% direct) with
`spec.tickets` support tickets (five per customer). Every draw comes from one
`random.Random(seed)` in a fixed order, so the same (seed, partners, deals) gives the same rows.

The schema is created by the store's own migrations (`kpi.store.open_store`); the rows are then
written with SQLAlchemy Core bulk inserts (executemany of dicts, `CHUNK` rows at a time) inside
one transaction. `row_hash` is an arbitrary 32-character string and `source` is "bench": no
sync ever compares them. `stage_changes.left_at` is either set while generating (stays
"direct", the default) or left null and filled by `Store.refresh_stays` afterwards (stays
"refresh"); the load report times both so the faster can be chosen.

A `bench_meta` table, written in the same transaction, records what the file holds; a later
run reuses the file only when the meta matches (a half-written file has no meta and is rebuilt).
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from bisect import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, text

from bench.harness import peak_mb
from kpi import rollups, schema
from kpi.record_keys import natural_key
from kpi.store import open_store

GENERATOR_VERSION = "2"  # 2: customers and support tickets
AS_OF = date(2026, 11, 22)  # the last day of the data
HISTORY_DAYS = 1000  # deals are created over the last ~2.75 years
CHUNK = 20_000  # rows per executemany
SOURCE = "bench"
PIPELINE: tuple[str, ...] = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
)
_MIDDLE = PIPELINE[1:5]
_OFF_PIPELINE = "Technical Review"  # a stage the pipeline does not list (ends a stay, not shown)
DIRECT_SHARE = 0.35
CURRENCY_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}  # CHF deliberately has none

META_TABLE = "bench_meta"

FIRST_DAY = AS_OF - timedelta(days=HISTORY_DAYS - 1)
_BASE = datetime.combine(FIRST_DAY, datetime.min.time())
_DAY = 86_400


class _Weighted:
    """A fixed weighted choice with one rng.random() per draw (rng.choices is slow)."""

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.values = tuple(value for value, _ in pairs)
        self.cum = tuple(accumulate(weight for _, weight in pairs))

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect(self.cum, rng.random() * self.cum[-1])]


def _randint(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def _day(index: int) -> date:
    """The date `index` days after FIRST_DAY (negative: before it)."""
    return FIRST_DAY + timedelta(days=index)


def _stamp(seconds: int) -> datetime:
    """A naive-UTC timestamp `seconds` after FIRST_DAY's midnight."""
    return _BASE + timedelta(seconds=seconds)


_TYPES = _Weighted([("new", 55.0), ("upsell", 25.0), ("renewal", 15.0), (None, 5.0)])
_CURRENCIES = _Weighted([("USD", 84.7), ("EUR", 10.0), ("GBP", 5.0), ("CHF", 0.3)])
_PARTNER_SOURCES = _Weighted(
    [
        (("Partner Referral", "earned"), 45.0), (("Partner", "earned"), 15.0),
        (("Seminar - Partner", "earned"), 8.0), (("Web", "owned"), 8.0),
        (("Webinar", "owned"), 6.0), (("Trade Show", "paid"), 5.0), (("Email", "owned"), 3.0),
        (("Podcast", "owned"), 1.0), ((None, "other"), 7.0), (("Cold Call", "other"), 2.0),
    ]
)  # fmt: skip
_DIRECT_SOURCES = _Weighted(
    [
        (("Web", "owned"), 22.0), (("Webinar", "owned"), 12.0), (("Trade Show", "paid"), 10.0),
        (("Advertisement", "paid"), 10.0), (("Paid Search", "paid"), 10.0),
        (("Organic Search", "earned"), 8.0), (("Email", "owned"), 6.0),
        (("Phone Inquiry", "owned"), 5.0), (("Employee Referral", "earned"), 4.0),
        (("Word of Mouth", "earned"), 3.0), (("LinkedIn Live", "other"), 2.0),
        ((None, "other"), 8.0),
    ]
)  # fmt: skip
_CSAT = _Weighted([(1, 3.0), (2, 7.0), (3, 20.0), (4, 40.0), (5, 30.0)])
_TIERS = _Weighted([("Gold", 1.0), ("Silver", 3.0), ("Registered", 5.0), (None, 1.0)])
_COURSES = (
    "Partner Onboarding", "Product Fundamentals", "Sales Certification",
    "Technical Certification", "Advanced Implementation", "Solution Selling",
    "Pricing & Packaging", "Security & Compliance",
)  # fmt: skip
_CUSTOMERS = (
    "Globex", "Initech", "Umbrella Health", "Hooli", "Vandelay Industries", "Soylent",
    "Wayne Logistics", "Stark Analytics", "Wonka Foods", "Tyrell Systems", "Cyberdyne",
    "Oscorp", "Pied Piper", "Massive Dynamic", "Aperture Labs", "Dunder Mifflin",
    "Sterling Cooper", "Bluth Company", "Nakatomi Trading", "Virtucon", "Oceanic Airlines",
)  # fmt: skip
_COMMENTS = (
    "Great channel team, very responsive.",
    "Registered deals still get poached by direct sales.",
    "MDF approvals take too long.",
    "Joint webinars bring us real pipeline.",
)


@dataclass(frozen=True)
class BenchSpec:
    """What a bench database holds; two files with equal specs hold the same rows."""

    partners: int = 2_000
    deals: int = 1_000_000
    seed: int = 42
    stays: str = "direct"  # "direct": left_at set while generating; "refresh": refresh_stays

    @property
    def customers(self) -> int:
        return self.deals // 20  # 50,000 beside a million deals

    @property
    def tickets(self) -> int:
        return 5 * self.customers

    def marker(self) -> dict[str, str]:
        return {
            "generator_version": GENERATOR_VERSION,
            "partners": str(self.partners),
            "deals": str(self.deals),
            "seed": str(self.seed),
            "stays": self.stays,
            "as_of": AS_OF.isoformat(),
        }


@dataclass
class LoadReport:
    path: str
    reused: bool
    seconds: float  # wall time of the whole build (0 when reused)
    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    file_mb: float = 0.0
    loader_peak_rss_mb: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- the program ------------------------------------------------------------------------------


@dataclass
class _Partner:
    id: str
    joined: int  # day index of joined_on (may be before FIRST_DAY)
    left: int | None  # day index of left_on
    weight: float  # relative number of deals
    win_rate: float
    amount_scale: float
    nps: _Weighted
    training_rate: float  # courses per year
    survey_rate: float


def _partners(rng: random.Random, count: int) -> list[_Partner]:
    partners = []
    for n in range(count):
        if rng.random() < 0.6:
            joined = -_randint(rng, 1, 1500)  # joined before the history starts
        else:
            joined = _randint(rng, 0, HISTORY_DAYS - 5)
        left = None
        if rng.random() < 0.1 and joined + 120 < HISTORY_DAYS - 1:
            left = _randint(rng, max(joined + 120, 1), HISTORY_DAYS - 1)
        quality = rng.random()  # drives win rate, NPS and training together, as in real life
        promoters = 10 + 50 * quality
        detractors = 40 - 30 * quality
        partners.append(
            _Partner(
                id=f"001BN{n:013d}",
                joined=joined,
                left=left,
                weight=rng.lognormvariate(0.0, 1.0),
                win_rate=0.15 + 0.45 * quality * rng.random() ** 0.3,
                amount_scale=rng.lognormvariate(0.0, 0.4),
                nps=_Weighted(
                    [(s, detractors / 7) for s in range(7)]
                    + [(s, (100 - promoters - detractors) / 2) for s in (7, 8)]
                    + [(s, promoters / 2) for s in (9, 10)]
                ),
                training_rate=rng.lognormvariate(math.log(3 + 5 * quality), 0.6),
                survey_rate=0.3 + 0.5 * rng.random(),
            )
        )
    return partners


def _partner_rows(rng: random.Random, partners: list[_Partner]) -> list[dict[str, Any]]:
    rows = []
    for p in partners:
        n = int(p.id[5:])
        contacts = [f"contact{k}@partner{n}.example" for k in range(_randint(rng, 1, 3))]
        rows.append(
            {
                "id": p.id,
                "name": f"Partner {n:05d} {_CUSTOMERS[n % len(_CUSTOMERS)]} Consulting",
                "tier": _TIERS.pick(rng),
                "joined_on": _day(p.joined),
                "left_on": _day(p.left) if p.left is not None else None,
                "owner_email": f"manager{n % 25}@example.com",
                "contact_emails": contacts,
                "source": SOURCE,
                "row_hash": f"{n:032x}",
            }
        )
    return rows


def _daily_counts(total: int) -> list[int]:
    """Deals created per day: growing ~60% over the history, quieter at weekends, summing to
    exactly `total`."""
    weights = []
    for i in range(HISTORY_DAYS):
        weekday = _day(i).weekday()
        weights.append((1.0 + 0.6 * i / HISTORY_DAYS) * (0.25 if weekday >= 5 else 1.0))
    scale = total / sum(weights)
    counts, carried, done = [], 0.0, 0
    for weight in weights:
        carried += weight * scale
        n = round(carried) - done
        counts.append(n)
        done += n
    counts[-1] += total - done
    return counts


class _Buffer:
    """Rows of one table, written CHUNK at a time."""

    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection, self.table = connection, table
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            started = time.perf_counter()
            self.connection.execute(self.table.insert(), self.rows)
            self.seconds += time.perf_counter() - started
            self.count += len(self.rows)
            self.rows = []


def _deals(
    rng: random.Random,
    partners: list[_Partner],
    total: int,
    deals: _Buffer,
    changes: _Buffer,
    direct_stays: bool,
) -> None:
    last = HISTORY_DAYS - 1
    by_join = sorted(partners, key=lambda p: p.joined)
    number = 0
    hashes = 0
    for day, count in enumerate(_daily_counts(total)):
        active = [p for p in by_join if p.joined <= day and (p.left is None or day < p.left)]
        cum = list(accumulate(p.weight for p in active))
        for _ in range(count):
            number += 1
            deal_id = f"006BN{number:013d}"
            partner: _Partner | None = None
            if active and rng.random() >= DIRECT_SHARE:
                partner = active[bisect(cum, rng.random() * cum[-1])]
            win_rate = partner.win_rate if partner else 0.30
            scale = partner.amount_scale if partner else 1.2
            length = min(540, 1 + int(rng.lognormvariate(math.log(40), 0.8)))
            planned = day + length
            start_second = day * _DAY + _randint(rng, 8 * 3600, 18 * 3600)

            currency = _CURRENCIES.pick(rng)
            original: float | None = round(rng.lognormvariate(math.log(18_000), 0.9) * scale, -1)
            if rng.random() < 0.02:
                original = None
            amount = None
            if original is not None and currency in CURRENCY_RATES:
                amount = round(original * CURRENCY_RATES[currency], 2)
            lead_source, channel = (_PARTNER_SOURCES if partner else _DIRECT_SOURCES).pick(rng)
            registered = partner is not None and rng.random() < 0.45
            registered_on = None
            if registered and rng.random() < 0.85:
                registered_on = _day(day + _randint(rng, 0, 7))
            deal_type = _TYPES.pick(rng)

            stale = planned <= last and last - planned < 365 and rng.random() < 0.015
            created_on = _day(day)
            closed_on = expected = None
            csat = None
            if planned <= last and not stale:
                won = rng.random() < win_rate
                status = "won" if won else "lost"
                closed_on = _day(planned)
                final = PIPELINE[5] if won else PIPELINE[6]
                if won and rng.random() < 0.5:
                    csat = _CSAT.pick(rng)
                if won and rng.random() < 0.0005:  # dirty data: closed before it was created
                    created_on = _day(planned + _randint(rng, 1, 30))
                middle = sorted(rng.sample(range(4), _randint(rng, 1, 3)))
                stages = [PIPELINE[0], *(_MIDDLE[i] for i in middle), final]
                end_second = planned * _DAY + _randint(rng, 7 * 3600, 20 * 3600)
            else:
                status = "open"
                expected = _day(planned) if rng.random() < 0.9 else None
                reached = min(3, int(4 * (last - day) / length))
                middle = sorted(rng.sample(range(4), reached))
                stages = [PIPELINE[0], *(_MIDDLE[i] for i in middle)]
                end_second = min(planned, last + 1) * _DAY - 1
            if rng.random() < 0.01:  # a detour through a stage outside the pipeline
                stages.insert(
                    _randint(rng, 1, len(stages) - 1) if len(stages) > 1 else 1, _OFF_PIPELINE
                )
            inner = len(stages) - (2 if status != "open" else 1)
            seconds = sorted(rng.sample(range(start_second + 1, end_second), inner))
            moments = [start_second, *seconds] + ([end_second] if status != "open" else [])
            stamps = [_stamp(s) for s in moments]

            deals.add(
                {
                    "id": deal_id,
                    "partner_id": partner.id if partner else None,
                    "name": f"{_CUSTOMERS[number % len(_CUSTOMERS)]} – {number % 490 + 10} seats",
                    "amount": amount,
                    "original_amount": original,
                    "currency": currency,
                    "stage": stages[-1],
                    "status": status,
                    "created_on": created_on,
                    "closed_on": closed_on,
                    "expected_close_on": expected,
                    "type": deal_type,
                    "lead_source": lead_source,
                    "channel": channel,
                    "registered": registered,
                    "registered_on": registered_on,
                    "csat": csat,
                    "source": SOURCE,
                    "row_hash": f"{number:032x}",
                }
            )
            for k, (stage, entered) in enumerate(zip(stages, stamps, strict=True)):
                hashes += 1
                left = stamps[k + 1] if direct_stays and k + 1 < len(stamps) else None
                changes.add(
                    {
                        "id": natural_key(deal_id, stage, entered.isoformat()),
                        "deal_id": deal_id,
                        "stage": stage,
                        "entered_at": entered,
                        "left_at": left,
                        "partner_key": partner.id if partner else "",  # what the triggers keep
                        "source": SOURCE,
                        "row_hash": f"{hashes:032x}",
                    }
                )


def _trainings(rng: random.Random, partners: list[_Partner], out: _Buffer) -> None:
    for p in partners:
        first, last = max(p.joined, 0), (p.left if p.left is not None else HISTORY_DAYS)
        if last <= first:
            continue
        count = int(p.training_rate * (last - first) / 365 * (0.7 + 0.6 * rng.random()))
        seen: set[tuple[str, int]] = set()
        for _ in range(count):
            key = (_COURSES[int(rng.random() * len(_COURSES))], _randint(rng, first, last - 1))
            if key in seen:
                continue
            seen.add(key)
            day = _day(key[1])
            out.add(
                {
                    "id": natural_key(p.id, key[0], day.isoformat()),
                    "partner_id": p.id,
                    "course": key[0],
                    "completed_on": day,
                    "source": SOURCE,
                    "row_hash": f"{out.count + len(out.rows):032x}",
                }
            )


def _surveys(rng: random.Random, partners: list[_Partner], out: _Buffer) -> None:
    number = 0
    quarter = date(FIRST_DAY.year, (FIRST_DAY.month - 1) // 3 * 3 + 1, 1)
    while quarter <= AS_OF:
        campaign = f"nps-{quarter.year}-Q{(quarter.month - 1) // 3 + 1}"
        start = (quarter - FIRST_DAY).days
        for p in partners:
            if not (p.joined <= start and (p.left is None or start < p.left)):
                continue
            if rng.random() >= p.survey_rate:
                continue
            for k in range(_randint(rng, 1, 3)):
                day = start + _randint(rng, 0, 27)
                if day < 0 or day >= HISTORY_DAYS:
                    continue
                number += 1
                out.add(
                    {
                        "id": f"bench-sr-{number:07d}",
                        "partner_id": p.id,
                        "respondent": f"contact{k}@partner{int(p.id[5:])}.example",
                        "campaign_id": campaign,
                        "score": p.nps.pick(rng),
                        "comment": _COMMENTS[number % 4] if rng.random() < 0.3 else None,
                        "submitted_at": _stamp(day * _DAY + _randint(rng, 7 * 3600, 20 * 3600)),
                        "source": SOURCE,
                        "row_hash": f"{number:032x}",
                    }
                )
        quarter = date(quarter.year + (quarter.month + 3 > 12), (quarter.month + 2) % 12 + 1, 1)


def _customers(
    rng: random.Random, partners: list[_Partner], spec: BenchSpec, out: _Buffer, tickets: _Buffer
) -> None:
    """Customers over the history (some from before it), a partner's share by its deal weight,
    about 35% direct; 40% churned later; a ticket's customer is drawn uniformly and the ticket
    falls in its life."""
    cum = tuple(accumulate(p.weight for p in partners))
    lives: list[tuple[int, int]] = []  # (became, end) day indexes per customer
    for n in range(spec.customers):
        owner = None
        if rng.random() >= DIRECT_SHARE:
            owner = partners[bisect(cum, rng.random() * cum[-1])]
        became = _randint(rng, -365, HISTORY_DAYS - 1)
        if owner is not None:
            became = max(became, owner.joined)
        churned = _randint(rng, became + 1, became + 900) if rng.random() < 0.4 else None
        if churned is not None and churned >= HISTORY_DAYS:
            churned = None
        mrr = None if rng.random() < 0.02 else round(rng.lognormvariate(math.log(1500), 0.8), 2)
        onboarded = became + _randint(rng, 5, 90) if rng.random() < 0.85 else None
        referrer = f"bench-cu-{_randint(rng, 0, n - 1):07d}" if n and rng.random() < 0.1 else None
        lives.append((became, churned if churned is not None else HISTORY_DAYS))
        out.add(
            {
                "id": f"bench-cu-{n:07d}",
                "partner_id": owner.id if owner is not None else None,
                "name": f"{_CUSTOMERS[n % len(_CUSTOMERS)]} {n}",
                "became_customer_on": _day(became),
                "churned_on": _day(churned) if churned is not None else None,
                "mrr": mrr,
                "original_mrr": mrr,
                "currency": "USD",
                "onboarded_on": _day(onboarded)
                if onboarded is not None and onboarded < HISTORY_DAYS
                else None,
                "referred_by": referrer,
                "source": SOURCE,
                "row_hash": f"{n:032x}",
            }
        )
    for n in range(spec.tickets if lives else 0):
        customer = _randint(rng, 0, len(lives) - 1)
        became, end = lives[customer]
        first = max(became, 0)
        day = _randint(rng, first, max(first, end - 1))
        tickets.add(
            {
                "id": f"bench-tk-{n:08d}",
                "customer_id": f"bench-cu-{customer:07d}",
                "opened_at": _stamp(day * _DAY + _randint(rng, 7 * 3600, 20 * 3600)),
                "source": SOURCE,
                "row_hash": f"{n:032x}",
            }
        )


# --- building and reusing the file ------------------------------------------------------------


def read_meta(path: Path) -> dict[str, str] | None:
    """The bench_meta of an existing file, or None when it has none (or is no database)."""
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = connection.execute(f"SELECT key, value FROM {META_TABLE}").fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return dict(rows)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def ensure_database(spec: BenchSpec, path: Path, rebuild: bool = False) -> LoadReport:
    """The bench file for `spec` at `path`: reused when its meta matches, else (re)built."""
    meta = read_meta(path)
    if not rebuild and meta is not None and all(meta.get(k) == v for k, v in spec.marker().items()):
        # A file from before the rollups (migration 0004) gets them built now, once.
        store = open_store(f"sqlite:///{path}")
        refreshed = rollups.refresh(store.engine)
        store.engine.dispose()
        if refreshed is not None:
            print(f"  built the KPI rollups of a reused file in {refreshed.seconds:,.1f} s")
        return LoadReport(
            path=str(path),
            reused=True,
            seconds=float(meta.get("load_seconds", "0")),
            phases={k[6:]: float(v) for k, v in meta.items() if k.startswith("phase:")},
            counts={k[6:]: int(v) for k, v in meta.items() if k.startswith("count:")},
            file_mb=path.stat().st_size / 1e6,
        )
    _remove(path)
    return build_database(spec, path)


def build_database(spec: BenchSpec, path: Path) -> LoadReport:
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    phases: dict[str, float] = {}
    store = open_store(f"sqlite:///{path}")  # the migrations create the schema
    phases["migrations"] = time.perf_counter() - started
    rng = random.Random(spec.seed)
    with store.engine.begin() as connection:
        # A bigger page cache for the load only (the store's default is SQLite's 2 MB).
        connection.exec_driver_sql("PRAGMA cache_size=-262144")
        # The record tables' secondary indexes (exactly as the migrations made them) are dropped
        # while the rows go in and re-created afterwards: one sorted build per index instead of
        # millions of random B-tree inserts. The primary keys stay.
        # The rollups' triggers likewise: the migration left the rollups marked stale as a whole,
        # so one rebuild after the load replaces millions of trigger runs.
        deferred = list(
            connection.exec_driver_sql(
                "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
                " AND sql IS NOT NULL"
                " AND tbl_name IN ('deals', 'stage_changes', 'trainings', 'survey_responses',"
                " 'customers', 'support_tickets')"
            )
        )
        for kind, name, _sql in deferred:
            connection.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
        partners = _partners(rng, spec.partners)
        mark = time.perf_counter()
        connection.execute(schema.partners.insert(), _partner_rows(rng, partners))
        phases["partners"] = time.perf_counter() - mark

        deals = _Buffer(connection, schema.deals)
        changes = _Buffer(connection, schema.stage_changes)
        mark = time.perf_counter()
        _deals(rng, partners, spec.deals, deals, changes, direct_stays=spec.stays == "direct")
        deals.flush()
        changes.flush()
        total = time.perf_counter() - mark
        phases["deals_and_stage_changes"] = total
        phases["insert_deals"] = deals.seconds
        phases["insert_stage_changes"] = changes.seconds
        phases["generate_deals_python"] = total - deals.seconds - changes.seconds

        mark = time.perf_counter()
        trainings = _Buffer(connection, schema.trainings)
        _trainings(rng, partners, trainings)
        trainings.flush()
        surveys = _Buffer(connection, schema.survey_responses)
        _surveys(rng, partners, surveys)
        surveys.flush()
        phases["trainings_and_surveys"] = time.perf_counter() - mark

        mark = time.perf_counter()
        customers = _Buffer(connection, schema.customers)
        tickets = _Buffer(connection, schema.support_tickets)
        _customers(rng, partners, spec, customers, tickets)
        customers.flush()
        tickets.flush()
        phases["customers_and_tickets"] = time.perf_counter() - mark

        mark = time.perf_counter()
        for _kind, _name, sql in deferred:
            connection.exec_driver_sql(sql)
        phases["create_indexes"] = time.perf_counter() - mark

        if spec.stays == "refresh":
            mark = time.perf_counter()
            store.refresh_stays(connection, None)
            phases["refresh_stays"] = time.perf_counter() - mark

        now = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 6, 0)
        connection.execute(
            schema.sync_runs.insert().values(
                source=SOURCE, full=True, status="ok", started_at=now, finished_at=now, report={}
            )
        )
        counts = {
            "partners": spec.partners,
            "deals": deals.count,
            "stage_changes": changes.count,
            "trainings": trainings.count,
            "survey_responses": surveys.count,
            "customers": customers.count,
            "support_tickets": tickets.count,
        }
        connection.exec_driver_sql(
            f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        meta = dict(spec.marker())
        meta.update({f"count:{k}": str(v) for k, v in counts.items()})
        connection.execute(
            text(f"INSERT INTO {META_TABLE} (key, value) VALUES (:key, :value)"),
            [{"key": k, "value": v} for k, v in meta.items()],
        )
        commit_mark = time.perf_counter()
    phases["commit"] = time.perf_counter() - commit_mark
    mark = time.perf_counter()
    rollups.refresh(store.engine)  # what a sync's end does; the first one builds everything
    phases["rollups"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with store.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    phases["checkpoint"] = time.perf_counter() - mark
    seconds = time.perf_counter() - started
    # The timings go into the meta afterwards, so a reused file can still say how long it took.
    with store.engine.begin() as connection:
        connection.execute(
            text(f"INSERT INTO {META_TABLE} (key, value) VALUES (:key, :value)"),
            [{"key": f"phase:{k}", "value": f"{v:.3f}"} for k, v in phases.items()]
            + [{"key": "load_seconds", "value": f"{seconds:.3f}"}],
        )
    store.engine.dispose()
    return LoadReport(
        path=str(path),
        reused=False,
        seconds=seconds,
        phases=phases,
        counts=counts,
        file_mb=path.stat().st_size / 1e6,
        loader_peak_rss_mb=peak_mb(),
    )
