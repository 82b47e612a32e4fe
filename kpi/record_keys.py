"""The ids of records their source gives none. A module of its own, importing nothing, so the
files source's reading process (`connectors.stage_reader`) makes them without the store."""

from __future__ import annotations


def natural_key(*parts: str) -> str:
    """The id of a record the CRM gives none (stage changes, training completions)."""
    return "|".join(parts)
