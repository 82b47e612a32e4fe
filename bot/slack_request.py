"""One request from Slack as access control reads it: who asks, where, from which team, and
what (as the audit log shows it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    @classmethod
    def of_home(cls, user_id: str, what: str) -> SlackRequest:
        """The App Home opened, or a control on it used, by `user_id` (`what` for the audit
        log). Slack's event carries no team of the viewer: users.info decides who they are."""
        return cls(
            user_id=user_id, user_name=None, channel_id=None, team_id=None, enterprise_id=None,
            text=what,
        )  # fmt: skip
