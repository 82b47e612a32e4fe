"""The KPI engine: a partner's or the whole program's KPIs for a period, in the JSON contract
of kpi-spec.md section 6, with the previous period, channels, stages, quality score and rank."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, select

from kpi import customer_image, deal_image, rollups, schema, stage_image, totals_image
from kpi.aggregates import (
    Aggregator,
    ClosedTotals,
    PartnerKey,
    Totals,
    TrustCounts,
    pipeline_order,
)
from kpi.customers import add_customers, add_customers_of
from kpi.formulas import (
    SURVEY_KEYS,
    channels_of,
    closed_kpis,
    kpis_named,
    kpis_of,
    ratio,
    stages_of,
)
from kpi.gc_pause import collector_paused
from kpi.goal_tracker import goal_objects
from kpi.goals import PARTNERS, PROGRAM, Only, read_goals
from kpi.quality import Standing
from kpi.ranking import RANK_SUMS, Ranking, RankingCache, RankRow, rank, rank_table
from kpi.store import Store
from kpi.sync_status import last_sync_problem
from kpi.tiers import TierStatus, tier_status
from kpi.training import (
    Latest,
    latest_trainings,
    program_training,
    trained_partners,
    training_object,
)
from settings.kpi import KpiSettings
from settings.periods import Period, previous_period, today_in


class PartnerRow(NamedTuple):  # a NamedTuple: thousands are built per question
    id: str
    name: str
    tier: str | None
    joined_on: date
    left_on: date | None

    def active_in(self, period: Period) -> bool:
        """Active at some point of the period (the quality score's test)."""
        return self.joined_on < period.end and (
            self.left_on is None or self.left_on >= period.start
        )

    def active_at(self, day: date) -> bool:
        return self.joined_on < day and (self.left_on is None or self.left_on >= day)


@dataclass
class PeriodData:
    """Everything computed for one period, from which any partner's card is cut."""

    period: Period
    previous: Period
    current: dict[PartnerKey, Totals]
    earlier: dict[PartnerKey, Totals]
    pipeline: list[str]
    all_entries: dict[str, int]
    ranking: Ranking  # every active partner's quality components, score and rank
    data_as_of: str | None
    as_of: date  # the date the period was named relative to (section 8's after_days)
    trainings: dict[str, Latest]  # the latest completion of the partners asked about
    trained: set[str]  # partners trained in the year before the period's end (the program's)

    @property
    def ranked_partners(self) -> int:
        return self._ranked

    @property
    def standings(self) -> dict[str, Standing]:
        return self.ranking.standings

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        return self.ranking.components

    def __post_init__(self) -> None:
        self._ranked = self.ranking.ranked
        # the dates' texts once, not once per card
        self.period_texts = (
            self.period.name,
            self.period.start.isoformat(),
            self.period.end.isoformat(),
        )
        self.previous_texts = (self.previous.start.isoformat(), self.previous.end.isoformat())


@dataclass(frozen=True)
class Scorecard:
    """A partner's card (the JSON contract) and what a person reads beside it."""

    card: dict[str, Any]
    tier: TierStatus
    trust: TrustCounts
    baseline: dict[str, Any]  # the same KPIs over direct deals
    sync_problem: str | None = None  # the last sync failed, was refused or stopped early
    has_customers: bool = False  # the deployment has customer data (section 7) to show


class KpiEngine:
    def __init__(self, store: Store, settings: KpiSettings) -> None:
        self.store = store
        self.settings = settings
        self.rankings = RankingCache()  # one partner's card reads its period's from here

    # --- public ------------------------------------------------------------------------

    def partner(self, partner_id: str, period: Period, as_of: date | None = None) -> dict[str, Any]:
        """The partner's card, with its goals whose period contains `as_of` (default: today)."""
        partners = self.partners()
        data = self._compute(period, partners, [partner_id])
        partner = next(p for p in partners if p.id == partner_id)
        card = self._card(data, partner)
        card["goals"] = self.current_goals(partner_id, self._as_of(as_of), partners)
        return card

    def scorecard(self, partner_id: str, period: Period, as_of: date | None = None) -> Scorecard:
        """The card with the tier it earns, the data-trust counts and the direct baseline."""
        partners = self.partners()
        data = self._compute(period, partners, [partner_id])
        partner = next(p for p in partners if p.id == partner_id)
        card = self._card(data, partner)
        card["goals"] = self.current_goals(partner_id, self._as_of(as_of), partners)
        with self.store.engine.connect() as connection:
            trust = Aggregator(connection, self.settings.tz).trust(period, [partner_id])
        tier = tier_status(
            self.settings.tiers,
            partner_id,
            card["quality_score"],
            partner.tier,
            data.components,
            self.settings.weights,
        )
        return Scorecard(
            card=card,
            tier=tier,
            trust=trust.get(partner_id, TrustCounts()),
            baseline=kpis_of(data.current.get(None, Totals())),
            sync_problem=str(problem) if (problem := last_sync_problem(self.store)) else None,
            has_customers=self.has_customers(),
        )

    def all_partners(self, period: Period, as_of: date | None = None) -> dict[str, dict[str, Any]]:
        """Every partner's card for one period (what a digest needs), from one set of queries."""
        with collector_paused():
            partners = self.partners()
            data = self._compute(period, partners, None)
            cards = {partner.id: self._card(data, partner) for partner in partners}
            for card in cards.values():
                card["goals"] = []
            for goal in self.current_goals(PARTNERS, self._as_of(as_of), partners):
                cards[goal["partner"]["id"]]["goals"].append(goal)
        return cards

    def program(self, period: Period, as_of: date | None = None) -> dict[str, Any]:
        """The same shape for all partners pooled, with the program KPIs and goals added."""
        with collector_paused():  # it totals every partner too
            card = self._program(period)
            card["goals"] = self.current_goals(PROGRAM, self._as_of(as_of))
        return card

    # --- goals (kpi-spec.md section 9) -------------------------------------------------

    def range_kpis(
        self,
        period: Period,
        partner_ids: Sequence[str],
        refresh: bool = True,
        customers: bool = True,
        keys: Collection[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The `kpis` of these partners over one range: the per-range KPI computation a goal's
        `actual` reads, so that any key of `kpis` can be a goal. `refresh=False` when the
        caller has just refreshed the rollups (`refresh_rollups`) for several ranges;
        `customers=False` when no customer key is read (they are then 0 and null); `keys`: only
        these keys of `kpis` (the survey answers are read only for theirs)."""
        if refresh:
            self.refresh_rollups()
        surveys = keys is None or not SURVEY_KEYS.isdisjoint(keys)
        with self.store.engine.connect() as connection:
            aggregator = Aggregator(connection, self.settings.tz)
            totals = aggregator.totals(
                period, partner_ids, surveys=surveys, image=_image(connection)
            )
            if customers:  # many partners' (goals of every partner): from the in-memory copy
                many = len(partner_ids) >= _MANY_PARTNERS
                image = _customers_image(connection) if many else None
                add_customers(connection, self.settings.tz, totals, period, partner_ids, image)
        nothing = Totals()
        if keys is None:
            return {pid: kpis_of(totals.get(pid, nothing)) for pid in partner_ids}
        return {pid: kpis_named(totals.get(pid, nothing), keys) for pid in partner_ids}

    def close_rates(self, period: Period, partner_ids: Sequence[str]) -> dict[str, float | None]:
        """The close rate (`kpis`' close_rate) of these partners over one range, without the
        rest of `kpis` (a forecast reads only this, for every partner with a goal)."""
        with self.store.engine.connect() as connection:
            aggregator = Aggregator(connection, self.settings.tz)
            totals = aggregator.totals(period, partner_ids, surveys=False, image=_image(connection))
        nothing = ClosedTotals()
        return {
            pid: closed_kpis(totals[pid].closed if pid in totals else nothing)["close_rate"]
            for pid in partner_ids
        }

    def refresh_rollups(self) -> None:
        rollups.refresh(self.store.engine, wait=False)

    def program_kpis(self, period: Period, customers: bool = True) -> dict[str, Any]:
        """The program's `kpis` over one range (a program goal's `actual`): `program`'s
        `kpis` without its previous period, channels, stages and ranking (`customers=False`:
        without the customer keys' sums either)."""
        partners = self.partners()
        self.refresh_rollups()
        with self.store.engine.connect() as connection:
            aggregator = Aggregator(connection, self.settings.tz)
            totals = aggregator.totals(period, image=_image(connection))
            if customers:
                add_customers(
                    connection, self.settings.tz, totals, period, image=_customers_image(connection)
                )
        pooled = _pooled(totals)
        return kpis_of(pooled) | self._program_kpis(partners, period, pooled, totals)

    def goals(
        self,
        only: Only,
        as_of: date,
        partners: list[PartnerRow] | None = None,
        current: bool = False,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every goal in force (`only`: one partner's id, PROGRAM, PARTNERS or a set of partner
        ids; `current`: those
        whose period contains `as_of`) as section 9's objects, in its order, and the app.yaml
        entries left out because their partner is unknown."""
        partners = self.partners() if partners is None else partners
        names = {p.id: p.name for p in partners}
        with self.store.engine.connect() as connection:
            book = read_goals(connection, self.settings.goals, names, only)
        chosen = [g for g in book.goals if not current or g.period.contains(as_of)]
        return goal_objects(self, chosen, as_of, names), book.problems

    def current_goals(
        self, only: Only, as_of: date, partners: list[PartnerRow] | None = None
    ) -> list[dict[str, Any]]:
        """The goals whose period contains `as_of` (what a card carries)."""
        goals, _problems = self.goals(only, as_of, partners, current=True)
        return goals

    def _as_of(self, as_of: date | None) -> date:
        return today_in(self.settings.tz) if as_of is None else as_of

    def _program(self, period: Period) -> dict[str, Any]:
        partners = self.partners()
        data = self._compute(period, partners, None, partner_training=False)
        return self._program_card(data, partners)

    def overview(self, period: Period) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The program's card and every partner's, from one set of queries, for a summary (the
        App Home): every KPI, trend, score and rank, but no channels or stages (empty), which
        would cost most of the time at 2,000 partners."""
        with collector_paused():
            partners = self.partners()
            data = self._compute(period, partners, None, details=False)
            cards = {partner.id: self._card(data, partner) for partner in partners}
            return self._program_card(data, partners), cards

    def _program_card(self, data: PeriodData, partners: list[PartnerRow]) -> dict[str, Any]:
        pooled_now, pooled_before = _pooled(data.current), _pooled(data.earlier)
        kpis = kpis_of(pooled_now) | self._program_kpis(
            partners, data.period, pooled_now, data.current
        )
        previous = kpis_of(pooled_before) | self._program_kpis(
            partners, data.previous, pooled_before, data.earlier
        )
        return self._envelope(
            data,
            partner=None,
            kpis=kpis,
            previous=previous,
            totals=pooled_now,
            standing=None,
            training=program_training(
                (p.id for p in partners if p.active_at(data.period.end)),
                data.trained,
                data.current,
            ),
        )

    def baseline(self, period: Period) -> dict[str, Any]:
        """The KPIs of direct deals (no partner), to compare partners with the company's team."""
        rollups.refresh(self.store.engine, wait=False)
        with self.store.engine.connect() as connection:
            aggregator = Aggregator(connection, self.settings.tz)
            totals = aggregator.totals(period, image=_image(connection))
        return kpis_of(totals.get(None, Totals()))

    def trust_counts(self, period: Period) -> dict[PartnerKey, TrustCounts]:
        """Every partner's data-trust counts for the period."""
        with self.store.engine.connect() as connection:
            return Aggregator(connection, self.settings.tz).trust(period)

    def has_customers(self) -> bool:
        """Whether the store holds any customer: without, the customer KPIs are all zero and
        n/a, and the messages leave them out."""
        query = select(schema.customers.c.id).limit(1)
        with self.store.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def open_past_close(self, period: Period) -> dict[PartnerKey, int]:
        """Every partner's open deals past their expected close date at the period's end."""
        with self.store.engine.connect() as connection:
            return Aggregator(connection, self.settings.tz).open_past_close(period)

    def partners(self) -> list[PartnerRow]:
        p = schema.partners
        query = select(p.c.id, p.c.name, p.c.tier, p.c.joined_on, p.c.left_on).order_by(p.c.name)
        with self.store.engine.connect() as connection:
            return [PartnerRow(*row) for row in connection.execute(query)]

    # --- computing ---------------------------------------------------------------------

    def _compute(
        self,
        period: Period,
        partners: list[PartnerRow],
        partner_ids: Sequence[str] | None,
        details: bool = True,
        partner_training: bool = True,
    ) -> PeriodData:
        """The period's totals for every partner (the quality score ranks them all), and the
        previous period's, the stages, customers and latest trainings only for `partner_ids`
        (None: all), with who is trained (the program's groups). Without `details`, no
        channels and no stages (their keys are then empty or zero); without
        `partner_training` (the program alone), no partner's latest training."""
        previous = previous_period(period)
        rollups.refresh(self.store.engine, wait=False)
        with self.store.engine.connect() as connection:
            aggregator = Aggregator(connection, self.settings.tz)
            version = rollups.version(connection)
            image = totals_image.current(connection, version)
            if partner_ids is None:
                current = aggregator.totals(period, image=image)
                ranking = self._rank(partners, period, _rank_sums_of(current))
            else:
                ranking = self._cached_ranking(aggregator, period, partners, version, image)
                # the direct deals too: the bot's scorecard shows them as its baseline
                current = aggregator.totals(period, [*partner_ids, None], image=image)
            pipeline: list[str] = []
            all_entries: dict[str, int] = {}
            if details:
                # one partner's channels and stages are a few seeks in SQL: no images
                # (the largest load first: its peak then sits on fewer resident images)
                every = partner_ids is None
                stages = stage_image.current(connection, version) if every else None
                deals = deal_image.current(connection, version) if every else None
                aggregator.add_channels(current, period, partner_ids, deals)
                pipeline = self._pipeline(connection)
                aggregator.add_stages(current, period, pipeline, partner_ids, stages)
                all_entries = aggregator.stage_entries(period, pipeline)
            earlier = aggregator.totals(previous, partner_ids, image=image)
            add_customers_of(
                connection,
                self.settings.tz,
                [(current, period), (earlier, previous)],
                partner_ids,
                _customers_image(connection) if partner_ids is None else None,
            )
            # who is trained: for the program's groups, which only every-partner reads build
            trained = trained_partners(connection, period.end) if partner_ids is None else set()
            trainings = (
                latest_trainings(connection, period.end, partner_ids, image)
                if partner_training
                else {}
            )
        as_of = self.store.data_as_of()
        return PeriodData(
            period=period,
            previous=previous,
            current=current,
            earlier=earlier,
            pipeline=pipeline,
            all_entries=all_entries,
            ranking=ranking,
            data_as_of=as_of.isoformat() if as_of else None,
            as_of=period.as_of or today_in(self.settings.tz),
            trainings=trainings,
            trained=trained,
        )

    def _rank(
        self, partners: list[PartnerRow], period: Period, sums: dict[str, RankRow]
    ) -> Ranking:
        active = [partner.id for partner in partners if partner.active_in(period)]
        return rank(active, sums, self.settings.weights)

    def _cached_ranking(
        self,
        aggregator: Aggregator,
        period: Period,
        partners: list[PartnerRow],
        version: int,
        image: totals_image.TotalsImage | None,
    ) -> Ranking:
        """The period's ranking for one partner's card: from `self.rankings` while the rollups,
        the partners and the period's survey answers are as they were, else computed from every
        partner's running totals (`image`, their copy at `version`, when there is one), and
        kept."""
        connection = aggregator.connection
        window = (period.start, period.end)
        who = [(p.id, p.joined_on, p.left_on) for p in partners]
        surveys = aggregator.surveys(period)
        found = self.rankings.get(window, version, who, surveys)
        if found is not None:
            return found
        if image is None:  # a small store: the SQL is cheap there
            sums: dict[str, RankRow] = {
                key: (*values, 0, 0, 0)
                for key, values in rollups.rank_sums(connection, period.start, period.end).items()
            }
            fields = len(rollups.RANK_FIELDS)
            for partner_id, answers, promoters, detractors in surveys:
                mine = sums.get(partner_id, (0,) * len(RANK_SUMS))
                sums[partner_id] = (*mine[:fields], answers, promoters, detractors)
            ranking = self._rank(partners, period, sums)
        else:  # the in-memory copy of the running totals at `version`, as columns
            active = [partner.id for partner in partners if partner.active_in(period)]
            table = np.zeros((len(active), len(RANK_SUMS)), dtype=np.float64)
            table[:, : len(rollups.RANK_FIELDS)] = image.rank_table(
                period.start, period.end, active
            )
            position = {pid: index for index, pid in enumerate(active)}
            for partner_id, responses, promoters, detractors in surveys:
                if partner_id in position:
                    row = table[position[partner_id]]
                    row[len(rollups.RANK_FIELDS) :] = (responses, promoters, detractors)
            ranking = rank_table(active, table, self.settings.weights)
        self.rankings.put(window, version, who, surveys, ranking)
        return ranking

    def _pipeline(self, connection: Connection) -> list[str]:
        return pipeline_order(connection, self.settings.stages, self.settings.source)

    def _card(self, data: PeriodData, partner: PartnerRow) -> dict[str, Any]:
        totals = data.current.get(partner.id, Totals())
        return self._envelope(
            data,
            partner={"id": partner.id, "name": partner.name},
            kpis=kpis_of(totals),
            previous=kpis_of(data.earlier.get(partner.id, Totals())),
            totals=totals,
            standing=data.standings.get(partner.id),
            training=training_object(data.trainings.get(partner.id), data.as_of),
        )

    def _envelope(
        self,
        data: PeriodData,
        partner: dict[str, str] | None,
        kpis: dict[str, Any],
        previous: dict[str, Any],
        totals: Totals,
        standing: Standing | None,
        training: dict[str, Any] | None,
    ) -> dict[str, Any]:
        name, start, end = data.period_texts
        previous_start, previous_end = data.previous_texts
        return {
            "partner": partner,
            "period": {"name": name, "start": start, "end": end},
            "previous_period": {"start": previous_start, "end": previous_end},
            "kpis": kpis,
            "previous": previous,
            "channels": channels_of(totals),
            "stages": stages_of(totals, data.pipeline, data.all_entries),
            "quality_score": standing.score if standing else None,
            "rank": standing.rank if standing else None,
            "ranked_partners": data.ranked_partners,
            "training": training,
            "data_as_of": data.data_as_of,
        }

    @staticmethod
    def _program_kpis(
        partners: list[PartnerRow],
        period: Period,
        pooled: Totals,
        totals: dict[PartnerKey, Totals],
    ) -> dict[str, Any]:
        active_at_end = sum(1 for p in partners if p.active_at(period.end))
        active_at_start = sum(1 for p in partners if p.active_at(period.start))
        partner_revenue = float(pooled.closed.won_revenue)
        direct = totals.get(None, Totals()).closed.won_revenue
        return {
            "active_partners": active_at_end,
            "partners_joined": sum(1 for p in partners if period.contains(p.joined_on)),
            "partners_left": sum(
                1 for p in partners if p.left_on is not None and period.contains(p.left_on)
            ),
            "partner_count_change": active_at_end - active_at_start,
            "partner_revenue": partner_revenue,
            "partner_revenue_share": ratio(partner_revenue, partner_revenue + direct),
        }


def _image(connection: Connection) -> totals_image.TotalsImage | None:
    """The in-memory copy of the running totals at the current rollups version (None: a small
    store, or another thread is loading it; the SQL then reads them)."""
    return totals_image.current(connection, rollups.version(connection))


#: From this many partners on, their customer sums are cut from the copy of every partner's
#: (about 5 ms a window at 50,000 customers) rather than read in SQL (a few seeks each; 2,000
#: partners at once, 150 ms).
_MANY_PARTNERS = 100


def _customers_image(connection: Connection) -> customer_image.CustomerImage | None:
    """The in-memory copy of the customers and tickets at their current version (None: a
    small store, or another thread is loading it; the SQL then reads them)."""
    return customer_image.current(connection, customer_image.version(connection))


def _pooled(totals: dict[PartnerKey, Totals]) -> Totals:
    """Every deal with a partner, whether or not the partner is known or active."""
    pooled = Totals()
    for key, partner_totals in totals.items():
        if key is not None:
            pooled.add(partner_totals)
    return pooled


def _rank_sums_of(totals: dict[PartnerKey, Totals]) -> dict[str, RankRow]:
    """Each partner's RANK_SUMS from its Totals."""
    return {
        key: (
            t.closed.won,
            t.closed.lost,
            t.closed.won_revenue,
            t.closed.won_with_amount,
            t.closed.cycle_days,
            t.pipeline_count,
            t.courses,
            t.survey_responses,
            t.promoters,
            t.detractors,
        )
        for key, t in totals.items()
        if key is not None
    }
