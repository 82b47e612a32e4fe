"""Sending a message back through response_url, with failures logged and never ignored."""

from __future__ import annotations

import logging
from typing import Any

from bot.blockkit import Message

log = logging.getLogger("partner_kpi.slack")


def reply(respond: Any, message: Message, **options: Any) -> bool:
    """Posts `message` (ephemeral unless `response_type` says otherwise); False if Slack refused."""
    options.setdefault("response_type", "ephemeral")
    response = respond(text=message.text, blocks=message.blocks, **options)
    status = getattr(response, "status_code", 200)
    body = getattr(response, "body", "ok")
    if status != 200 or (isinstance(body, str) and body not in ("ok", "")):
        log.error("Slack refused a reply (HTTP %s): %s", status, body)
        return False
    return True
