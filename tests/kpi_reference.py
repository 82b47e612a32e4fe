"""A deliberately simple reference implementation of kpi-spec.md sections 3, 4, 5, 7 and 8.

It reads plain in-memory lists of normalized records and follows the spec sentence by sentence
with straightforward loops: no SQL, no indexes, no cleverness. The KPI engine (`kpi.engine`) is
tested against it (tests/test_kpi_engine.py); the reference itself is tested on hand-worked data
(tests/test_kpi_reference.py).

`reference_partner` and `reference_program` return the JSON contract of spec section 6 without
`data_as_of` (that belongs to the store, not to the KPIs).

Readings of the spec where it is silent or could be read two ways (the engine must agree):

1. Arithmetic. KPI values are Python floats computed in the obvious order: sums of amounts
   added one deal at a time, means as ``sum / count``, NPS as ``100 * (promoters - detractors) /
   responses``, velocity as ``pipeline_count * close_rate * avg_deal_size / sales_cycle_days``
   left to right. Percentiles and quality scores are exact (`fractions.Fraction`): percentiles
   rank the float KPI values, the weights enter as the decimals they are written as
   (``Fraction(str(0.3)) == 3/10``), and ranks compare the exact scores, so partners whose
   percentiles are a permutation of each other tie exactly ("scores are compared unrounded").
   The returned `quality_score` is the exact score rounded once to a float.
2. `sales_velocity`: null when close_rate, avg_deal_size or sales_cycle_days is null, and null
   when the cycle is 0 even if the pipeline is empty (the division is undefined; "the rest
   exist" is read as "the other factors exist and the cycle is not 0"). Otherwise
   ``pipeline_count * ...``, which is 0.0 for an empty pipeline.
3. `pipeline_count`/`pipeline_value` need no `created_on >= s`: every deal open at `e` counts.
   An open deal's `closed_on` is ignored (spec section 1), so an open deal is in the pipeline
   whatever its `closed_on`.
4. `registered_deals` counts deals of any status. `deal_success` looks at C (won or lost in the
   period) only.
5. Stage pipeline without `app.stages` (and without a CRM order, which this reference does not
   model): stages ordered by their earliest `entered_at` over the changes of *known* deals in the
   whole history (not only the period); changes of unknown deals are ignored here too; equal
   first timestamps are ordered by stage name. An empty `app.stages` list counts as not given.
6. A stay ends at the deal's earliest change whose `entered_at` is strictly later (the store's
   `refresh_stays` rule): two changes of one deal at the same instant both end at the next later
   change, and a change into a stage outside the pipeline still ends the stay before it. A stay
   counts for the stage of the change that began it, for the partner of its deal. Elapsed days
   are ``(ended - began).total_seconds() / 86400``.
7. Stage `share`'s denominator counts the entries of every known deal (partner, unknown-partner
   and direct deals alike). For the program, the numerator is the entries of deals with a
   partner id (known partner or not) and `avg_days` pools the stays of those deals.
8. Program: `partner_revenue` is the program's pooled `won_revenue`, i.e. over every deal with a
   partner id, known or not ("all partners" includes partners only known by their id on deals);
   `partner_revenue_share` divides it by Σ amount over all deals won in the period, direct ones
   included (null when that is 0). `partner_nps`, `survey_responses` and `courses_completed`
   pool every answer and completion, whatever partner id they name.
9. The quality score is computed for the current period only; `previous` has no score.
   `ranked_partners` counts known partners with a score; a partner without a score has rank null.
   An empty period ranks nobody (issue 14, beyond the spec's text): when no active partner has
   a deal closed (won or lost), a survey answer or a course in it, every score is null.
10. A date is taken from a timestamp in `app.timezone`; `closed_on`, `created_on`,
    `registered_on`, `completed_on`, `joined_on` and `left_on` are dates already.
11. Customers (section 7): MRR sums add floats one customer at a time, null MRR skipped;
    `mrr_retention` is null when the MRR of the customers active at s sums to 0 (none, all null,
    or all 0). Tickets of an unknown customer count for nobody; a referral counts for the
    partner of the referring customer, and a referrer that is not a stored customer counts for
    nobody. The program pools every customer whose `partner_id` is not null.
12. Training (section 8): the as-of date is the one the period was parsed with (`Period.as_of`),
    else today in `app.timezone`. The program's groups hold the partners of the partners list
    active at e; "trained" needs a completion of that partner with `e - 365 <= completed_on < e`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from kpi.models import (
    Customer,
    Deal,
    DealStatus,
    DealType,
    Partner,
    Record,
    StageChange,
    SupportTicket,
    SurveyResponse,
    TrainingCompletion,
)
from settings.app import AppConfig
from settings.periods import Period, previous_period, today_in

CHANNELS = ("paid", "earned", "owned", "other")

KPI_KEYS = (
    "deal_count",
    "won_revenue",
    "avg_deal_size",
    "close_rate",
    "sales_cycle_days",
    "pipeline_count",
    "pipeline_value",
    "sales_velocity",
    "registered_deals",
    "deal_success",
    "upsell_rate",
    "net_new_revenue",
    "customer_satisfaction",
    "partner_nps",
    "survey_responses",
    "courses_completed",
    "customers_active",
    "customers_gained",
    "customers_lost",
    "portfolio_growth",
    "account_retention",
    "mrr_retention",
    "mrr_active",
    "onboarding_days",
    "tickets_per_customer",
    "referrals",
)

PROGRAM_KEYS = (
    "active_partners",
    "partners_joined",
    "partners_left",
    "partner_count_change",
    "partner_revenue",
    "partner_revenue_share",
)

#: kpi-spec.md section 4: the quality score's components.
COMPONENTS = (
    "won_revenue",
    "close_rate",
    "avg_deal_size",
    "sales_velocity",
    "partner_nps",
    "courses_completed",
)


@dataclass
class Dataset:
    """Everything the store would hold, as plain lists."""

    partners: list[Partner] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    stage_changes: list[StageChange] = field(default_factory=list)
    trainings: list[TrainingCompletion] = field(default_factory=list)
    survey_responses: list[SurveyResponse] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    tickets: list[SupportTicket] = field(default_factory=list)

    def records(self) -> Iterator[Record]:
        """Every record, for `Store.upsert`."""
        yield from self.partners
        yield from self.deals
        yield from self.stage_changes
        yield from self.trainings
        yield from self.survey_responses
        yield from self.customers
        yield from self.tickets


# --- small helpers ---------------------------------------------------------------------------


def in_period(period: Period, day: date | None) -> bool:
    return day is not None and period.start <= day < period.end


def local_date(moment: datetime, app: AppConfig) -> date:
    """The calendar date of a timestamp in the deployment's timezone."""
    return moment.astimezone(app.tz).date()


