"""The one message pipeline: a question (an intent, or a button's value) in, a message out.

Slack and the local console both call it, so they show the same messages. Access decisions
are made before (bot/access.py); an asker limited to some partners is enforced here, where a
question outside the asker's set raises `Refused` (so the audit log records it as refused), and
the partner view leaves out what belongs to the vendor or to other partners.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from bot.access import Refused
from bot.blockkit import Message
from bot.intents import (
    BadRequest,
    Help,
    Intent,
    ShowAtRisk,
    ShowCompare,
    ShowProgram,
    ShowScorecard,
    ShowTop,
)
from bot.messages import render
from kpi.deals import largest_deals
from kpi.engine import KpiEngine
from kpi.leaders import leaderboard, value_of
from kpi.lookup import Ambiguous, Found, NotFound, find_partner
from kpi.models import Partner
from kpi.risk import risks_in
from kpi.store import Store
from settings.app import AppConfig
from settings.periods import Period, PeriodError, parse_period


class Answers:
    """Answers questions about the store's data; `partner_ids` limits what may be seen."""

    def __init__(
        self,
        store: Store,
        app: AppConfig,
        today: Callable[[], date],
        partner_ids: frozenset[str] | None = None,
        partner_view: bool = False,
    ) -> None:
        self.store = store
        self.app = app
        self.engine = KpiEngine(store, app.kpi_settings)
        self.today = today
        self.partner_ids = partner_ids
        # What a partner's own people see: their figures and the program's published rules,
        # no direct-deal baseline, no other partner's value, the rank only if configured.
        self.partner_view = partner_view

    def answer(self, intent: Intent) -> Message:
        try:
            return self._answer(intent)
        except PeriodError as error:
            return self.error("period", text=str(error))

    def error(self, sentence: str, **values: str) -> Message:
        """The sentence `sentence` of templates/error.json.j2, with its values."""
        return render("error", sentence=sentence, command=self.app.slack.command, **values)

    def help(self) -> Message:
        return render("help", command=self.app.slack.command, limited=self.partner_ids is not None)

    # --- the questions -------------------------------------------------------------------

    def _answer(self, intent: Intent) -> Message:
        if isinstance(intent, Help):
            return self.help()
        if isinstance(intent, BadRequest):
            return self.error(intent.sentence, **dict(intent.values))
        if isinstance(intent, ShowScorecard):
            return self.scorecard_for(intent.partner, intent.period)
        if self.partner_ids is not None:
            name = type(intent).__name__.removeprefix("Show").lower()
            raise Refused("limited", f"{name} asked by a user limited to their own partner")
        if isinstance(intent, ShowTop):
            return self.top(intent)
        if isinstance(intent, ShowCompare):
            return self.compare(intent.first, intent.second, intent.period)
        if isinstance(intent, ShowProgram):
            return self.program(intent.period)
        if isinstance(intent, ShowAtRisk):
            return self.at_risk(intent.period)
        raise AssertionError(f"unhandled intent {intent!r}")

    def scorecard_for(self, query: str, period_text: str) -> Message:
        period = self._period(period_text)
        found = self._find(query, period_text)
        if not isinstance(found, Partner):
            return found
        return self.scorecard(found.id, period)

    def scorecard(self, partner_id: str, period: Period) -> Message:
        self._require_may_see(partner_id)
        details = self.engine.scorecard(partner_id, period)
        return render(
            "scorecard",
            card=details.card,
            details=details,
            currency=self.app.currency,
            partner_view=self.partner_view,
            show_rank=not self.partner_view or self.app.access.external.show_rank,
        )

    def scorecard_by_id(self, partner_id: str, period_text: str) -> Message:
        return self.scorecard(partner_id, self._period(period_text))

    def compare_with_direct(self, partner_id: str, period_text: str) -> Message:
        self._require_may_see(partner_id)
        if self.partner_view:
            raise Refused("limited", "direct-deal comparison asked in the partner view")
        details = self.engine.scorecard(partner_id, self._period(period_text))
        return render(
            "compare",
            cards=[details.card, _as_card("Direct deals", details.card, details.baseline)],
            currency=self.app.currency,
        )

    def why(
        self, partner_id: str, period_text: str, deal_url: Callable[[str], str | None]
    ) -> Message:
        self._require_may_see(partner_id)
        period = self._period(period_text)
        partner = next((p for p in self.engine.partners() if p.id == partner_id), None)
        if partner is None:
            return self.error("partner_gone")
        won = largest_deals(self.store, partner_id, period, "won")
        lost = largest_deals(self.store, partner_id, period, "lost")
        return render(
            "why",
            partner=partner,
            period=period,
            won=won,
            lost=lost,
            deal_url=deal_url,
            currency=self.app.currency,
        )

    def top(self, intent: ShowTop) -> Message:
        period = self._period(intent.period)
        cards = list(self.engine.all_partners(period).values())
        leaders = leaderboard(cards, intent.by)
        return render(
            "leaderboard",
            rows=[(card, value_of(card, intent.by)) for card in leaders[: intent.count]],
            by=intent.by,
            period=period,
            total=len(leaders),
            currency=self.app.currency,
        )

    def compare(self, first: str, second: str, period_text: str) -> Message:
        period = self._period(period_text)
        partners = []
        for query in (first, second):
            found = self._find(query, period_text)
            if not isinstance(found, Partner):
                return found
            partners.append(found)
        cards = [self.engine.partner(p.id, period) for p in partners]
        return render("compare", cards=cards, currency=self.app.currency)

    def program(self, period_text: str) -> Message:
        card = self.engine.program(self._period(period_text))
        return render(
            "program",
            card=card,
            currency=self.app.currency,
            has_customers=self.engine.has_customers(),
        )

    def at_risk(self, period_text: str) -> Message:
        period = self._period(period_text)
        cards = list(self.engine.all_partners(period).values())
        return render(
            "at_risk",
            risks=risks_in(self.engine, period, cards),
            period=period,
            currency=self.app.currency,
        )

    def press(self, action_id: str, value: str, deal_url: Callable[[str], str | None]) -> Message:
        """The answer to a button of one of these messages (sharing aside, a side effect)."""
        target = button_target(value)
        if target is None:
            return self.error("button_stale")
        partner_id, period = target
        if action_id == "scorecard_why":
            return self.why(partner_id, period, deal_url)
        if action_id == "scorecard_compare":
            return self.compare_with_direct(partner_id, period)
        return self.scorecard_by_id(partner_id, period)

    # --- helpers -------------------------------------------------------------------------

    def _period(self, text: str) -> Period:
        return parse_period(text, self.today())

    def _require_may_see(self, partner_id: str) -> None:
        if self.partner_ids is not None and partner_id not in self.partner_ids:
            raise Refused("other_partner", f"partner {partner_id} is outside the asker's set")

    def _find(self, query: str, period_text: str) -> Partner | Message:
        partners = self.store.partners()
        if self.partner_ids is not None:
            partners = [p for p in partners if p.id in self.partner_ids]
        result = find_partner(query, partners)
        if isinstance(result, Found):
            return result.partner
        if isinstance(result, Ambiguous):
            return render(
                "choose_partner", query=query, candidates=result.candidates, period=period_text
            )
        assert isinstance(result, NotFound)
        return render("not_found", query=query, suggestions=result.suggestions, period=period_text)


def button_target(value: str) -> tuple[str, str] | None:
    """The (partner id, period) a button carries, or None when its value is not ours."""
    try:
        data = json.loads(value)
        return str(data["partner_id"]), str(data["period"])
    except (ValueError, KeyError, TypeError):
        return None


def _as_card(name: str, like: dict[str, Any], kpis: dict[str, Any]) -> dict[str, Any]:
    """A card-shaped view of KPIs that belong to no partner (the direct-deal baseline)."""
    return {"partner": {"id": "", "name": name}, "period": like["period"], "kpis": kpis}
