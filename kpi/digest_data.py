"""What a scheduled digest shows, and the queries behind it: `build_digest` gathers the program
KPIs with trends, the leaderboard by quality score, the biggest movers, partners at risk, who
joined or left, won revenue per week (partner versus direct, for the chart), the data's age and
why it may be stale. Its words are in templates/digest.json.j2; rendering, the chart and posting
belong to the bot.

Choices where the issue is silent:

- The period is counted as of the day before the run's local date (the last whole day): a
  Monday digest of `last-7d` covers Monday to Sunday, and a digest on the 1st of a month with
  `this-month` covers the month just ended.
- Movers compare with the latest earlier snapshot of the same period (kpi.snapshots), else with
  the previous period.
- The trailing comparison (`trailing_quarters`, default 4) averages the stored snapshots of the
  same period whose period starts within that many quarters before this one: the weekly runs of a
  weekly digest (the typical week of the last year), the quarterly runs of a quarterly one. It
  covers the program KPIs and the leaders' quality scores. While the snapshots do not yet reach
  back over the whole window the average is still shown, labelled as the average of the runs
  there are, and the digest says plainly that the history is shorter than asked; with no
  snapshot at all it says so instead. A filtered digest sums its chosen partners' rows of each
  snapshot (active partners are not kept per partner, so that one has no average).
- With a partner filter, the program section sums the chosen partners' cards (revenue, deals,
  pipeline, active partners and their share of all partner revenue) instead of the program's
  pooled KPIs, which cover every partner.
- Data is stale past `max_data_age_hours`, by default a day for a period of up to a week and a
  seventh of the period for a longer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from kpi import schema
from kpi.engine import KpiEngine
from kpi.leaders import leaderboard
from kpi.models import Partner
from kpi.risk import AtRisk, RiskRules, partners_at_risk
from kpi.snapshots import PROGRAM_ID, Snapshot, latest_snapshot, snapshots_since
from kpi.store import Store
from kpi.sync_status import last_sync_problem
from settings.digests import DigestConfig, DigestPartnerFilter
from settings.kpi import KpiSettings
from settings.periods import Period, parse_period, previous_period

CHART_WEEKS = 12
MOVER_KEYS = ("quality_score", "won_revenue")


class AppConfig(Protocol):
    """What the digest reads of app.yaml (settings.app.AppConfig has it): the timezone and the
    KPI settings, and nothing of the CRMs or Slack."""

    @property
    def timezone(self) -> str: ...

    @property
    def kpi_settings(self) -> KpiSettings: ...


@dataclass(frozen=True)
class Mover:
    id: str
    name: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class WeekRevenue:
    start: date  # the week's first day; the week is [start, start + 7)
    partner: float
    direct: float


@dataclass(frozen=True)
class Trailing:
    """The average of the trailing quarters' snapshots: program KPIs and quality scores."""

    quarters: int
    since: date  # the window: snapshots whose period starts on or after this day
    runs: int  # snapshots averaged
    first: date | None  # the oldest averaged snapshot's period start
    complete: bool  # the snapshots reach back over the whole window
    program: dict[str, float | None]
    quality: dict[str, float]  # partner id -> average quality score


@dataclass
class DigestData:
    """Everything the digest shows, and the cards its snapshot keeps."""

    digest: DigestConfig
    title: str | None  # None: the template's default
    run_at: datetime
    period: Period
    program: dict[str, Any]  # a program card (period, previous_period, kpis, previous)
    program_keys: list[str]
    filtered: bool
    partner_count: int
    leaders: list[dict[str, Any]]  # numbered by their rank among all partners
    ranked: int  # the spec's ranked_partners: every "of N"
    movers: dict[str, tuple[list[Mover], list[Mover]]]  # key -> (up, down)
    movers_basis: str
    risks: list[AtRisk]
    joined: list[str]
    left: list[str]
    data_as_of: datetime | None
    warning: Staleness | None  # None: the data is fresh
    weeks: list[WeekRevenue]
    trailing: Trailing | None  # None when the digest compares with the previous period only
    cards: dict[str, dict[str, Any]] = field(repr=False)
    program_card: dict[str, Any] = field(repr=False)

    def shows(self, section: str) -> bool:
        return section in self.digest.sections


def ranked_partners(cards: dict[str, dict[str, Any]]) -> int:
    """The spec's `ranked_partners` (every card carries it), 0 without partners."""
    return next((int(card["ranked_partners"]) for card in cards.values()), 0)


def digest_as_of(digest: DigestConfig, app: AppConfig, run_at: datetime) -> date:
    """The day the digest's period is counted from: the day before the run's local date."""
    return run_at.astimezone(digest_zone(digest, app)).date() - timedelta(days=1)


