"""One request from Slack, from who asks to what is answered: identify the asker, decide, answer
within the decision, and write one audit record with the final outcome.

A refusal decided anywhere on the way (a failed lookup, a rule, an answer outside the asker's
set) is one sentence to the asker only and is audited as refused with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.access import Decision, Refused
from bot.blockkit import Message
from bot.messages import render
from bot.services import BotServices
from bot.slack_request import SlackRequest

log = logging.getLogger("partner_kpi.slack")


#: Builds the answer for an allowed request; may raise Refused.
Produce = Callable[[Decision], Message]


def answer_request(services: BotServices, request: SlackRequest, produce: Produce) -> Message:
    """The message for `request`: `produce`'s answer if the asker may have it, else a refusal.
    Exactly one audit record is written, with the outcome that was sent."""
    decision = services.check(request)
    message: Message | None = None
    if decision.allowed:
        try:
            message = produce(decision)
        except Refused as refused:
            decision = Decision.refuse(refused.refusal, f"{refused.reason} ({decision.reason})")
        except Exception:
            log.exception("answering %r failed", request.text)
            message = render(
                "error", sentence="internal", command=services.config.app.slack.command
            )
    if message is None:
        message = refusal(services, decision.refusal or "not_allowed")
    services.store.audit(
        request.user_id,
        request.text,
        decision.allowed,
        decision.reason,
        user_name=request.user_name,
        channel_id=request.channel_id,
    )
    return message


def refusal(services: BotServices, reason: str) -> Message:
    return render("refused", reason=reason, command=services.config.app.slack.command)
