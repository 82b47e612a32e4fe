"""Slack posts that carry their send-log key in message metadata, found again in a
conversation's history.

A replica that crashed after Slack accepted a post but before it recorded the post's `ts` leaves
a claim that looks unposted. The replica taking that claim over first looks for the key in the
conversation's history (`conversations.history` with `include_all_metadata`) and records what
it finds instead of posting a second time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

#: How far before the earliest moment a post could have been made its history is read (our
#: clock and Slack's may differ a little).
HISTORY_MARGIN = timedelta(minutes=5)


def keyed_metadata(event_type: str, key: str) -> dict[str, Any]:
    """The `metadata` of a post made for the send-log key `key`."""
    return {"event_type": event_type, "event_payload": {"key": key}}


def find_keyed_post(
    client: WebClient,
    channel: str,
    event_type: str,
    key: str,
    oldest: datetime,
    page_size: int = 200,
) -> str | None:
    """The ts of the top-level post in `channel` after `oldest` whose metadata carries `key`,
    or None; newest first, paged through next_cursor. Slack's errors (missing_scope without
    the history scope, not_in_channel, ...) are raised as SlackApiError."""
    cursor: str | None = None
    while True:
        response = client.conversations_history(
            channel=channel,
            oldest=f"{oldest.timestamp():.6f}",
            include_all_metadata=True,
            limit=page_size,
            cursor=cursor,
        )
        for found in response.get("messages") or []:
            metadata = found.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and payload.get("key") == key:
                return str(found["ts"])
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None


def history_unreadable(
    error: SlackApiError, log: logging.Logger, subject: str, scopes: str
) -> bool:
    """True when `error` is Slack's missing_scope for reading a history, and then said in the
    log: an app installed before the scope was asked for cannot tell, so the post is made (a
    possible repeat) rather than lost."""
    if error.response.get("error") != "missing_scope":
        return False
    log.warning(
        "%s: cannot read the history (missing_scope %s), so a post made by a replica that "
        "stopped before recording it may be repeated; reinstall the app with %s "
        "(`partner-kpi manifest`)",
        subject,
        error.response.get("needed", ""),
        scopes,
    )
    return True
