"""Each button click handled once: Slack redelivers a block_actions payload it got no timely
answer for (the same `action_ts` and `trigger_id`, with X-Slack-Retry-Num), so the first delivery
claims the click's key in the send log and a redelivery finds it taken and posts nothing. A reply
Slack accepts marks the key as posted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kpi.store import Store

log = logging.getLogger("partner_kpi.slack")


def click_key(body: dict[str, Any]) -> str:
    """`click:<user>:<action_ts>:<trigger_id>`: the same for every delivery of one click."""
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    return f"click:{user}:{action.get('action_ts', '')}:{body.get('trigger_id', '')}"


@dataclass(frozen=True)
class Click:
    """A click claimed by this delivery; `respond` is Bolt's, marking the key on a 2xx."""

    store: Store
    key: str
    _respond: Any

    def respond(self, **message: Any) -> Any:
        response = self._respond(**message)
        if accepted(response):
            self.mark_posted()
        return response

    def mark_posted(self) -> None:
        self.store.mark_sent(self.key, None)


def accepted(response: Any) -> bool:
    """A response_url reply Slack accepted: any 2xx, whatever the body (`ok`, `{"ok":true}`)."""
    return 200 <= int(getattr(response, "status_code", 200)) < 300


def claim_click(store: Store, body: dict[str, Any], respond: Any) -> Click | None:
    """The click to handle, or None when an earlier delivery of it claimed it already."""
    key = click_key(body)
    if store.claim(key, "click", claimed_by=(body.get("user") or {}).get("id", "")):
        return Click(store, key, respond)
    log.info("click %s delivered again; handled already, nothing posted", key)
    return None
