"""Every word a person reads: the Jinja templates of the messages (rendered by bot/messages.py)
and, in words.yaml, the short words that are no message of their own (`word`)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import yaml


@cache
def _words() -> dict[str, str]:
    loaded = yaml.safe_load(files(__package__).joinpath("words.yaml").read_text("utf-8"))
    return {str(key): str(value) for key, value in loaded.items()}


def word(key: str, **values: object) -> str:
    """The words named `key` in templates/words.yaml, with `values` filled in."""
    return _words()[key].format(**values)