def ratio(numerator: float, denominator: float) -> float | None:
    """A ratio or mean: null (None) when the denominator is 0."""
    if denominator == 0:
        return None
    return numerator / denominator


def total(amounts: list[float]) -> float:
    """A sum of money: 0.0 over nothing, added one by one."""
    result = 0.0
    for amount in amounts:
        result += amount
    return result


def amounts_of(deals: list[Deal]) -> list[float]:
    """The amounts of these deals, skipping null ones."""
    return [float(deal.amount) for deal in deals if deal.amount is not None]


def won_in(deals: list[Deal], period: Period) -> list[Deal]:
    return [d for d in deals if d.status == DealStatus.WON and in_period(period, d.closed_on)]


def lost_in(deals: list[Deal], period: Period) -> list[Deal]:
    return [d for d in deals if d.status == DealStatus.LOST and in_period(period, d.closed_on)]


def is_active_in(partner: Partner, period: Period) -> bool:
    """Section 4: active in the period."""
    return partner.joined_on < period.end and (
        partner.left_on is None or partner.left_on >= period.start
    )


def is_active_at(partner: Partner, day: date) -> bool:
    """Section 5: active at a date."""
    return partner.joined_on < day and (partner.left_on is None or partner.left_on >= day)


# --- section 3: one partner's (or the pooled program's) KPIs ---------------------------------


