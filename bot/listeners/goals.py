"""Goals set from Slack: the scorecard's "Set a goal" button opens a modal (views.open), and its
submission stores the goal. Only the managers of `access.goal_setters` may do either; everyone
else is refused in one sentence. Each step is audited through `answer_request`."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import App

from bot.access import Decision, require_goal_setter
from bot.answers import button_target
from bot.blockkit import Message
from bot.gate import answer_request
from bot.intents import SetGoal
from bot.listeners.once import claim_click
from bot.listeners.replies import reply
from bot.messages import render
from bot.services import BotServices
from bot.slack_request import SlackRequest
from settings.goals import GoalError, goal_kpi, goal_period, parse_amount
from settings.vocab import PARTNER_KPI_KEYS
from templates import word

log = logging.getLogger("partner_kpi.slack")

BUTTON = "scorecard_set_goal"
VIEW = "goal_modal"


def _check_setter(services: BotServices, request: SlackRequest, decision: Decision) -> None:
    require_goal_setter(
        services.config.app.access.goal_setters,
        request.user_id,
        decision,
        services.facts.group_members,
    )


def handle_goal_button(ack: Any, body: dict[str, Any], respond: Any, services: BotServices) -> None:
    """Opens the modal for the scorecard's partner, or answers the refusal to the asker."""
    ack()
    click = claim_click(services.store, body, respond)
    if click is None:
        return
    target = button_target((body.get("actions") or [{}])[0].get("value", ""))
    request = SlackRequest.of_action(body)
    opened: list[bool] = []

    def produce(decision: Decision) -> Message:
        _check_setter(services, request, decision)
        partner = None
        if target is not None:
            partner = next((p for p in services.store.partners() if p.id == target[0]), None)
        if partner is None:
            return services.answers(decision).error("button_stale")
        view = goal_view(services, partner.id, partner.name, request.channel_id)
        services.client.views_open(trigger_id=body["trigger_id"], view=view)
        opened.append(True)
        return Message("", [])

    message = answer_request(services, request, produce)
    if opened:
        click.mark_posted()
    else:
        reply(click.respond, message)


def goal_view(
    services: BotServices, partner_id: str, partner_name: str, channel_id: str | None
) -> dict[str, Any]:
    today = services.today()
    quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    blocks = render(
        "goal_modal", partner_name=partner_name, kpis=PARTNER_KPI_KEYS, period=quarter
    ).blocks
    return {
        "type": "modal",
        "callback_id": VIEW,
        "private_metadata": json.dumps({"partner_id": partner_id, "channel_id": channel_id}),
        "title": {"type": "plain_text", "text": word("goal_modal_title")},
        "submit": {"type": "plain_text", "text": word("goal_modal_submit")},
        "close": {"type": "plain_text", "text": word("goal_modal_close")},
        "blocks": blocks,
    }


def handle_goal_submission(ack: Any, body: dict[str, Any], services: BotServices) -> None:
    """Checks the fields (errors shown under them), then the submitter, then stores the goal
    and confirms it to the submitter in the channel of the scorecard."""
    view = body["view"]
    try:
        meta = json.loads(view.get("private_metadata") or "")
        partner_id, channel_id = str(meta["partner_id"]), meta.get("channel_id")
    except (ValueError, KeyError, TypeError):
        ack()
        return
    values = view.get("state", {}).get("values", {})
    fields: dict[str, Any] = {
        "kpi": _selected(values, "goal_kpi", "kpi"),
        "period": _typed(values, "goal_period", "period"),
        "target": _typed(values, "goal_target", "target"),
        "direction": _selected(values, "goal_direction", "direction"),
    }
    errors = _field_errors(fields)
    if errors:
        ack(response_action="errors", errors=errors)
        return
    user = body.get("user") or {}
    request = SlackRequest(
        user_id=str(user.get("id") or ""),
        user_name=user.get("username") or user.get("name"),
        channel_id=channel_id,
        team_id=user.get("team_id") or (body.get("team") or {}).get("id"),
        enterprise_id=(body.get("enterprise") or {}).get("id"),
        text=f"modal goal {partner_id} {fields['kpi']} {fields['target']} {fields['period']} "
        f"{fields['direction'] or ''}".strip(),
    )
    intent = SetGoal(
        partner_id, fields["kpi"] or "", fields["target"], fields["period"], fields["direction"]
    )
    stored: list[bool] = []

    def produce(decision: Decision) -> Message:
        _check_setter(services, request, decision)
        stored.append(True)
        return services.answers(decision).change_goal(intent, request.user_id)

    message = answer_request(services, request, produce)
    if not stored:
        ack(response_action="errors", errors={"goal_target": message.text[:150]})
        return
    ack()
    _confirm(services, request, message)


def _field_errors(fields: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    try:
        kpi = goal_kpi(fields["kpi"] or "", for_program=False)
    except GoalError as error:
        return {"goal_kpi": str(error)[:150]}
    try:
        goal_period(fields["period"])
    except GoalError as error:
        errors["goal_period"] = str(error)[:150]
    try:
        parse_amount(fields["target"], kpi)
    except GoalError as error:
        errors["goal_target"] = str(error)[:150]
    return errors


def _confirm(services: BotServices, request: SlackRequest, message: Message) -> None:
    """The confirmation, to the submitter only: in the scorecard's channel, else as a DM."""
    try:
        if request.channel_id:
            services.client.chat_postEphemeral(
                channel=request.channel_id,
                user=request.user_id,
                text=message.text,
                blocks=message.blocks,
            )
        else:
            services.client.chat_postMessage(
                channel=request.user_id, text=message.text, blocks=message.blocks
            )
    except Exception:  # the goal is stored; a lost confirmation is only logged
        log.exception("confirming a goal to %s failed", request.user_id)


def _selected(values: dict[str, Any], block: str, action: str) -> str | None:
    state = (values.get(block) or {}).get(action) or {}
    option = state.get("selected_option") or {}
    value = option.get("value")
    return str(value) if value else None


def _typed(values: dict[str, Any], block: str, action: str) -> str:
    state = (values.get(block) or {}).get(action) or {}
    return str(state.get("value") or "")


def register(app: App, services: BotServices) -> None:
    @app.action(BUTTON)
    def on_goal_button(ack: Any, body: dict[str, Any], respond: Any) -> None:
        handle_goal_button(ack, body, respond, services)

    @app.view(VIEW)
    def on_goal_submission(ack: Any, body: dict[str, Any]) -> None:
        handle_goal_submission(ack, body, services)
