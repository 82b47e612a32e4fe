"""Every sentence a person reads lives in templates/ (README, "How the code is laid out").

The check reads bot/ with `ast` and lists the string literals of three words or more outside
docstrings, log calls and click's help texts. What may stay in Python is named below: the
audit log's reasons and the technical causes that go into it or into logs (records an operator
greps for, kept beside the rule that decides them), and programming errors."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_SENTENCES = {"debug", "info", "warning", "error", "exception", "critical", "getLogger"}
NOT_SENTENCES |= {"option", "argument", "command", "group", "strftime", "basicConfig"}

#: (module, literal): the audit reasons and causes that stay beside their rule.
RECORDS = {
    ("bot/access.py", "not on the access list"),
    ("bot/access.py", "deactivated Slack user"),
    ("bot/access.py", "external user without a usable email in Slack"),
    ("bot/access.py", "external user with no partner mapping"),
    ("bot/access.py", "external user, own partner "),
    ("bot/access.py", "member of user group "),
    ("bot/alerts/job.py", "the alert job has no Slack client"),
    ("bot/alerts/job.py", "channels:history and groups:history"),
    ("bot/answers.py", "direct-deal comparison asked in the partner view"),
    ("bot/answers.py", " asked by a user limited to their own partner"),
    ("bot/answers.py", " is outside the asker's set"),
    ("bot/blockkit.py", ": header over "),
    ("bot/blockkit.py", ": section text over "),
    ("bot/blockkit.py", ": field over "),
    ("bot/blockkit.py", ": button text over "),
    ("bot/blockkit.py", ": button value over "),
    ("bot/home.py", "the viewer's partner is not in the store"),
    ("bot/listeners/actions.py", "share without a channel"),
    ("bot/listeners/actions.py", ", shared externally"),
    ("bot/listeners/actions.py", "channel lookup failed: "),
    ("bot/messages.py", " did not end with message(text, blocks)"),
    ("bot/scheduler.py", "the scheduler has no Slack client"),
    ("bot/scheduler.py", "channels:history and groups:history"),
    ("bot/server.py", "404 Not Found"),
    ("bot/services.py", "the bot's workspace is not known yet (auth.test)"),
    ("bot/services.py", "profile lookup failed: "),
    ("bot/slack_app.py", "`token` will be unused"),
    ("bot/slack_facts.py", "auth.test has not answered yet"),
    ("bot/slack_facts.py", "auth.test answered without a team_id"),
    ("bot/socket_mode.py", "no hello from Slack"),
    ("bot/socket_mode.py", "the websocket did not open: "),
    ("bot/surveys/sender.py", "the survey sender has no Slack client"),
    ("bot/surveys/sender.py", "not looked up yet"),
    ("bot/surveys/sender.py", ", the DM"),
    ("bot/surveys/tick.py", " round (results to "),
    ("bot/sync_job.py", "before a digest"),
    ("bot/verification.py", "no X-Slack-Signature header"),
    ("bot/verification.py", "no X-Slack-Request-Timestamp header with a number"),
    ("bot/verification.py", "its timestamp is more than 5 minutes away from now"),
    ("bot/verification.py", "the signature does not match the signing secret"),
}


def literals(source: str) -> Iterator[str]:
    """The string literals of `source` a person might read: not docstrings, log lines, help."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skipped.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            helps = [keyword for keyword in node.keywords if keyword.arg == "help"]
            quiet = [node] if name in NOT_SENTENCES else helps
            skipped.update(id(sub) for part in quiet for sub in ast.walk(part))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = node.value.split()
            if id(node) not in skipped and len(words) >= 3 and "%" not in node.value:
                yield node.value


def sentences_in_python() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        found |= {(module, text) for text in literals(path.read_text("utf-8"))}
    return found


def test_the_bot_says_nothing_from_python() -> None:
    stray = sorted(sentences_in_python() - RECORDS)
    assert not stray, (
        "these read like sentences for a person: move them to templates/ (words.yaml or a "
        f"template), or name them in RECORDS if they are audit reasons or causes: {stray}"
    )


def test_the_check_sees_a_sentence() -> None:
    code = (
        'def f():\n    """Doc string here."""\n    log.info("a b c d")\n'
        '    return "You have no partners."\n'
    )
    assert list(literals(code)) == ["You have no partners."]