def deal_kpis(
    deals: list[Deal],
    responses: list[SurveyResponse],
    trainings: list[TrainingCompletion],
    app: AppConfig,
    period: Period,
) -> dict[str, Any]:
    """The keys of section 3's table (and `survey_responses`) over these records."""
    won = won_in(deals, period)
    lost = lost_in(deals, period)
    closed = won + lost

    won_amounts = amounts_of(won)
    won_revenue = total(won_amounts)
    avg_deal_size = ratio(won_revenue, len(won_amounts))
    close_rate = ratio(len(won), len(closed))

    cycle_days = []
    for deal in won:
        assert deal.closed_on is not None
        days = (deal.closed_on - deal.created_on).days
        cycle_days.append(max(days, 0))
    sales_cycle_days = ratio(sum(cycle_days), len(cycle_days))

    pipeline = []
    for deal in deals:
        if deal.created_on >= period.end:
            continue
        still_open = deal.status == DealStatus.OPEN  # an open deal's closed_on is ignored
        closes_later = deal.closed_on is not None and deal.closed_on >= period.end
        if still_open or closes_later:
            pipeline.append(deal)
    pipeline_count = len(pipeline)
    pipeline_value = total(amounts_of(pipeline))

    sales_velocity: float | None
    factors = (close_rate, avg_deal_size, sales_cycle_days)
    if any(factor is None for factor in factors) or sales_cycle_days == 0:
        sales_velocity = None
    else:
        assert close_rate is not None and avg_deal_size is not None
        assert sales_cycle_days is not None
        sales_velocity = pipeline_count * close_rate * avg_deal_size / sales_cycle_days

    registered_deals = 0
    for deal in deals:
        registered_on = deal.registered_on if deal.registered_on is not None else deal.created_on
        if deal.registered and in_period(period, registered_on):
            registered_deals += 1

    registered_closed = [d for d in closed if d.registered]
    registered_won = [d for d in registered_closed if d.status == DealStatus.WON]
    deal_success = ratio(len(registered_won), len(registered_closed))

    upsells = [d for d in won if d.type == DealType.UPSELL]
    upsell_rate = ratio(len(upsells), len(won))
    net_new_revenue = total(amounts_of([d for d in won if d.type == DealType.NEW]))

    csats = [d.csat for d in won if d.csat is not None]
    customer_satisfaction = ratio(sum(csats), len(csats))

    answers = [r for r in responses if in_period(period, local_date(r.submitted_at, app))]
    promoters = len([r for r in answers if r.score >= 9])
    detractors = len([r for r in answers if r.score <= 6])
    partner_nps = ratio(100 * (promoters - detractors), len(answers))

    courses = [t for t in trainings if in_period(period, t.completed_on)]

    return {
        "deal_count": len(won),
        "won_revenue": won_revenue,
        "avg_deal_size": avg_deal_size,
        "close_rate": close_rate,
        "sales_cycle_days": sales_cycle_days,
        "pipeline_count": pipeline_count,
        "pipeline_value": pipeline_value,
        "sales_velocity": sales_velocity,
        "registered_deals": registered_deals,
        "deal_success": deal_success,
        "upsell_rate": upsell_rate,
        "net_new_revenue": net_new_revenue,
        "customer_satisfaction": customer_satisfaction,
        "partner_nps": partner_nps,
        "survey_responses": len(answers),
        "courses_completed": len(courses),
    }


# --- section 7: customer outcomes --------------------------------------------------------------


def customer_active_at(customer: Customer, day: date) -> bool:
    return customer.became_customer_on < day and (
        customer.churned_on is None or customer.churned_on >= day
    )