def digest_zone(digest: DigestConfig, app: AppConfig) -> ZoneInfo:
    return ZoneInfo(digest.timezone or app.timezone)


def digest_period(digest: DigestConfig, app: AppConfig, run_at: datetime) -> Period:
    return parse_period(digest.period, digest_as_of(digest, app, run_at))


def build_digest(
    store: Store,
    app: AppConfig,
    digest: DigestConfig,
    run_at: datetime,
    now: datetime | None = None,
    partner_view: bool = False,
) -> DigestData:
    """The digest for a run at `run_at` (aware); `now` (default: `run_at`) dates the data's age.
    `partner_view`: for a partner's own people (a shared channel), no figure of the whole
    program (the partner revenue share is one)."""
    now = now or run_at
    period = digest_period(digest, app, run_at)
    engine = KpiEngine(store, app.kpi_settings)
    all_cards = engine.all_partners(period)
    partners = {partner.id: partner for partner in store.partners()}
    chosen = {pid for pid, partner in partners.items() if _matches(digest, partner)}
    cards = {pid: card for pid, card in all_cards.items() if pid in chosen}
    program_card = engine.program(period)
    filtered = not digest.partners.empty
    program, keys = (
        (
            _subset_program(program_card, cards, partners, period),
            PARTNER_KEYS if partner_view else SUBSET_KEYS,
        )
        if filtered
        else (program_card, PROGRAM_KEYS)
    )
    ranked_cards = leaderboard(list(cards.values()), "quality_score")
    movers, basis = _movers(store, engine, digest, period, run_at, cards)
    active = {pid for pid in cards if _active_at(partners[pid], period.end)}
    stale = {key: count for key, count in engine.open_past_close(period).items() if key}
    risks = _risks(store, digest, period, cards, active, stale)
    leaders = ranked_cards[: digest.top]
    chosen_partners = sorted((partners[pid] for pid in chosen), key=lambda p: p.name.casefold())
    data_as_of = store.data_as_of()
    return DigestData(
        digest=digest,
        title=digest.title,
        run_at=run_at,
        period=period,
        program=program,
        program_keys=list(keys),
        filtered=filtered,
        partner_count=len(cards),
        leaders=leaders,
        ranked=ranked_partners(all_cards),
        movers=movers,
        movers_basis=basis,
        risks=risks,
        joined=[p.name for p in chosen_partners if period.contains(p.joined_on)],
        left=[p.name for p in chosen_partners if p.left_on and period.contains(p.left_on)],
        data_as_of=data_as_of,
        warning=staleness(store, digest, period, now),
        weeks=weekly_revenue(store, period, chosen if filtered else None),
        trailing=trailing_comparison(
            store, digest, period, run_at, keys, set(cards) if filtered else None, leaders
        ),
        cards=cards,
        program_card=program_card,
    )


#: The program KPIs a digest shows, with trends.
PROGRAM_KEYS = (
    "partner_revenue",
    "partner_revenue_share",
    "deal_count",
    "close_rate",
    "avg_deal_size",
    "sales_cycle_days",
    "pipeline_value",
    "active_partners",
    "partner_nps",
)
SUBSET_KEYS = (
    "partner_revenue",
    "partner_revenue_share",
    "deal_count",
    "pipeline_value",
    "active_partners",
)

#: A partner's own digest (a shared channel): nothing of the program's whole.
PARTNER_KEYS = tuple(key for key in SUBSET_KEYS if key != "partner_revenue_share")


def partner_only(digest: DigestConfig, partner_id: str) -> DigestConfig:
    """`digest` narrowed to one partner, for a channel shared with that partner: its filter is
    that partner alone, and the chart (which shows direct deals) is left out."""
    return digest.model_copy(
        update={
            "partners": DigestPartnerFilter(ids=[partner_id]),
            "sections": [section for section in digest.sections if section != "chart"],
        }
    )


def _matches(digest: DigestConfig, partner: Partner) -> bool:
    chosen = digest.partners
    if chosen.ids and partner.id not in chosen.ids:
        return False
    return all(
        _one_of(wanted, value)
        for wanted, value in (
            (chosen.tiers, partner.tier),
            (chosen.owners, partner.owner_email),
            (chosen.regions, partner.region),
        )
    )


def _one_of(wanted: list[str], value: str | None) -> bool:
    """No list, or the value is in it ignoring case."""
    return not wanted or (value or "").casefold() in {item.casefold() for item in wanted}


def _active_at(partner: Partner, day: date) -> bool:
    return partner.joined_on < day and (partner.left_on is None or partner.left_on >= day)


