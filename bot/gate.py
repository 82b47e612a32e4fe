"""One request from Slack, from who asks to what is answered: identify the asker, decide, answer
within the decision, and write one audit record with the final outcome.

A refusal decided anywhere on the way (a failed lookup, a rule, an answer outside the asker's
set) is one sentence to the asker only and is audited as refused with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.access import Decision, Refused
from bot.blockkit import Message
from bot.messages import render
from bot.services import BotServices

log = logging.getLogger("partner_kpi.slack")


@dataclass(frozen=True)
class SlackRequest:
    """Who asks, where, and what (as the audit log shows it), as Slack sent it."""

    user_id: str
    user_name: str | None
    channel_id: str | None
    team_id: str | None  # the asker's team, as the request says
    enterprise_id: str | None
    text: str

    @classmethod
    def of_command(cls, command: dict[str, Any]) -> SlackRequest:
        text = f"{command.get('command', '')} {command.get('text', '').strip()}".strip()
        return cls(
            user_id=str(command.get("user_id") or ""),
            user_name=command.get("user_name"),
            channel_id=command.get("channel_id"),
            team_id=command.get("team_id"),
            enterprise_id=command.get("enterprise_id") or None,
            text=text,
        )

    @classmethod
    def of_action(cls, body: dict[str, Any]) -> SlackRequest:
        user = body.get("user") or {}
        action = (body.get("actions") or [{}])[0]
        return cls(
            user_id=str(user.get("id") or ""),
            user_name=user.get("username") or user.get("name"),
            channel_id=(body.get("channel") or {}).get("id"),
            team_id=user.get("team_id") or (body.get("team") or {}).get("id"),
            enterprise_id=(body.get("enterprise") or {}).get("id"),
            text=f"button {action.get('action_id', '')} {action.get('value', '')}".strip(),
        )


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
