"""The demo program's customers and support tickets (`customers.csv`, `tickets.csv`).

Shaped by the partner archetypes of `connectors.demo_data`, so section 7's KPIs have a story:
strong partners bring many customers that stay and refer others; a declining partner's customers
churn fast once it declines; a departed partner's customers drift away after it left. Training
shows too: customers of a partner that completed a course in the year before they signed go live
about twice as fast and open about half as many tickets. A few rows carry an MRR in CHF (no rate
in the demo's currency_rates) or none at all.

Drawn from their own `random.Random`, seeded from the demo's seed, so adding them changed none
of the other demo files; same inputs give the same rows.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

MONTH_DAYS = 30
TRAINED_WITHIN_DAYS = 365


@dataclass(frozen=True)
class DemoPartner:
    """What the customers of a partner depend on."""

    id: str
    archetype: str  # a demo_data.Archetype value
    joined_on: date
    left_on: date | None
    trained_on: tuple[date, ...]  # its training completions' dates, sorted


@dataclass(frozen=True)
class _Behaviour:
    customers: tuple[int, int]  # how many in two years, min and max
    monthly_churn: float
    median_mrr: float
    referral_rate: float
    tickets_per_month: float


_BEHAVIOURS = {
    "strong": _Behaviour((30, 45), 0.008, 4_000, 0.15, 0.3),
    "average": _Behaviour((6, 16), 0.02, 1_500, 0.06, 0.6),
    "declining": _Behaviour((14, 22), 0.012, 2_500, 0.08, 0.5),
    "new": _Behaviour((1, 4), 0.02, 1_000, 0.0, 0.6),
    "departed": _Behaviour((3, 8), 0.03, 1_200, 0.02, 0.9),
}
_DECLINED = _Behaviour((0, 0), 0.15, 1_500, 0.0, 1.4)  # a declining partner's last months
_DIRECT = _Behaviour((120, 120), 0.015, 2_000, 0.05, 0.5)
_CURRENCIES = (("USD", 0.86), ("EUR", 0.09), ("GBP", 0.04), ("CHF", 0.01))
_NO_MRR_RATE = 0.03
_NAMES = (
    "Aurora", "Beacon", "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris",
    "Juniper", "Keystone", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz",
    "Redwood", "Summit", "Tidal", "Umber", "Vertex", "Willow", "Yonder", "Zephyr",
)  # fmt: skip
_KINDS = ("Labs", "Health", "Logistics", "Foods", "Energy", "Studios", "Bank", "Retail")


@dataclass(frozen=True)
class DemoCustomer:
    id: str
    partner_id: str | None
    name: str
    became_customer_on: date
    churned_on: date | None
    mrr_cents: int | None
    currency: str
    onboarded_on: date | None
    referred_by: str | None


@dataclass(frozen=True)
class DemoTicket:
    id: str
    customer_id: str
    opened_at: datetime  # UTC


class _Draws:
    def __init__(self, rng: random.Random, as_of: date, start: date, decline_start: date):
        self.rng = rng
        self.as_of = as_of
        self.start = start
        self.decline_start = decline_start
        self.customers = 0
        self.tickets = 0

    def day_between(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    def behaviour(self, partner: DemoPartner | None, on: date) -> _Behaviour:
        if partner is None:
            return _DIRECT
        if partner.archetype == "declining" and on >= self.decline_start:
            return _DECLINED
        return _BEHAVIOURS[partner.archetype]

    def currency(self) -> str:
        roll, total = self.rng.random(), 0.0
        for code, share in _CURRENCIES:
            total += share
            if roll < total:
                return code
        return _CURRENCIES[0][0]


def _trained(partner: DemoPartner | None, on: date) -> bool:
    """The partner completed a course in the year before `on`."""
    if partner is None:
        return False
    index = bisect_right(partner.trained_on, on)
    return index > 0 and partner.trained_on[index - 1] > on - timedelta(days=TRAINED_WITHIN_DAYS)


def _churn(draws: _Draws, partner: DemoPartner | None, became: date) -> date | None:
    """Month by month, the customer churns with its partner's churn rate of that month; a
    departed partner's customers churn within four months of it leaving, most of them."""
    day = became + timedelta(days=MONTH_DAYS)
    while day <= draws.as_of:
        rate = draws.behaviour(partner, day).monthly_churn
        if partner is not None and partner.left_on is not None and day > partner.left_on:
            rate = 0.3
        if draws.rng.random() < rate:
            return min(day + timedelta(days=draws.rng.randint(0, MONTH_DAYS - 1)), draws.as_of)
        day += timedelta(days=MONTH_DAYS)
    return None


