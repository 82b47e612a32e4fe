"""Builds the Slack Bolt app: its Web API client, the services its listeners share, and the
listeners themselves (registered in bot/listeners/)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.access import Asker, Decision, decide
from bot.answers import Answers
from kpi.config import LoadedConfig
from kpi.periods import today_in
from kpi.store import Store

log = logging.getLogger("partner_kpi.slack")

SLACK_API_URL_ENV = "SLACK_API_URL"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
CACHE_SECONDS = 600


class _SameToken(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns, at every start, that the client's token is
    used instead: it is the same token, so the warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


log.addFilter(_SameToken())


class MissingSecret(Exception):
    """A secret the app needs is not in the environment."""


def secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSecret(f"{name} is not set; export it in the environment (never in app.yaml).")
    return value


@dataclass
class _Cached:
    value: Any
    at: float


@dataclass
class BotServices:
    """What every listener needs: the store, the configuration and who is asking."""

    store: Store
    config: LoadedConfig
    client: WebClient
    today: Callable[[], date]
    team_id: str | None = None
    now: Callable[[], datetime] | None = None  # survey rounds' clock; None: the real UTC time
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answers(self, decision: Decision) -> Answers:
        return Answers(self.store, self.config.app, self.today, decision.partner_ids)

    def asker(self, user_id: str, channel_id: str | None, user_name: str | None) -> Asker:
        """Who is asking, with what users.info says: external (Slack Connect, guest) and email."""
        user = self._cached(f"user:{user_id}", lambda: self._user_info(user_id))
        profile = user.get("profile", {}) if user else {}
        external = bool(
            user
            and (
                user.get("is_restricted")
                or user.get("is_ultra_restricted")
                or user.get("is_stranger")
                or (self.team_id and user.get("team_id") and user.get("team_id") != self.team_id)
            )
        )
        return Asker(
            user_id=user_id,
            channel_id=channel_id,
            email=profile.get("email"),
            external=external,
            user_name=user_name,
        )

    def decide(self, asker: Asker, request: str) -> Decision:
        """The access decision, written to the audit log whatever it is."""
        decision = decide(self.config.app.access, asker, self._group_members)
        self.store.audit(
            asker.user_id,
            request,
            decision.allowed,
            decision.reason,
            user_name=asker.user_name,
            channel_id=asker.channel_id,
        )
        return decision

    def deal_url(self, deal_id: str) -> str | None:
        """A link to the deal in the CRM, where the source has one."""
        app = self.config.app
        safe = quote(deal_id, safe="")
        if app.source == "salesforce" and app.salesforce.instance_url:
            return f"{app.salesforce.instance_url.rstrip('/')}/lightning/r/Opportunity/{safe}/view"
        if app.source == "hubspot" and app.hubspot.portal_id:
            return f"https://app.hubspot.com/contacts/{app.hubspot.portal_id}/record/0-3/{safe}"
        return None

    def _user_info(self, user_id: str) -> dict[str, Any] | None:
        try:
            user: dict[str, Any] = self.client.users_info(user=user_id)["user"]
            return user
        except SlackApiError as error:
            log.error("users.info for %s failed: %s", user_id, error.response.get("error"))
            return None

    def _group_members(self, group: str) -> set[str]:
        def fetch() -> set[str]:
            try:
                return set(self.client.usergroups_users_list(usergroup=group)["users"])
            except SlackApiError as error:
                log.error("usergroups.users.list %s failed: %s", group, error.response.get("error"))
                return set()

        members: set[str] = self._cached(f"group:{group}", fetch)
        return members

    def _cached(self, key: str, fetch: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit.at < CACHE_SECONDS:
                return hit.value
        value = fetch()
        with self._lock:
            self._cache[key] = _Cached(value, now)
        return value


def web_client(token: str, api_url: str | None = None) -> WebClient:
    """A Web API client that retries after Slack's Retry-After on 429."""
    client = WebClient(
        token=token,
        base_url=api_url or os.environ.get(SLACK_API_URL_ENV) or DEFAULT_SLACK_API_URL,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


def build_app(
    store: Store,
    config: LoadedConfig,
    token: str | None = None,
    signing_secret: str | None = None,
    api_url: str | None = None,
    today: Callable[[], date] | None = None,
) -> tuple[App, BotServices]:
    """The Bolt app with every listener registered. Request signatures are always verified."""
    from bot.listeners import register_listeners

    client = web_client(token or secret("SLACK_BOT_TOKEN"), api_url)
    app = App(
        # signing_secret "": Socket Mode, which never receives a signed request
        signing_secret=secret("SLACK_SIGNING_SECRET") if signing_secret is None else signing_secret,
        client=client,
        request_verification_enabled=True,
        token_verification_enabled=False,  # auth.test below, logged rather than fatal
        process_before_response=False,  # ack at once; answer through response_url after
        logger=log,
    )
    team_id = None
    try:
        team_id = client.auth_test().get("team_id")
    except SlackApiError as error:
        log.error("auth.test failed: %s", error.response.get("error"))
    services = BotServices(
        store=store,
        config=config,
        client=client,
        today=today or (lambda: today_in(config.app.tz)),
        team_id=team_id,
    )
    register_listeners(app, services)
    return app, services
