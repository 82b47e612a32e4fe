"""The demo data as CSV files, generated once per test run (the repository does not ship them)."""

from __future__ import annotations

import csv
import functools
import tempfile
from datetime import date
from pathlib import Path

from connectors.demo_data import write_demo_data

DEMO_AS_OF = date(2026, 11, 22)


@functools.cache
def demo_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="partner-kpi-demo-")) / "demo-data"
    write_demo_data(folder, DEMO_AS_OF)
    return folder


def read_demo(name: str) -> list[dict[str, str]]:
    with (demo_folder() / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def demo_slice(partners: int, direct_deals: int) -> dict[str, list[dict[str, str]]]:
    """The first `partners` demo partners with all their deals and stage history, plus
    `direct_deals` direct deals, as CSV rows; channels left empty so both sides map them
    from the lead source."""
    chosen = read_demo("partners.csv")[:partners]
    ids = {p["id"] for p in chosen}
    deals, direct = [], 0
    for deal in read_demo("deals.csv"):
        if deal["partner_id"] in ids:
            deals.append(deal)
        elif not deal["partner_id"] and direct < direct_deals:
            deals.append(deal)
            direct += 1
    for deal in deals:
        deal["channel"] = ""
    deal_ids = {d["id"] for d in deals}
    changes = [c for c in read_demo("stage_changes.csv") if c["deal_id"] in deal_ids]
    return {"partners": chosen, "deals": deals, "stage_changes": changes}
