"""The App Home tab: `app_home_opened` publishes the viewer's Home (views.publish), the period
select publishes it again for the picked period, and a partner's button opens its scorecard in
a modal (views.open). Each goes through access control (bot/gate.py) and is audited once; the
view itself is built by bot/home.py."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.access import Decision, FactUnavailable
from bot.answers import button_target
from bot.blockkit import Message
from bot.gate import answer_request
from bot.home import HomeBuilder, home_period
from bot.listeners.once import click_key
from bot.services import BotServices
from bot.slack_request import SlackRequest
from templates import word

log = logging.getLogger("partner_kpi.slack")

HOME_CALLBACK = "partner_kpi_home"
SCORECARD_CALLBACK = "partner_kpi_scorecard"
#: The scorecard's own buttons answer through a response_url, which a modal has not.
MESSAGE_ONLY_BLOCKS = frozenset({"scorecard_actions"})


def home_view(message: Message, period: str) -> dict[str, Any]:
    """The Home tab's view; the period is kept in private_metadata for the next opening."""
    return {
        "type": "home",
        "callback_id": HOME_CALLBACK,
        "private_metadata": json.dumps({"period": period}),
        "blocks": message.blocks,
    }


def scorecard_modal(message: Message) -> dict[str, Any]:
    blocks = [b for b in message.blocks if b.get("block_id") not in MESSAGE_ONLY_BLOCKS]
    return {
        "type": "modal",
        "callback_id": SCORECARD_CALLBACK,
        "title": {"type": "plain_text", "text": word("home_scorecard_title")},
        "close": {"type": "plain_text", "text": word("home_scorecard_close")},
        "blocks": blocks,
    }


def period_of(view: dict[str, Any] | None) -> str:
    """The period the viewer last picked, from the published view's private_metadata."""
    try:
        return home_period(json.loads((view or {}).get("private_metadata") or "{}").get("period"))
    except (ValueError, AttributeError):
        return home_period(None)


def publish_home(services: BotServices, home: HomeBuilder, user_id: str, period: str) -> bool:
    """Builds and publishes `user_id`'s Home for `period`; False when Slack refused it."""
    period = home_period(period)

    def produce(decision: Decision) -> Message:
        return home.message_for(user_id, _email(services, user_id), decision, period)

    message = answer_request(services, SlackRequest.of_home(user_id, f"home {period}"), produce)
    try:
        services.client.views_publish(user_id=user_id, view=home_view(message, period))
    except SlackApiError as error:
        log.error("views.publish for %s failed: %s", user_id, error.response.get("error"))
        return False
    return True


def handle_home_opened(event: dict[str, Any], services: BotServices, home: HomeBuilder) -> None:
    """The Home tab opened (Slack sends the same event for the Messages tab: ignored)."""
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    publish_home(services, home, str(event["user"]), period_of(event.get("view")))


def handle_period(ack: Any, body: dict[str, Any], services: BotServices, home: HomeBuilder) -> None:
    ack()
    action = body["actions"][0]
    picked = (action.get("selected_option") or {}).get("value")
    publish_home(services, home, str(body["user"]["id"]), home_period(picked))


def handle_scorecard(ack: Any, body: dict[str, Any], services: BotServices) -> None:
    """A partner's button on the Home tab: its scorecard in a modal, within the viewer's
    access (a forged button for another partner is refused inside the modal)."""
    ack()
    key = click_key(body)
    user_id = str(body["user"]["id"])
    if not services.store.claim(key, "click", claimed_by=user_id):
        return  # a redelivery of a click already answered
    value = body["actions"][0].get("value", "")
    request = SlackRequest.of_action(body)

    def produce(decision: Decision) -> Message:
        answers = services.answers(decision)
        target = button_target(value)
        if target is None:
            return answers.error("button_stale")
        return answers.scorecard_by_id(*target)

    message = answer_request(services, request, produce)
    try:
        services.client.views_open(trigger_id=body["trigger_id"], view=scorecard_modal(message))
    except SlackApiError as error:
        log.error("the scorecard modal failed: %s", error.response.get("error"))
        return
    services.store.mark_sent(key, None)


def _email(services: BotServices, user_id: str) -> str | None:
    """The viewer's Slack email (their partners are those the CRM names them owner of)."""
    try:
        email = (services.facts.user(user_id).get("profile") or {}).get("email")
    except FactUnavailable:
        return None
    return email if isinstance(email, str) and email else None


def register(app: App, services: BotServices) -> HomeBuilder:
    home = HomeBuilder(services.store, services.config.app, services.today)

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        handle_home_opened(event, services, home)

    @app.action("home_period")
    def on_period(ack: Any, body: dict[str, Any]) -> None:
        handle_period(ack, body, services, home)

    @app.action("home_scorecard")
    def on_scorecard(ack: Any, body: dict[str, Any]) -> None:
        handle_scorecard(ack, body, services)

    return home