def customer_kpis(
    mine: list[Customer], data: Dataset, app: AppConfig, period: Period
) -> dict[str, Any]:
    """Section 7's keys over the customers `mine` (K), with every customer and ticket of `data`
    for tickets and referrals."""
    s, e = period.start, period.end
    at_start = [c for c in mine if customer_active_at(c, s)]
    at_end = [c for c in mine if customer_active_at(c, e)]
    retained = [c for c in at_start if customer_active_at(c, e)]
    onboarded = [c for c in mine if in_period(period, c.onboarded_on)]
    waits = []
    for customer in onboarded:
        assert customer.onboarded_on is not None
        waits.append(max((customer.onboarded_on - customer.became_customer_on).days, 0))
    in_the_period = [
        c for c in mine if c.became_customer_on < e and (c.churned_on is None or c.churned_on >= s)
    ]
    ids = {c.id for c in mine}
    tickets = [
        t
        for t in data.tickets
        if t.customer_id in ids and in_period(period, local_date(t.opened_at, app))
    ]
    referrals = [
        c
        for c in data.customers
        if c.referred_by in ids and in_period(period, c.became_customer_on)
    ]
    mrr_at_start = total([float(c.mrr) for c in at_start if c.mrr is not None])
    mrr_retained = total([float(c.mrr) for c in retained if c.mrr is not None])
    return {
        "customers_active": len(at_end),
        "customers_gained": len([c for c in mine if in_period(period, c.became_customer_on)]),
        "customers_lost": len([c for c in mine if in_period(period, c.churned_on)]),
        "portfolio_growth": ratio(len(at_end) - len(at_start), len(at_start)),
        "account_retention": ratio(len(retained), len(at_start)),
        "mrr_retention": ratio(mrr_retained, mrr_at_start),
        "mrr_active": total([float(c.mrr) for c in at_end if c.mrr is not None]),
        "onboarding_days": ratio(sum(waits), len(waits)),
        "tickets_per_customer": ratio(len(tickets), len(in_the_period)),
        "referrals": len(referrals),
    }


# --- section 8: training impact ----------------------------------------------------------------


def closed_figures(deals: list[Deal], start: date, end: date) -> dict[str, Any]:
    """Section 8's closed-deal figures over these deals closed in [start, end)."""
    window = Period("window", start, end)
    kpis = deal_kpis(deals, [], [], AppConfig(), window)
    keys = ("deal_count", "won_revenue", "avg_deal_size", "close_rate", "sales_cycle_days")
    return {key: kpis[key] for key in keys}


def as_of_date(period: Period, app: AppConfig) -> date:
    return period.as_of if period.as_of is not None else today_in(app.tz)


def partner_training(
    data: Dataset, app: AppConfig, partner_id: str, period: Period
) -> dict[str, Any] | None:
    completions = [
        t for t in data.trainings if t.partner_id == partner_id and t.completed_on < period.end
    ]
    if not completions:
        return None
    latest = max(t.completed_on for t in completions)
    course = min(t.course for t in completions if t.completed_on == latest)
    deals = [d for d in data.deals if d.partner_id == partner_id]
    window = timedelta(days=90)
    observed = (as_of_date(period, app) - latest).days + 1
    return {
        "course": course,
        "completed_on": latest.isoformat(),
        "before": closed_figures(deals, latest - window, latest),
        "after": closed_figures(deals, latest, latest + window),
        "after_days": max(0, min(90, observed)),
    }


def program_training(data: Dataset, period: Period) -> dict[str, Any]:
    since = period.end - timedelta(days=365)
    trained_ids = {t.partner_id for t in data.trainings if since <= t.completed_on < period.end}
    active = [p for p in data.partners if is_active_at(p, period.end)]
    result = {}
    for name, group in (
        ("trained", [p for p in active if p.id in trained_ids]),
        ("untrained", [p for p in active if p.id not in trained_ids]),
    ):
        ids = {p.id for p in group}
        figures = closed_figures(
            [d for d in data.deals if d.partner_id in ids], period.start, period.end
        )
        result[name] = {
            "partners": len(group),
            "won_revenue_per_partner": ratio(figures["won_revenue"], len(group)),
            **figures,
        }
    return result


def channel_kpis(deals: list[Deal], period: Period) -> dict[str, dict[str, Any]]:
    result = {}
    for channel in CHANNELS:
        mine = [d for d in deals if d.channel == channel]
        won = won_in(mine, period)
        lost = lost_in(mine, period)
        result[channel] = {
            "deal_count": len(won),
            "won_revenue": total(amounts_of(won)),
            "close_rate": ratio(len(won), len(won) + len(lost)),
        }
    return result


