"""The words app.yaml shares with the normalized records (kpi.models): a deal's type and a
lead's marketing channel."""

from __future__ import annotations

from enum import StrEnum


class DealType(StrEnum):
    NEW = "new"
    UPSELL = "upsell"
    RENEWAL = "renewal"


class Channel(StrEnum):
    PAID = "paid"
    EARNED = "earned"
    OWNED = "owned"
    OTHER = "other"
