"""Block Kit's hard limits, and fitting a message into them instead of failing.

Slack rejects a message past these limits (`invalid_blocks`, `msg_blocks_too_long`); a long
list therefore ends with "… and N more" rather than not arriving at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from templates import word

MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100  # a modal or the Home tab
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_TOTAL_CHARS = 12000  # of the blocks' JSON; past it Slack answers msg_blocks_too_long
MAX_FALLBACK_TEXT = 3000  # notifications and screen readers need far less
ELLIPSIS = "…"


@dataclass
class Message:
    """What the bot says: a plain-text fallback and the Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def fit(
    message: Message, max_blocks: int = MAX_BLOCKS, max_chars: int | None = MAX_TOTAL_CHARS
) -> Message:
    """The message within every limit: long texts cut with an ellipsis, extra blocks replaced
    by a closing "… and N more" line. A view (a modal, the Home tab) takes `VIEW_MAX_BLOCKS`
    and no limit on its blocks' total size (`max_chars` None)."""
    blocks = [_fit_block(block) for block in message.blocks]
    hidden = 0
    if len(blocks) > max_blocks:
        hidden = len(blocks) - (max_blocks - 1)
        blocks = blocks[: max_blocks - 1]

    def closed(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*kept, _more(hidden)] if hidden else kept

    while max_chars is not None and len(blocks) > 1 and _size(closed(blocks)) > max_chars:
        blocks.pop()
        hidden += 1
    return Message(truncate(message.text, MAX_FALLBACK_TEXT), closed(blocks))


def violations(blocks: list[dict[str, Any]]) -> list[str]:
    """Every limit the blocks break (empty when Slack would take them)."""
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks > {MAX_BLOCKS}")
    if _size(blocks) > MAX_TOTAL_CHARS:
        problems.append(f"{_size(blocks)} characters > {MAX_TOTAL_CHARS}")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header" and len(block["text"]["text"]) > MAX_HEADER_TEXT:
            problems.append(f"block {i}: header over {MAX_HEADER_TEXT}")
        if kind == "section":
            if len(block.get("text", {}).get("text", "")) > MAX_SECTION_TEXT:
                problems.append(f"block {i}: section text over {MAX_SECTION_TEXT}")
            fields = block.get("fields", [])
            if len(fields) > MAX_FIELDS:
                problems.append(f"block {i}: {len(fields)} fields > {MAX_FIELDS}")
            if any(len(f["text"]) > MAX_FIELD_TEXT for f in fields):
                problems.append(f"block {i}: field over {MAX_FIELD_TEXT}")
        for element in block.get("elements", []):
            if element.get("type") == "button":
                if len(element["text"]["text"]) > MAX_BUTTON_TEXT:
                    problems.append(f"block {i}: button text over {MAX_BUTTON_TEXT}")
                if len(element.get("value", "")) > MAX_BUTTON_VALUE:
                    problems.append(f"block {i}: button value over {MAX_BUTTON_VALUE}")
    return problems


def _fit_block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "header":
        block["text"]["text"] = truncate(block["text"]["text"], MAX_HEADER_TEXT)
    elif kind == "section":
        if "text" in block:
            block["text"]["text"] = truncate(block["text"]["text"], MAX_SECTION_TEXT)
        if "fields" in block:
            fields = block["fields"][:MAX_FIELDS]
            for item in fields:
                item["text"] = truncate(item["text"], MAX_FIELD_TEXT)
            block["fields"] = fields
    elif kind == "actions":
        block["elements"] = block["elements"][:MAX_ACTION_ELEMENTS]
        for element in block["elements"]:
            if element.get("type") == "button":
                element["text"]["text"] = truncate(element["text"]["text"], MAX_BUTTON_TEXT)
    elif kind == "context":
        block["elements"] = block["elements"][:MAX_CONTEXT_ELEMENTS]
        for element in block["elements"]:
            element["text"] = truncate(element["text"], MAX_SECTION_TEXT)
    return block


def _more(count: int) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": word("more", count=count)}],
    }


def _size(blocks: list[dict[str, Any]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))
