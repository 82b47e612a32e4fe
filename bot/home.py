"""The App Home tab: what one viewer may see of the program, for the period they picked.

A manager (who may see every partner) sees the program's headline KPIs with their trends, the
top partners and those at risk, the partners the CRM names them owner of (`owner_email` = their
Slack email), the goals of those partners whose period is current (the program's goals when they
own none), the data's age and the last sync's outcome, and the next digest and survey round.
An external viewer (a Slack Connect user, a guest) sees their own partner only, in the partner
view, with its current goals. Every word is in templates/home.json.j2 and goals_section.j2.

Two caches keep a second opening cheap, both keyed by the data version (the latest finished
sync run), so a new sync is shown at once: the program's numbers for a period, shared by every
manager, and each viewer's built view for `VIEW_TTL` seconds (opening the tab twice in a second
builds it once: the second opening waits for the first's build and takes it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.access import Decision, Refused
from bot.blockkit import Message
from bot.jobs import cron_trigger, next_fire, utc_now
from bot.messages import render_view
from kpi.engine import KpiEngine
from kpi.goals import PROGRAM
from kpi.leaders import leaderboard
from kpi.risk import AtRisk, risks_in
from kpi.store import Store
from kpi.sync_status import last_sync_problem
from settings.app import AppConfig
from settings.periods import Period, parse_period
from templates import word_table

#: The periods the Home tab's select offers, in its order; the first view shows the default.
HOME_PERIODS = ("last-30d", "last-90d", "this-quarter", "last-quarter")
DEFAULT_HOME_PERIOD = "last-90d"
TOP_PARTNERS = 5
AT_RISK_SHOWN = 10
OWN_SHOWN = 25
GOALS_SHOWN = 10
VIEW_TTL = 10.0  # seconds a viewer's built view is reused while the data version is the same
SHARED_KEPT = 4  # program snapshots kept: the four periods of one data version


def home_period(text: str | None) -> str:
    """One of HOME_PERIODS (a stale or forged value falls back to the default)."""
    return text if text in HOME_PERIODS else DEFAULT_HOME_PERIOD


@dataclass(frozen=True)
class ProgramSnapshot:
    """What every manager's Home shows alike for one period and data version."""

    period: Period
    program: dict[str, Any]
    cards: dict[str, dict[str, Any]]
    leaders: list[dict[str, Any]]  # by quality score, every partner that has one
    risks: list[AtRisk]
    owned: dict[str, list[str]]  # owner email, lower case -> partner ids in name order


@dataclass
class _Entry:
    built_at: float
    message: Message


