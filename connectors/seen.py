"""The ids a sync has read: `kpi.read_keys.ReadKeys` (the store narrows its stage-change
refreshes with it too), under the name the connectors import."""

from kpi.read_keys import ReadKeys

__all__ = ["ReadKeys"]