def pipeline_stages(data: Dataset, app: AppConfig) -> list[str]:
    """app.yaml's stages, else the order in which stages first appear in known deals' history."""
    if app.stages:
        return list(app.stages)
    known = {deal.id for deal in data.deals}
    first_seen: dict[str, datetime] = {}
    for change in data.stage_changes:
        if change.deal_id not in known:
            continue
        if change.stage not in first_seen or change.entered_at < first_seen[change.stage]:
            first_seen[change.stage] = change.entered_at
    return sorted(first_seen, key=lambda stage: (first_seen[stage], stage))


def stay_end(change: StageChange, changes: list[StageChange]) -> datetime | None:
    """When the deal's next stage change (strictly later) began; None while the stay lasts."""
    end = None
    for other in changes:
        if other.deal_id != change.deal_id or other.entered_at <= change.entered_at:
            continue
        if end is None or other.entered_at < end:
            end = other.entered_at
    return end


def stage_kpis(
    data: Dataset, app: AppConfig, period: Period, counts: Callable[[Deal], bool]
) -> list[dict[str, Any]]:
    """The `stages` list for the deals `counts` accepts."""
    deals = {deal.id: deal for deal in data.deals}
    known = [c for c in data.stage_changes if c.deal_id in deals]  # unknown deals are ignored
    result = []
    for stage in pipeline_stages(data, app):
        entered = 0
        everyone_entered = 0
        durations = []
        for change in known:
            if change.stage != stage:
                continue
            mine = counts(deals[change.deal_id])
            if in_period(period, local_date(change.entered_at, app)):
                everyone_entered += 1
                if mine:
                    entered += 1
            if mine:
                end = stay_end(change, known)
                if end is not None and in_period(period, local_date(end, app)):
                    durations.append((end - change.entered_at).total_seconds() / 86400)
        result.append(
            {
                "stage": stage,
                "entered": entered,
                "share": ratio(entered, everyone_entered),
                "avg_days": ratio(sum(durations), len(durations)),
            }
        )
    return result


# --- section 4: percentiles, quality score, rank ---------------------------------------------


def percentiles(values: dict[str, float]) -> dict[str, Fraction]:
    """Each key's percentile among the values: ties get the mean of their ranks; alone, 100."""
    n = len(values)
    result = {}
    for key, value in values.items():
        below = len([v for v in values.values() if v < value])
        equal = len([v for v in values.values() if v == value])
        mean_rank = below + Fraction(equal + 1, 2)  # the mean of ranks below+1 .. below+equal
        if n == 1:
            result[key] = Fraction(100)
        else:
            result[key] = 100 * (mean_rank - 1) / (n - 1)
    return result


def quality_scores(data: Dataset, app: AppConfig, period: Period) -> dict[str, Fraction | None]:
    """Every known partner's exact quality score in the period (None: no score)."""
    active = [p for p in data.partners if is_active_in(p, period)]
    kpis = {p.id: partner_kpis(data, app, p.id, period) for p in active}
    if not any(  # an empty period ranks nobody (note 9)
        k["close_rate"] is not None or k["survey_responses"] or k["courses_completed"]
        for k in kpis.values()
    ):
        return dict.fromkeys((p.id for p in data.partners), None)
    component_percentiles = {}
    for component in COMPONENTS:
        values = {pid: k[component] for pid, k in kpis.items() if k[component] is not None}
        component_percentiles[component] = percentiles(values)
    weights = {component: Fraction(str(app.weights[component])) for component in COMPONENTS}

    scores: dict[str, Fraction | None] = {}
    for partner in data.partners:
        if partner.id not in kpis:
            scores[partner.id] = None  # not active in the period
            continue
        weighted = Fraction(0)
        weight_sum = Fraction(0)
        for component in COMPONENTS:
            if partner.id in component_percentiles[component]:
                weighted += weights[component] * component_percentiles[component][partner.id]
                weight_sum += weights[component]
        scores[partner.id] = weighted / weight_sum if weight_sum != 0 else None
    return scores


