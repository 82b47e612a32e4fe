"""Every word a person reads: the Jinja templates of the messages (rendered by bot/messages.py)
and, in words.yaml, the short words that are no message of their own (`word`)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml


@cache
def _words() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        files(__package__).joinpath("words.yaml").read_text("utf-8")
    )
    return loaded


def _entry(key: str) -> Any:
    """The entry at `key` of words.yaml; a dotted key (`cli.demo_written`) names a nested one."""
    entry: Any = _words()
    for part in key.split("."):
        entry = entry[part]
    return entry


def word(key: str, **values: object) -> str:
    """The words named `key` in templates/words.yaml, with `values` filled in."""
    return str(_entry(key)).format(**values)


def word_table(key: str) -> dict[str, str]:
    """A table of words in templates/words.yaml (such as each KPI's label), by key."""
    return {str(name): str(text) for name, text in _entry(key).items()}
