"""The local console: a chat window in the terminal that answers `/partner-kpi ...` with the
very messages the Slack app would send, rendered readably (their Block Kit JSON on request).

Buttons are numbered; typing a button's number presses it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from bot.answers import Answers
from bot.blockkit import Message
from bot.intents import parse
from templates import word

PROMPT = "partner-kpi> "
#: What leaves the console (before anything is read as a partner name).
QUIT = ("quit", "exit", "q", r"\q", ":q")
_LINK = re.compile(r"<([^|>]+)\|([^>]+)>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
HELP = word("console.help")


@dataclass
class Console:
    answers: Answers
    command: str
    out: IO[str]
    deal_url: Callable[[str], str | None] = lambda _id: None
    color: bool = False
    last: Message | None = None
    buttons: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, line: str) -> bool:
        """Answers one line; False when the user wants to leave."""
        text = line.strip()
        if text.lower() in QUIT:
            return False
        if not text:
            return True
        if text == "json":
            payload = self.last.payload() if self.last else {}
            self.out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
            return True
        if text.isdigit() and 1 <= int(text) <= len(self.buttons):
            self.press(self.buttons[int(text) - 1])
            return True
        if text.startswith(self.command):
            text = text[len(self.command) :]
        self.show(self.answers.answer(parse(text, self.answers.today())))
        return True

    def press(self, button: dict[str, Any]) -> None:
        if button["action_id"] == "scorecard_share":
            self.out.write(word("console.share"))
            return
        self.show(self.answers.press(button["action_id"], button.get("value", ""), self.deal_url))

    def show(self, message: Message) -> None:
        self.last = message
        self.buttons = []
        self.out.write("\n" + self.render(message) + "\n\n")

    def render(self, message: Message) -> str:
        return render_text(message, self.color, self.buttons)


def render_text(
    message: Message, color: bool = False, buttons: list[dict[str, Any]] | None = None
) -> str:
    """A message as a terminal shows it: headers underlined, mrkdwn made readable (links
    spelled out, entities unescaped), fields in two columns; each button numbered and, with
    `buttons`, appended to it so that its number can press it."""

    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if color else text

    def dim(text: str) -> str:
        return f"\033[2m{text}\033[0m" if color else text

    def readable(mrkdwn: str) -> str:
        text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})", mrkdwn)
        text = _BOLD.sub(lambda m: bold(m.group(1)), text)
        return html.unescape(text.replace("`", ""))

    pressable = [] if buttons is None else buttons
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            title = block["text"]["text"]
            lines += [bold(title), "─" * min(len(title), 78)]
        elif kind == "section":
            if "text" in block:
                lines.append(readable(block["text"]["text"]))
            fields = [readable(f["text"]).replace("\n", ": ", 1) for f in block.get("fields", [])]
            lines += _two_columns(fields)
        elif kind == "context":
            lines.append(dim(" · ".join(readable(e["text"]) for e in block["elements"])))
        elif kind == "actions":
            labels = []
            for element in block["elements"]:
                pressable.append(element)
                labels.append(f"[{len(pressable)}] {element['text']['text']}")
            lines.append("  ".join(labels))
        lines.append("")
    return "\n".join(lines).rstrip()


def _two_columns(cells: list[str], width: int = 38) -> list[str]:
    rows = []
    for i in range(0, len(cells), 2):
        pair = cells[i : i + 2]
        rows.append(pair[0].ljust(width) + ("  " + pair[1] if len(pair) > 1 else ""))
    return rows


def run_console(console: Console, read: Callable[[str], str] = input) -> None:
    """The chat loop: reads lines until `quit` or end of input."""
    console.out.write(HELP + "\n\n")
    while True:
        try:
            line = read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            console.out.write("\n")
            return
        if not console.handle(line):
            return


def today_fixed(day: date) -> Callable[[], date]:
    return lambda: day
