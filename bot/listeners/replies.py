"""Sending a message back through response_url, with failures logged and never ignored."""

from __future__ import annotations

import logging
from typing import Any

from bot.blockkit import Message
from bot.listeners.once import accepted

log = logging.getLogger("partner_kpi.slack")


def reply(respond: Any, message: Message, **options: Any) -> bool:
    """Posts `message` (ephemeral unless `response_type` says otherwise); False if Slack refused.
    Slack accepts with any 2xx, and its body (`ok` or `{"ok":true}`) says nothing more."""
    options.setdefault("response_type", "ephemeral")
    response = respond(text=message.text, blocks=message.blocks, **options)
    if not accepted(response):
        log.error(
            "Slack refused a reply (HTTP %s): %s",
            getattr(response, "status_code", "?"),
            getattr(response, "body", ""),
        )
        return False
    return True
