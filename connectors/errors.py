"""The error every source raises when it cannot be read as a whole."""

from __future__ import annotations


class SourceError(Exception):
    """The source as a whole cannot be read; nothing was changed."""