def _customer(
    draws: _Draws, partner: DemoPartner | None, became: date, earlier: Sequence[DemoCustomer]
) -> DemoCustomer:
    rng = draws.rng
    behaviour = draws.behaviour(partner, became)
    draws.customers += 1
    mrr = round(rng.lognormvariate(math.log(behaviour.median_mrr), 0.6) * 100)
    wait_median = 16 if _trained(partner, became) else 35
    onboarded: date | None = became + timedelta(
        days=max(1, round(rng.lognormvariate(math.log(wait_median), 0.4)))
    )
    if onboarded is not None and onboarded > draws.as_of:
        onboarded = None  # not live yet
    referrer = None
    if earlier and rng.random() < behaviour.referral_rate:
        referrer = rng.choice(earlier).id
    return DemoCustomer(
        id=f"demo-cu-{draws.customers:05d}",
        partner_id=partner.id if partner is not None else None,
        name=f"{rng.choice(_NAMES)} {rng.choice(_KINDS)} {draws.customers}",
        became_customer_on=became,
        churned_on=_churn(draws, partner, became),
        mrr_cents=None if rng.random() < _NO_MRR_RATE else mrr,
        currency=draws.currency(),
        onboarded_on=onboarded,
        referred_by=referrer,
    )


def _partner_customers(draws: _Draws, partner: DemoPartner | None) -> list[DemoCustomer]:
    first = draws.start if partner is None else max(draws.start, partner.joined_on)
    last = draws.as_of if partner is None else min(draws.as_of, partner.left_on or draws.as_of)
    if partner is not None and partner.archetype == "declining":
        last = draws.decline_start  # it stopped bringing customers when it declined
    low, high = draws.behaviour(partner, first).customers
    days = sorted(draws.day_between(first, last) for _ in range(draws.rng.randint(low, high)))
    customers: list[DemoCustomer] = []
    for day in days:
        customers.append(_customer(draws, partner, day, customers))
    return customers


def _tickets(
    draws: _Draws, partner: DemoPartner | None, customer: DemoCustomer
) -> Iterator[DemoTicket]:
    end = customer.churned_on or draws.as_of
    day = customer.became_customer_on
    while day < end:
        mean = draws.behaviour(partner, day).tickets_per_month
        if _trained(partner, day):
            mean /= 2
        for _ in range(poisson(draws.rng, mean)):
            opened = draws.day_between(day, min(day + timedelta(days=MONTH_DAYS - 1), end))
            minute = draws.rng.randint(7 * 60, 20 * 60)
            draws.tickets += 1
            yield DemoTicket(
                id=f"demo-tk-{draws.tickets:06d}",
                customer_id=customer.id,
                opened_at=datetime.combine(opened, time(minute // 60, minute % 60)),
            )
        day += timedelta(days=MONTH_DAYS)


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; fine for the small means of the demo (deals per week, tickets)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def demo_customers(
    seed: int, as_of: date, start: date, decline_start: date, partners: Sequence[DemoPartner]
) -> tuple[list[DemoCustomer], list[DemoTicket]]:
    """The customers (by partner, then direct) and their tickets, oldest first."""
    draws = _Draws(random.Random(f"customers-{seed}"), as_of, start, decline_start)
    customers: list[DemoCustomer] = []
    tickets: list[DemoTicket] = []
    for partner in [*partners, None]:
        for customer in _partner_customers(draws, partner):
            customers.append(customer)
            tickets.extend(_tickets(draws, partner, customer))
    customers.sort(key=lambda c: (c.became_customer_on, c.id))
    tickets.sort(key=lambda t: (t.opened_at, t.id))
    return customers, tickets