def ranking(scores: dict[str, Fraction | None]) -> tuple[dict[str, int | None], int]:
    """Each partner's rank (1 + how many score strictly higher) and how many have a score."""
    scored = [s for s in scores.values() if s is not None]
    ranks: dict[str, int | None] = {}
    for pid, score in scores.items():
        ranks[pid] = None if score is None else 1 + len([s for s in scored if s > score])
    return ranks, len(scored)


# --- the JSON contract --------------------------------------------------------------------


def partner_kpis(data: Dataset, app: AppConfig, partner_id: str, period: Period) -> dict[str, Any]:
    kpis = deal_kpis(
        [d for d in data.deals if d.partner_id == partner_id],
        [r for r in data.survey_responses if r.partner_id == partner_id],
        [t for t in data.trainings if t.partner_id == partner_id],
        app,
        period,
    )
    mine = [c for c in data.customers if c.partner_id == partner_id]
    return kpis | customer_kpis(mine, data, app, period)


def program_kpis(data: Dataset, app: AppConfig, period: Period) -> dict[str, Any]:
    partner_deals = [d for d in data.deals if d.partner_id is not None]
    kpis = deal_kpis(partner_deals, data.survey_responses, data.trainings, app, period)
    with_partner = [c for c in data.customers if c.partner_id is not None]
    kpis.update(customer_kpis(with_partner, data, app, period))

    active_at_end = len([p for p in data.partners if is_active_at(p, period.end)])
    active_at_start = len([p for p in data.partners if is_active_at(p, period.start)])
    all_won_revenue = total(amounts_of(won_in(data.deals, period)))  # direct deals included
    kpis.update(
        {
            "active_partners": active_at_end,
            "partners_joined": len([p for p in data.partners if in_period(period, p.joined_on)]),
            "partners_left": len([p for p in data.partners if in_period(period, p.left_on)]),
            "partner_count_change": active_at_end - active_at_start,
            "partner_revenue": kpis["won_revenue"],
            "partner_revenue_share": ratio(kpis["won_revenue"], all_won_revenue),
        }
    )
    return kpis


def _periods(period: Period) -> dict[str, Any]:
    previous = previous_period(period)
    return {
        "period": {
            "name": period.name,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "previous_period": {"start": previous.start.isoformat(), "end": previous.end.isoformat()},
    }


def reference_partner(
    data: Dataset, app: AppConfig, partner_id: str, period: Period
) -> dict[str, Any]:
    """Section 6's object for one known partner (without `data_as_of`)."""
    partner = next((p for p in data.partners if p.id == partner_id), None)
    if partner is None:
        raise KeyError(partner_id)
    deals = [d for d in data.deals if d.partner_id == partner_id]
    scores = quality_scores(data, app, period)
    ranks, ranked = ranking(scores)
    score = scores[partner_id]
    return {
        "partner": {"id": partner.id, "name": partner.name},
        **_periods(period),
        "kpis": partner_kpis(data, app, partner_id, period),
        "previous": partner_kpis(data, app, partner_id, previous_period(period)),
        "channels": channel_kpis(deals, period),
        "stages": stage_kpis(data, app, period, lambda deal: deal.partner_id == partner_id),
        "quality_score": None if score is None else float(score),
        "rank": ranks[partner_id],
        "ranked_partners": ranked,
        "training": partner_training(data, app, partner_id, period),
    }


def reference_program(data: Dataset, app: AppConfig, period: Period) -> dict[str, Any]:
    """Section 6's program object (without `data_as_of`)."""
    partner_deals = [d for d in data.deals if d.partner_id is not None]
    _, ranked = ranking(quality_scores(data, app, period))
    return {
        "partner": None,
        **_periods(period),
        "kpis": program_kpis(data, app, period),
        "previous": program_kpis(data, app, previous_period(period)),
        "channels": channel_kpis(partner_deals, period),
        "stages": stage_kpis(data, app, period, lambda deal: deal.partner_id is not None),
        "quality_score": None,
        "rank": None,
        "ranked_partners": ranked,
        "training": program_training(data, period),
    }


def reference_all_partners(
    data: Dataset, app: AppConfig, period: Period
) -> dict[str, dict[str, Any]]:
    """`reference_partner` for every known partner, keyed by id."""
    return {p.id: reference_partner(data, app, p.id, period) for p in data.partners}