def _subset_program(
    program: dict[str, Any],
    cards: Mapping[str, dict[str, Any]],
    partners: Mapping[str, Partner],
    period: Period,
) -> dict[str, Any]:
    """The program card's shape, summed over the chosen partners' cards."""
    previous = previous_period(period)

    def sums(side: str, whole: str, day: date) -> dict[str, Any]:
        revenue = sum(card[side]["won_revenue"] for card in cards.values())
        total = program[whole]["partner_revenue"]
        return {
            "partner_revenue": revenue,
            "partner_revenue_share": revenue / total if total else None,
            "deal_count": sum(card[side]["deal_count"] for card in cards.values()),
            "pipeline_value": sum(card[side]["pipeline_value"] for card in cards.values()),
            "active_partners": sum(1 for pid in cards if _active_at(partners[pid], day)),
        }

    return {
        **program,
        "kpis": sums("kpis", "kpis", period.end),
        "previous": sums("previous", "previous", previous.end),
    }


def _movers(
    store: Store,
    engine: KpiEngine,
    digest: DigestConfig,
    period: Period,
    run_at: datetime,
    cards: Mapping[str, dict[str, Any]],
) -> tuple[dict[str, tuple[list[Mover], list[Mover]]], str]:
    """The partners whose quality score and won revenue moved most, up and down."""
    snapshot = latest_snapshot(store, period.name, run_at)
    before: dict[str, dict[str, Any]]
    if snapshot is not None:
        before = snapshot.partners
        basis = f"since the run of {snapshot.run_at:%Y-%m-%d}"
    else:
        earlier = previous_period(period)
        previous_cards = engine.all_partners(earlier) if "movers" in digest.sections else {}
        before = {
            pid: {
                "quality_score": previous_cards.get(pid, {}).get("quality_score"),
                "won_revenue": card["previous"]["won_revenue"],
            }
            for pid, card in cards.items()
        }
        basis = "since the previous period"
    result: dict[str, tuple[list[Mover], list[Mover]]] = {}
    for key in MOVER_KEYS:
        moved = []
        for pid, card in cards.items():
            now = card["quality_score"] if key == "quality_score" else card["kpis"][key]
            then = before.get(pid, {}).get(key)
            if now is not None and then is not None and now != then:
                moved.append(Mover(pid, card["partner"]["name"], float(then), float(now)))
        moved.sort(key=lambda m: (-abs(m.delta), m.name.casefold()))
        up = [m for m in moved if m.delta > 0][: digest.movers]
        down = [m for m in moved if m.delta < 0][: digest.movers]
        result[key] = (up, down)
    return result, basis


def months_before(day: date, months: int) -> date:
    """The same day `months` earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def trailing_comparison(
    store: Store,
    digest: DigestConfig,
    period: Period,
    run_at: datetime,
    keys: tuple[str, ...] | list[str],
    chosen: set[str] | None,
    leaders: list[dict[str, Any]],
) -> Trailing | None:
    """The average of the snapshots of `period`'s name taken before `run_at` whose period
    starts within `digest.trailing_quarters` quarters before `period` does. `chosen` is a
    filtered digest's partners (their rows are summed), None for the whole program."""
    quarters = digest.trailing_quarters
    if quarters <= 0:
        return None
    since = months_before(period.start, 3 * quarters)
    leader_ids = {str(card["partner"]["id"]) for card in leaders}
    wanted: set[str] | None = {PROGRAM_ID, *leader_ids}
    if chosen is not None:
        wanted = {PROGRAM_ID, *chosen, *leader_ids} if len(chosen) <= 1000 else None
    history = [
        snapshot
        for snapshot in snapshots_since(store, period.name, since, run_at, wanted)
        if snapshot.start < period.start.isoformat()  # never this run (or a later one)
    ]
    figures = [
        found
        for found in (_program_figures(snapshot, chosen) for snapshot in history)
        if found is not None
    ]
    program: dict[str, float | None] = {key: _mean(f.get(key) for f in figures) for key in keys}
    quality: dict[str, float] = {}
    for pid in leader_ids:
        average = _mean(snapshot.partners.get(pid, {}).get("quality_score") for snapshot in history)
        if average is not None:
            quality[pid] = average
    first = min((date.fromisoformat(s.start) for s in history), default=None)
    complete = first is not None and first < since + timedelta(days=period.days)
    return Trailing(quarters, since, len(figures), first, complete, program, quality)


def _program_figures(snapshot: Snapshot, chosen: set[str] | None) -> dict[str, Any] | None:
    """One snapshot's program KPIs: the program row, or the chosen partners' rows summed."""
    program = snapshot.partners.get(PROGRAM_ID)
    if chosen is None:
        return program
    rows = [kpis for pid, kpis in snapshot.partners.items() if pid in chosen]
    if not rows:
        return None
    revenue = sum(float(row.get("won_revenue") or 0) for row in rows)
    total = (program or {}).get("partner_revenue")
    return {
        "partner_revenue": revenue,
        "partner_revenue_share": revenue / total if total else None,
        "deal_count": sum(int(row.get("deal_count") or 0) for row in rows),
        "pipeline_value": sum(float(row.get("pipeline_value") or 0) for row in rows),
    }


