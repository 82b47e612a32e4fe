"""What the bot must learn from Slack before it shows partner data: the asker's profile, a user
group's members, whether a channel is shared with another organisation, and its own workspace.

Fail closed: a lookup that does not succeed (a Slack error, a 429 past the client's retries, a
timeout, an unreachable Slack) raises `FactUnavailable` with its cause; it is never answered
with a default and never cached. Good answers are kept at most `ttl` seconds (60 by default),
and Slack's change events drop them sooner (bot/listeners/events.py), so a revocation takes
effect within a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.access import FactUnavailable, Workspace
from templates import word

log = logging.getLogger("partner_kpi.slack")

TTL_SECONDS = 60.0
#: auth.test answers that mean the bot token itself is refused: fatal, not worth a retry.
TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


class TokenRefused(Exception):
    """Slack refused the bot token (auth.test); the sentence says what to fix."""


@dataclass(frozen=True)
class ChannelSharing:
    channel_id: str
    external: bool  # shared, or being shared, with another organisation (Slack Connect)


def shared_externally(channel: dict[str, Any]) -> bool:
    """Whether conversations.info's `channel` is shared (or pending a share) with another
    organisation. `is_org_shared` alone is a share inside one Enterprise Grid org, not
    external; `is_shared` without it is."""
    return bool(
        channel.get("is_ext_shared")
        or channel.get("is_pending_ext_shared")
        or channel.get("pending_shared")
        or channel.get("pending_connected_team_ids")
        or (channel.get("is_shared") and not channel.get("is_org_shared"))
    )


class _BriefCache:
    """Values kept for at most `ttl` seconds, dropped one by one on change events."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl, self.clock = ttl, clock
        self._values: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is None or self.clock() - hit[0] >= self.ttl:
                self._values.pop(key, None)
                return None
            return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = (self.clock(), value)

    def drop(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class SlackFacts:
    """Slack's answers about people, groups, channels and the bot's workspace, fail-closed."""

    def __init__(
        self,
        client: WebClient,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._cache = _BriefCache(ttl, clock)
        self._workspace: Workspace | None = None
        self._workspace_lock = threading.Lock()
        self._workspace_problem = "auth.test has not answered yet"

    # --- the bot's own workspace -----------------------------------------------------------

    @property
    def workspace(self) -> Workspace | None:
        """Known once auth.test has answered; None until then (every request is refused)."""
        return self._workspace

    def workspace_problem(self) -> str | None:
        """Why the workspace is not known (for /health), or None once it is."""
        return None if self._workspace is not None else self._workspace_problem

    def learn_workspace(self) -> Workspace:
        """auth.test's team and Enterprise Grid org. Raises TokenRefused for a refused token,
        FactUnavailable for anything that may pass (a rate limit, a network fault)."""
        with self._workspace_lock:
            if self._workspace is not None:
                return self._workspace
            try:
                answer = self.client.auth_test()
            except SlackApiError as error:
                code = str(error.response.get("error", ""))
                if code in TOKEN_ERRORS:
                    self._workspace_problem = word("faults.bot_token_refused_short", code=code)
                    raise TokenRefused(word("faults.bot_token_refused", code=code)) from None
                raise self._unknown(_cause("auth.test", error)) from None
            except Exception as error:  # a timeout, an unreachable Slack
                raise self._unknown(_cause("auth.test", error)) from None
            team_id = answer.get("team_id")
            if not team_id:
                raise self._unknown("auth.test answered without a team_id")
            self._workspace = Workspace(str(team_id), answer.get("enterprise_id") or None)
            log.info("workspace %s (org %s)", team_id, self._workspace.enterprise_id or "none")
            return self._workspace

    def _unknown(self, cause: str) -> FactUnavailable:
        self._workspace_problem = cause
        return FactUnavailable(cause)

    # --- people, groups, channels ----------------------------------------------------------

    def user(self, user_id: str) -> dict[str, Any]:
        """users.info's user."""
        user: dict[str, Any] = self._fetch(
            f"user:{user_id}", "users.info", lambda: self.client.users_info(user=user_id)["user"]
        )
        return user

    def group_members(self, group: str) -> frozenset[str]:
        """usergroups.users.list: the group's member ids."""
        members: frozenset[str] = self._fetch(
            f"group:{group}",
            "usergroups.users.list",
            lambda: frozenset(self.client.usergroups_users_list(usergroup=group)["users"]),
        )
        return members

    def channel_sharing(self, channel: str) -> ChannelSharing:
        """Whether `channel` (an id, or a #name looked up among the bot's channels) is shared
        with another organisation, from conversations.info."""
        channel_id = self._channel_id(channel)

        def fetch() -> ChannelSharing:
            info = self.client.conversations_info(channel=channel_id)["channel"]
            return ChannelSharing(str(info.get("id") or channel_id), shared_externally(info))

        sharing: ChannelSharing = self._fetch(f"channel:{channel_id}", "conversations.info", fetch)
        return sharing

    def _channel_id(self, channel: str) -> str:
        if not channel.startswith("#"):
            return channel
        name = channel[1:]

        def fetch() -> str:
            cursor: str | None = None
            while True:
                page = self.client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
                for found in page["channels"]:
                    if found.get("name") == name:
                        return str(found["id"])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    raise LookupError(word("faults.no_channel_named", name=name))

        channel_id: str = self._fetch(f"name:{name}", "conversations.list", fetch)
        return channel_id

    # --- change events ---------------------------------------------------------------------

    def forget_user(self, user_id: str) -> None:
        self._cache.drop(f"user:{user_id}")

    def forget_group(self, group: str) -> None:
        self._cache.drop(f"group:{group}")

    def forget_channel(self, channel_id: str) -> None:
        self._cache.drop(f"channel:{channel_id}")

    def _fetch(self, key: str, method: str, fetch: Callable[[], Any]) -> Any:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            value = fetch()
        except Exception as error:  # whatever went wrong, the fact is not known
            cause = _cause(method, error)
            log.warning("%s failed: %s", method, cause)
            raise FactUnavailable(cause) from None
        self._cache.put(key, value)
        return value


def _cause(method: str, error: Exception) -> str:
    """A short, secret-free cause for the log and the audit record."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", None)
        code = error.response.get("error") if hasattr(error.response, "get") else None
        return f"{method} answered {code or 'an error'} (HTTP {status})"
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return f"{method} timed out"
    if isinstance(error, LookupError):
        return str(error)
    return f"{method} failed ({type(error).__name__})"
