"""The in-memory images loaded ahead of the first question, right after a sync.

Every partner's cards read four images of the store (`kpi.images`), each loaded once per data
version: after a sync that wrote anything, the first digest or Home view would pay their loads
(about 5 s of CPU at a million deals). A process that syncs and then answers (`partner-kpi
serve`) loads them as its sync ends instead. A sync run by another process (a cron job's
`partner-kpi sync`) still leaves the load to the first question.
"""

from __future__ import annotations

import logging

from kpi import customer_image, deal_image, rollups, stage_image, totals_image
from kpi.store import Store

log = logging.getLogger("partner_kpi.images")


def warm_images(store: Store) -> None:
    """Loads every image of `store` at its current versions (nothing when they are loaded
    already, or the store is small). A failure is logged: the questions then load them."""
    try:
        with store.engine.connect() as connection:
            version = rollups.version(connection)
            # the largest load first: its peak then sits on no other image
            stage_image.current(connection, version)
            deal_image.current(connection, version)
            totals_image.current(connection, version)
            customer_image.current(connection, customer_image.version(connection))
    except Exception as error:  # a warm-up is an optimisation: never the sync's failure
        log.warning("loading the KPI images after the sync failed: %s", error)
