"""The HubSpot connector benchmark the HubSpot issue asks for.

    python3 -m bench.hubspot_bench [--deals N] [--change-share 0.01] [--requests-per-10s 100]
                                   [--stage-history properties_with_history|date_entered]
                                   [--db PATH] [--json PATH]

1. Starts the loopback HubSpot of tests/fake_hubspot.py in a child process (spawned, so none
   of its memory is counted) with a large portal: N deals (default 200,000) generated from
   their index, each with two `dealstage` history entries and an association with a customer
   company (and, for 7 in 10, with a partner company); one partner company per 200 deals with
   two contacts each, 1,000 customer companies, one pipeline.
2. In this process, a full `run_sync` of that portal (the real hubspot-api-client, the source's
   own client-side limiter at `--requests-per-10s`, HubSpot's 5 searches a second) into a fresh
   SQLite store: API calls, records read, records per second, wall time, the time the limiter
   made the sync wait, and this process's peak memory (`harness.peak_mb`), also as it was when the
   connector ended, before the KPI rollups refresh.
3. Changes `--change-share` of the deals in the fake (a new stage, amount, last-modified date
   and history entry each) and runs an incremental sync: API calls, time, limiter waits.

At HubSpot's real limits the full sync's wall time is mostly the limiter's waiting: that is
the figure a portal would see.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.harness import (
    FakeProcess,
    answer_commands,
    fresh_store,
    machine,
    mix,
    peak_mb,
    sync_twice,
)

DEALS_PER_PARTNER = 200
CONTACTS_PER_PARTNER = 2
CUSTOMERS = 1000
FIRST_DEAL_ID = 30_000_000
#: (stage id, label, isClosed, probability)
STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", False, 0.2),
    ("qualifiedtobuy", "Qualified To Buy", False, 0.4),
    ("presentationscheduled", "Presentation Scheduled", False, 0.6),
    ("contractsent", "Contract Sent", False, 0.9),
    ("closedwon", "Closed Won", True, 1.0),
    ("closedlost", "Closed Lost", True, 0.0),
]
DEAL_TYPES = ["newbusiness", "existingbusiness", "renewal", None]
SOURCES = ["PAID_SEARCH", "ORGANIC_SEARCH", "REFERRALS", "EMAIL_MARKETING", "DIRECT_TRAFFIC", None]


class LargeDeals:
    """Deals made from their index: deal i has id FIRST_DEAL_ID + i and was last modified at
    `base + i` seconds; `change()` moves some to a later moment with a new stage."""

    def __init__(
        self, count: int, partners: list[int], customers: list[int], now: datetime
    ) -> None:
        self.count = count
        self.partners = partners
        self.customers = customers
        self.base = now - timedelta(hours=1, seconds=count)
        self.changed: dict[int, datetime] = {}  # index -> its new last-modified moment

    def deal(self, index: int) -> Any:
        from tests.fake_hubspot import Obj, iso

        h = mix(index)
        created = datetime(2023, 1, 1, 12, tzinfo=UTC) + timedelta(days=h % 1000)
        first, final = STAGES[0][0], STAGES[1 + h % (len(STAGES) - 1)][0]
        history = [(first, created), (final, created + timedelta(days=5 + h % 15))]
        modified = self.base + timedelta(seconds=index)
        amount = 1000 + h % 90_000
        if index in self.changed:
            modified = self.changed[index]
            history.append(("closedwon", modified))
            amount += 5000
        return Obj(
            FIRST_DEAL_ID + index,
            {
                "dealname": f"Deal {index}",
                "amount": str(amount),
                "deal_currency_code": "USD",
                "dealstage": history[-1][0],
                "pipeline": "default",
                "closedate": iso(created + timedelta(days=20 + h % 200)),
                "createdate": iso(created),
                "dealtype": DEAL_TYPES[(h >> 8) % len(DEAL_TYPES)],
                "hs_analytics_source": SOURCES[(h >> 12) % len(SOURCES)],
                "hs_object_id": str(FIRST_DEAL_ID + index),
                "hs_lastmodifieddate": iso(modified),
            },
            created,
            modified,
            {"dealstage": history},
        )

    def index(self, object_id: int) -> int | None:
        index = object_id - FIRST_DEAL_ID
        return index if 0 <= index < self.count else None

    # --- GeneratedObjects -----------------------------------------------------------------

    def get(self, object_id: int) -> Any:
        index = self.index(object_id)
        return None if index is None else self.deal(index)

    def scan(self, after: int, archived: bool) -> Iterator[Any]:
        if archived:
            return
        for index in range(max(0, after - FIRST_DEAL_ID), self.count):
            yield self.deal(index)

    def modified_since(self, moment_ms: int) -> Iterator[Any]:
        seconds = moment_ms / 1000 - self.base.timestamp()
        for index in range(max(0, int(seconds)), self.count):
            if index not in self.changed:
                yield self.deal(index)
        for index in sorted(self.changed):
            yield self.deal(index)

    def change(self, share: float, now: datetime) -> int:
        step = max(1, round(1 / share))
        indexes = [i for i in range(step // 2, self.count, step) if i not in self.changed]
        for index in indexes:
            self.changed[index] = now
        return len(indexes)


class DealCompanies(Mapping[int, list[Any]]):
    """Each deal's associated companies, made from its index: a customer, and for 7 in 10
    deals a partner."""

    def __init__(self, deals: LargeDeals) -> None:
        self.deals = deals

    def __getitem__(self, deal_id: int) -> list[Any]:
        from tests.fake_hubspot import DEFAULT_TYPES, Association

        index = self.deals.index(deal_id)
        if index is None:
            raise KeyError(deal_id)
        types = [("HUBSPOT_DEFINED", DEFAULT_TYPES[("deals", "companies")], None)]
        h = mix(index)
        found = [Association(self.deals.customers[h % len(self.deals.customers)], types)]
        if h % 10 < 7:
            partners = self.deals.partners
            found.append(Association(partners[index % len(partners)], types))
        return found

    def __iter__(self) -> Iterator[int]:
        return iter(range(FIRST_DEAL_ID, FIRST_DEAL_ID + self.deals.count))

    def __len__(self) -> int:
        return self.deals.count


# --- the fake, in its own process -------------------------------------------------------


def serve(deals: int, channel: Connection) -> None:
    """The child process: builds the portal, serves it, answers the parent's commands."""
    from tests.fake_hubspot import FakeHubSpot, FakePortal

    now = datetime.now(UTC).replace(microsecond=0)
    portal = FakePortal(now=now)
    portal.define("companies", "type", [("Partner", "PARTNER"), ("Prospect", "PROSPECT")])
    portal.pipeline("Sales Pipeline", STAGES)
    joined = now - timedelta(days=1200)
    partners = []
    for n in range(max(1, deals // DEALS_PER_PARTNER)):
        company = portal.create(
            "companies",
            {"name": f"Partner {n}", "type": "PARTNER"},
            created=joined + timedelta(minutes=n),
            modified=joined + timedelta(minutes=n),
        )
        partners.append(company)
        for c in range(CONTACTS_PER_PARTNER):
            email = {"email": f"c{c}@partner{n}.example"}
            # last modified long ago, as the companies: only the changed deals are new
            contact = portal.create("contacts", email, created=joined, modified=joined)
            portal.associate("companies", company, "contacts", contact)
    customers = [
        portal.create("companies", {"name": f"Customer {n}", "type": "PROSPECT"}, modified=joined)
        for n in range(CUSTOMERS)
    ]
    large = LargeDeals(deals, partners, customers, now)
    portal.generated["deals"] = large
    portal.links[("deals", "companies")] = DealCompanies(large)
    with FakeHubSpot(portal) as running:
        channel.send((running.base_url, len(partners)))

        def change(share: float) -> int:
            with portal.lock:
                portal.now = datetime.now(UTC).replace(microsecond=0)
                return large.change(float(share), portal.now)

        answer_commands(channel, {"change": change, "used": lambda _: len(portal.requests)})


# --- the sync, in this process ----------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.hubspot import HubSpotSource
    from connectors.normalize import Normalizer
    from settings.app import AppConfig
    from tests.fake_hubspot import TOKEN

    folder = tempfile.mkdtemp(prefix="hs-bench-")
    with FakeProcess(serve, args.deals) as fake:
        base_url, partner_count = fake.greeting
        hubspot: dict[str, Any] = {
            "base_url": base_url,
            "requests_per_10_seconds": args.requests_per_10s,
            "stage_history": args.stage_history,
        }
        app = AppConfig.model_validate(
            {"source": "hubspot", "hubspot": hubspot, "stages": [s[1] for s in STAGES]}
        )
        env = {"HUBSPOT_ACCESS_TOKEN": TOKEN}
        store = fresh_store(args.db, folder)
        results: dict[str, Any] = {
            "deals": args.deals,
            "partners": partner_count,
            "requests_per_10s": args.requests_per_10s,
            "stage_history": args.stage_history,
            "baseline_mb": round(peak_mb(), 1),
        }
        try:
            results |= sync_twice(
                store, lambda: HubSpotSource(app, Normalizer(app), env=env), fake, args.change_share
            )
            results["fake_requests"] = fake.ask("used")
        finally:
            store.engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument(
        "--requests-per-10s",
        type=int,
        default=100,
        help="the client-side limit: 100 (lower tiers) or 190 (Professional, Enterprise)",
    )
    parser.add_argument(
        "--stage-history",
        choices=["properties_with_history", "date_entered"],
        default="properties_with_history",
    )
    parser.add_argument("--db", help="the SQLite store to build (default: a temporary file)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    started = datetime.now(UTC)
    results = run(args)
    results["machine"] = machine("bench.hubspot_bench", argv, load)
    results["started_at"] = started.isoformat(timespec="seconds")
    full, incremental = results["full"], results["incremental"]
    print(
        f"portal: {args.deals:,} deals, {results['partners']:,} partners; limiter "
        f"{args.requests_per_10s} requests per 10 s; stage history {args.stage_history}"
    )
    print(
        f"full sync: {full['records']:,} records in {full['seconds']} s "
        f"({full['records_per_second']:,}/s), {full['api_calls']} API calls, the limiter "
        f"waited {full['throttled_seconds']} s; peak memory {full['peak_mb']} MB "
        f"(before the sync {results['baseline_mb']} MB)"
    )
    print(
        f"  of which the connector: {full['connector_seconds']} s, peak memory "
        f"{full['connector_peak_mb']} MB when it ended (the rest: the KPI rollups refresh)"
    )
    print(
        f"incremental sync after {incremental['changed']:,} deals changed: "
        f"{incremental['api_calls']} API calls, {incremental['seconds']} s, the limiter "
        f"waited {incremental['throttled_seconds']} s"
    )
    print(f"requests the fake answered: {results['fake_requests']:,}")
    print(f"machine: {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0 if not full["stopped_early"] and not incremental["stopped_early"] else 1


if __name__ == "__main__":
    sys.exit(main())
