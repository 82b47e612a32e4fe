"""Builds the Slack Bolt app: its Web API client, the services its listeners share, and the
listeners themselves (registered in bot/listeners/)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import date

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.access import FactUnavailable
from bot.services import BotServices
from bot.slack_facts import SlackFacts, TokenRefused
from kpi.store import Store
from settings.app import LoadedConfig
from settings.periods import today_in
from settings.secrets import Secrets
from templates import word

log = logging.getLogger("partner_kpi.slack")

SLACK_API_URL_ENV = "SLACK_API_URL"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
#: auth.test retries while the workspace is unknown: 1 s, doubling up to a minute.
WORKSPACE_RETRY_FIRST, WORKSPACE_RETRY_MAX = 1.0, 60.0

__all__ = ["BotServices", "MissingSecret", "TokenRefused", "build_app", "secret", "web_client"]


class _SameToken(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns, at every start, that the client's token is
    used instead: it is the same token, so the warning is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


log.addFilter(_SameToken())


class MissingSecret(Exception):
    """A secret the app needs is not in the environment."""


def secret(name: str) -> str:
    value = Secrets().value(name)
    if not value:
        raise MissingSecret(word("faults.missing_secret", name=name))
    return value


def web_client(token: str, api_url: str | None = None, timeout: int = 30) -> WebClient:
    """A Web API client that retries after Slack's Retry-After on 429."""
    client = WebClient(
        token=token,
        base_url=api_url or os.environ.get(SLACK_API_URL_ENV) or DEFAULT_SLACK_API_URL,
        timeout=timeout,
    )
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


#: Called with one sentence when Slack stays unreachable past the start-up bound.
GiveUp = Callable[[str], None]


def learn_workspace_until_known(
    facts: SlackFacts,
    first_wait: float = WORKSPACE_RETRY_FIRST,
    give_up_after: float | None = None,
    give_up: GiveUp | None = None,
) -> threading.Thread | None:
    """Asks auth.test now; if Slack does not answer, keeps asking in the background with
    back-off (requests are refused meanwhile, /health answers 503). Raises TokenRefused when
    the token is refused at start; after `give_up_after` seconds without an answer calls
    `give_up` with the sentence. Returns the background thread, if one was needed."""
    try:
        facts.learn_workspace()
        return None
    except FactUnavailable as error:
        log.warning("Slack did not say which workspace this is (%s); retrying", error.cause)
    started = time.monotonic()

    def retry() -> None:
        wait = first_wait
        while True:
            time.sleep(wait)
            try:
                facts.learn_workspace()
                return
            except FactUnavailable as error:
                cause = error.cause
            except TokenRefused as error:
                log.error("%s Every request is refused until it is fixed.", error)
                if give_up is not None:
                    give_up(str(error))
                return
            waited = time.monotonic() - started
            if give_up is not None and give_up_after is not None and waited >= give_up_after:
                give_up(word("faults.slack_unreachable", seconds=give_up_after, cause=cause))
                return
            wait = min(wait * 2, WORKSPACE_RETRY_MAX)
            log.warning("auth.test still failing (%s); retrying in %.0f s", cause, wait)

    thread = threading.Thread(target=retry, name="auth-test", daemon=True)
    thread.start()
    return thread


def build_app(
    store: Store,
    config: LoadedConfig,
    token: str | None = None,
    signing_secret: str | None = None,
    api_url: str | None = None,
    today: Callable[[], date] | None = None,
    workspace_retry: float = WORKSPACE_RETRY_FIRST,
    give_up: GiveUp | None = None,
    listener_executor: Executor | None = None,
) -> tuple[App, BotServices]:
    """The Bolt app with every listener registered. Request signatures are always verified.
    Raises TokenRefused when Slack refuses the bot token."""
    from bot.listeners import register_listeners

    slack = config.app.slack
    client = web_client(token or secret("SLACK_BOT_TOKEN"), api_url, slack.api_timeout_seconds)
    app = App(
        # signing_secret "": Socket Mode, which never receives a signed request
        signing_secret=secret("SLACK_SIGNING_SECRET") if signing_secret is None else signing_secret,
        client=client,
        request_verification_enabled=True,
        token_verification_enabled=False,  # auth.test below, with retries
        process_before_response=False,  # ack at once; answer through response_url after
        logger=log,
        listener_executor=listener_executor,  # None: Bolt's own pool
    )
    facts = SlackFacts(client)
    learn_workspace_until_known(facts, workspace_retry, slack.startup_timeout_seconds, give_up)
    services = BotServices(
        store=store,
        config=config,
        client=client,
        today=today or (lambda: today_in(config.app.tz)),
        facts=facts,
    )
    register_listeners(app, services)
    return app, services