@dataclass
class HomeBuilder:
    """Builds (and briefly keeps) each viewer's Home tab."""

    store: Store
    app: AppConfig
    today: Callable[[], date]
    now: Callable[[], datetime] = utc_now
    clock: Callable[[], float] = time.monotonic
    ttl: float = VIEW_TTL
    builds: int = 0  # views built, not taken from the cache (tests and the bench read it)
    _views: dict[tuple[Any, ...], _Entry] = field(default_factory=dict)
    _shared: OrderedDict[tuple[Any, ...], ProgramSnapshot] = field(default_factory=OrderedDict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _shared_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.engine = KpiEngine(self.store, self.app.kpi_settings)

    def message_for(
        self, user_id: str, email: str | None, decision: Decision, period_name: str
    ) -> Message:
        """The Home tab's blocks for an allowed viewer: from the cache when the same viewer,
        period and data version were built less than `ttl` seconds ago."""
        period_name = home_period(period_name)
        version = self._version()
        key = (user_id, period_name, version, decision.partner_ids, decision.external, email)
        with self._viewer_lock(user_id):
            entry = self._views.get(key)
            if entry is not None and self.clock() - entry.built_at < self.ttl:
                return entry.message
            message = self._build(email, decision, period_name, version)
            self.builds += 1
            with self._guard:
                self._views = {k: e for k, e in self._views.items() if k[0] != user_id}
                self._views[key] = _Entry(self.clock(), message)
            return message

    # --- building ----------------------------------------------------------------------------

    def _build(
        self, email: str | None, decision: Decision, period_name: str, version: int | None
    ) -> Message:
        today = self.today()
        period = parse_period(period_name, today)
        common = {
            "period": period,
            "periods": [(name, word_table("home_periods")[name]) for name in HOME_PERIODS],
            "currency": self.app.currency,
            "command": self.app.slack.command,
            "data_as_of": self.store.data_as_of(),
            "last_sync": self.store.last_sync(status=None),
            "sync_problem": last_sync_problem(self.store),
        }
        if decision.partner_ids is not None:
            return self._partner_home(decision.partner_ids, period, today, common)
        shared = self._snapshot(period, version)
        owned_ids = shared.owned.get(email.strip().lower(), []) if email else []
        # Goals are read per viewer, not in the shared snapshot: one set in Slack changes no
        # data version, and is shown once this viewer's cached view is `ttl` old.
        goals = self.engine.current_goals(frozenset(owned_ids) if owned_ids else PROGRAM, today)
        return render_view(
            "home",
            kind="program",
            card=shared.program,
            leaders=shared.leaders[:TOP_PARTNERS],
            risks=shared.risks[:AT_RISK_SHOWN],
            risks_total=len(shared.risks),
            own=[shared.cards[pid] for pid in owned_ids[:OWN_SHOWN] if pid in shared.cards],
            own_total=len(owned_ids),
            has_email=bool(email),
            goals=goals[:GOALS_SHOWN],
            goals_total=len(goals),
            goals_of="own" if owned_ids else "program",
            digests=self._next_digests(),
            surveys=self._next_surveys(),
            **common,
        )

    def _partner_home(
        self, partner_ids: frozenset[str], period: Period, today: date, common: dict[str, Any]
    ) -> Message:
        """An external viewer's own partner (the partner view: no other partner, no rank
        unless access.external.show_rank) and its current goals."""
        known = {p.id for p in self.engine.partners()}
        mine = sorted(pid for pid in partner_ids if pid in known)
        if not mine:
            raise Refused("no_partner", "the viewer's partner is not in the store")
        details = self.engine.scorecard(mine[0], period, as_of=today)
        goals = details.card["goals"]
        return render_view(
            "home",
            kind="partner",
            card=details.card,
            goals=goals[:GOALS_SHOWN],
            goals_total=len(goals),
            goals_of="partner",
            tier=details.tier,
            show_rank=self.app.access.external.show_rank,
            **common,
        )

    def _snapshot(self, period: Period, version: int | None) -> ProgramSnapshot:
        """The program's numbers for `period` at `version`: computed by the first manager who
        needs them, shared by every other."""
        key = (period.name, period.start, period.end, version)
        with self._shared_lock:
            found = self._shared.get(key)
            if found is not None:
                return found
            program, cards = self.engine.overview(period)
            listed = list(cards.values())
            owned: dict[str, list[str]] = {}
            for partner in self.store.partners():  # in name order
                if partner.owner_email and partner.id in cards:
                    owned.setdefault(partner.owner_email.strip().lower(), []).append(partner.id)
            snapshot = ProgramSnapshot(
                period=period,
                program=program,
                cards=cards,
                leaders=leaderboard(listed, "quality_score"),
                risks=risks_in(self.engine, period, listed),
                owned=owned,
            )
            self._shared[key] = snapshot
            while len(self._shared) > SHARED_KEPT:
                self._shared.popitem(last=False)
            return snapshot

    def _next_digests(self) -> list[tuple[str, str, datetime]]:
        now = self.now()
        found = []
        for digest in self.app.digests:
            fire = next_fire(cron_trigger(digest, self.app.timezone), now)
            if fire is not None:
                found.append((digest.name, digest.channel, fire))
        return sorted(found, key=lambda item: item[2])[:3]

    def _next_surveys(self) -> list[tuple[str, datetime]]:
        now = self.now()
        found = []
        for campaign in self.app.surveys:
            fire = next_fire(cron_trigger(campaign, self.app.timezone), now)
            if fire is not None:
                found.append((campaign.name, fire))
        return sorted(found, key=lambda item: item[1])[:3]

    # --- helpers -----------------------------------------------------------------------------

    def _version(self) -> int | None:
        latest = self.store.last_sync(status=None)
        return latest.id if latest is not None else None

    def _viewer_lock(self, user_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(user_id, threading.Lock())
