"""Buttons on the bot's messages: pick a partner, previous period, compare, why, share."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App

from bot.access import Decision, Refused
from bot.answers import button_target
from bot.blockkit import Message
from bot.channel_audience import ChannelUnchecked, SharedChannelRefused, channel_partner
from bot.gate import answer_request
from bot.listeners.once import claim_click
from bot.listeners.replies import reply
from bot.services import BotServices
from bot.slack_request import SlackRequest

log = logging.getLogger("partner_kpi.slack")

CHOOSE = re.compile(r"^choose_partner_\d+$")


def handle_action(ack: Any, body: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Answers one button click; a plain function so tests can call it with fakes."""
    ack()
    click = claim_click(services.store, body, respond)  # a redelivered click posts nothing
    if click is None:
        return
    respond = click.respond
    action = body["actions"][0]
    action_id = action["action_id"]
    value = action.get("value", "")
    request = SlackRequest.of_action(body)
    if action_id == "scorecard_share" and button_target(value) is not None:
        _share(action, respond, services, request)
        return

    def produce(decision: Decision) -> Message:
        return services.answers(decision).press(action_id, value, services.deal_url)

    message = answer_request(services, request, produce)
    # A pick from a list replaces the list; other buttons add a message under the scorecard.
    reply(respond, message, replace_original=bool(CHOOSE.match(action_id)))


def _share(
    action: dict[str, Any],
    respond: Any,
    services: BotServices,
    request: SlackRequest,
) -> None:
    """Posts the scorecard for the whole channel (once: the click is keyed in handle_action).
    A channel shared with another organisation takes only the partner it is
    mapped to (access.external.channels), in the partner view."""
    target = button_target(action.get("value", ""))
    assert target is not None
    partner_id, period = target
    posted: list[Message] = []

    def produce(decision: Decision) -> Message:
        view = _channel_view(services, request.channel_id, partner_id)
        message = services.answers(decision, partner_view=view).scorecard_by_id(partner_id, period)
        posted.append(message)
        return message

    message = answer_request(services, request, produce)
    if not posted:
        reply(respond, message)  # a refusal, to the asker only
        return
    reply(respond, message, response_type="in_channel", replace_original=False)


def _channel_view(services: BotServices, channel_id: str | None, partner_id: str) -> bool:
    """Whether a post of `partner_id`'s scorecard into the channel must take the partner view;
    raises Refused when the channel may not have it at all."""
    if not channel_id:
        raise Refused("channel_check_failed", "share without a channel")
    access = services.config.app.access
    try:
        mapped = channel_partner(services.facts, access, channel_id)
    except ChannelUnchecked as error:
        raise Refused("channel_check_failed", f"channel lookup failed: {error.cause}") from None
    except SharedChannelRefused:
        mapped = ""  # shared, and mapped to no partner
    if mapped is None:
        return False
    if mapped != partner_id:
        raise Refused(
            "shared_channel", f"share of {partner_id} into {channel_id}, shared externally"
        )
    return True


def register(app: App, services: BotServices) -> None:
    pattern = re.compile(r"^(choose_partner_\d+|scorecard_(previous|compare|why|share))$")

    @app.action(pattern)
    def on_action(ack: Any, body: dict[str, Any], respond: Any) -> None:
        handle_action(ack, body, respond, services)