def _mean(values: Any) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None


def _risks(
    store: Store,
    digest: DigestConfig,
    period: Period,
    cards: Mapping[str, dict[str, Any]],
    active: set[str],
    stale: dict[str, int],
) -> list[AtRisk]:
    """kpi.risk's rules, with "no deal won in N days" (N from app.yaml) instead of "no deal won
    in the period"."""
    settings = digest.at_risk
    rules = RiskRules(
        close_rate_drop_points=settings.close_rate_drop_points,
        detractor_nps=settings.detractor_nps,
        stale_pipeline_share=settings.stale_pipeline_share,
        customers_lost=settings.customers_lost,
    )
    flagged = partners_at_risk(list(cards.values()), active, stale, rules)
    found = {risk.card["partner"]["id"]: risk for risk in flagged}
    deals = schema.deals
    last_won_query = (
        select(deals.c.partner_id, func.max(deals.c.closed_on))
        .where(deals.c.status == "won", deals.c.partner_id.is_not(None))
        .where(deals.c.closed_on < period.end)
        .group_by(deals.c.partner_id)
    )
    with store.engine.connect() as connection:
        last_won = {pid: day for pid, day in connection.execute(last_won_query)}
    cutoff = period.end - timedelta(days=settings.no_win_days)
    risks = []
    for pid in sorted(active):
        earlier = found.get(pid)
        reasons = [r for r in earlier.reasons if not r.startswith("no deal won")] if earlier else []
        won = last_won.get(pid)
        if won is None or won < cutoff:
            reasons.insert(0, f"no deal won in {settings.no_win_days} days")
        if reasons:
            risks.append(AtRisk(cards[pid], tuple(reasons)))
    return sorted(risks, key=lambda item: (-len(item.reasons), item.card["partner"]["name"]))


def allowed_age(digest: DigestConfig, period: Period) -> timedelta:
    if digest.max_data_age_hours is not None:
        return timedelta(hours=digest.max_data_age_hours)
    return max(timedelta(days=1), timedelta(days=period.days / 7))


@dataclass(frozen=True)
class Staleness:
    """Why the digest's numbers may be out of date; templates/digest.json.j2 says it."""

    cause: str  # "never-synced" | "sync-failed" | "too-old"
    now: datetime  # what the ages are counted to
    good_at: datetime | None = None  # when the last good sync finished
    failed_at: datetime | None = None  # when the last sync failed, was refused or stopped
    reason: str = ""  # the failed sync's error, its first line
    verb: str = "failed"  # "failed", "was refused" (the deletion guard), "stopped early"
    allowed_hours: float = 0.0  # how old the data may be


def staleness(
    store: Store, digest: DigestConfig, period: Period, now: datetime
) -> Staleness | None:
    """Why the data may be out of date at `now`, or None when it is fresh."""
    problem = last_sync_problem(store)
    good = store.data_as_of()
    if good is None:
        return Staleness("never-synced", now)
    if problem is not None:
        return Staleness(
            "sync-failed", now, good, problem.finished_at, problem.reason, verb=problem.verb
        )
    limit = allowed_age(digest, period)
    if now - good > limit:
        return Staleness("too-old", now, good, allowed_hours=limit.total_seconds() / 3600)
    return None


def weekly_revenue(
    store: Store, period: Period, partner_ids: set[str] | None = None, weeks: int = CHART_WEEKS
) -> list[WeekRevenue]:
    """Won revenue per week, partner deals versus direct ones, over at least `weeks` weeks
    (or the whole period) ending where the period ends. With `partner_ids`, partner revenue
    counts only those partners."""
    count = max(weeks, -(-period.days // 7))
    start = period.end - timedelta(days=7 * count)
    deals = schema.deals
    query = (
        select(deals.c.closed_on, deals.c.partner_id, func.sum(deals.c.amount))
        .where(
            deals.c.status == "won",
            deals.c.closed_on >= start,
            deals.c.closed_on < period.end,
            deals.c.amount.is_not(None),
        )
        .group_by(deals.c.closed_on, deals.c.partner_id)
    )
    partner = [0.0] * count
    direct = [0.0] * count
    with store.engine.connect() as connection:
        for closed_on, partner_id, amount in connection.execute(query):
            index = (closed_on - start).days // 7
            if partner_id is None:
                direct[index] += float(amount or 0)
            elif partner_ids is None or partner_id in partner_ids:
                partner[index] += float(amount or 0)
    return [WeekRevenue(start + timedelta(days=7 * i), partner[i], direct[i]) for i in range(count)]
