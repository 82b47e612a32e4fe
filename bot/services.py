"""What every listener needs (the store, the configuration, Slack's facts) and the access check
each request starts with. Listeners import this module; bot/slack_app.py wires it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import quote

from slack_sdk import WebClient

from bot.access import Decision, FactUnavailable, decide, identify
from bot.answers import Answers
from bot.home import HomeBuilder
from bot.slack_facts import SlackFacts
from bot.slack_request import SlackRequest
from kpi.store import Store
from settings.app import LoadedConfig


@dataclass
class BotServices:
    """The store, the configuration, the Web API client and what Slack told about people."""

    store: Store
    config: LoadedConfig
    client: WebClient
    today: Callable[[], date]
    facts: SlackFacts
    now: Callable[[], datetime] | None = None  # survey rounds' clock; None: the real UTC time
    home: HomeBuilder | None = None  # the App Home's builder, set when its listeners register

    def answers(self, decision: Decision, partner_view: bool = False) -> Answers:
        """Answers within `decision`; in the partner view for an external asker, or where
        `partner_view` says so (a post into a channel shared with the partner)."""
        return Answers(
            self.store,
            self.config.app,
            self.today,
            decision.partner_ids,
            decision.external or partner_view,
        )

    def check(self, request: SlackRequest) -> Decision:
        """Who asks and what they may see; a refusal whenever a fact it needs is missing."""
        workspace = self.facts.workspace
        if workspace is None:
            return Decision.refuse("starting", "the bot's workspace is not known yet (auth.test)")
        try:
            user = self.facts.user(request.user_id)
        except FactUnavailable as error:
            return Decision.refuse("lookup_failed", f"profile lookup failed: {error.cause}")
        asker = identify(
            user,
            workspace,
            request.channel_id,
            request.user_name,
            (request.team_id, request.enterprise_id),
        )
        if isinstance(asker, Decision):
            return asker
        return decide(self.config.app.access, asker, self.facts.group_members)

    def deal_url(self, deal_id: str) -> str | None:
        """A link to the deal in the CRM, where the source has one."""
        app = self.config.app
        safe = quote(deal_id, safe="")
        if app.source == "salesforce" and app.salesforce.instance_url:
            return f"{app.salesforce.instance_url.rstrip('/')}/lightning/r/Opportunity/{safe}/view"
        if app.source == "hubspot" and app.hubspot.portal_id:
            return f"https://app.hubspot.com/contacts/{app.hubspot.portal_id}/record/0-3/{safe}"
        return None
