"""The Salesforce connector benchmark the Salesforce issue asks for.

    python3 -m bench.salesforce_bench [--opportunities N] [--change-share 0.01] [--db PATH]
                                      [--json PATH] [--bulk]

1. Starts the loopback Salesforce of tests/fake_salesforce.py in a child process (spawned, so
   none of its memory is counted) with a large org made on demand: N opportunities (default a
   million) with two stage-history rows each, one partner Account per 200 opportunities with two
   Contacts each, and customer accounts. Records are generated from their index, so the fake
   holds no million dicts either.
2. In this process, a full `partner-kpi sync` of that org (`run_sync` with the Salesforce source,
   access-token login, TLS with the fake's certificate) into a fresh SQLite store: API calls,
   records read, records per second, wall time, and this process's peak memory (`harness.peak_mb`:
   everything, the interpreter, SQLAlchemy and the sync's buffers).
3. Changes `--change-share` of the opportunities in the fake (a new stage, amount, modstamp and
   a stage-history row each) and runs an incremental sync: API calls and time.

Without `--bulk` every object is read through the REST query API (`salesforce.bulk_threshold`
0); with it, at the default threshold, the Opportunities and their history are read through
Bulk API 2.0 query jobs (the fake's tests/fake_salesforce_bulk.py: CSV result sets of 50,000).

Targets (the issue): REST: API calls ≤ records/2000 + a handful; Bulk: ≥ 10,000 records/s and
calls ≤ records/50,000 of the objects read through Bulk + records/2000 of the others (the
Accounts, read with their Contacts) + a handful; peak memory ≤ 300 MB; the incremental sync
uses a few calls, not a full pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
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

OPPORTUNITIES_PER_PARTNER = 200
CONTACTS_PER_PARTNER = 2
HISTORY_PER_OPPORTUNITY = 2
CUSTOMERS = 1000
TOKEN = "00D000000000001!bench"
STAGES = ["Prospecting", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
TYPES = ["New Customer", "Existing Customer - Upgrade", "Renewal", None]
SOURCES = ["Web", "Partner Referral", "Trade Show", "Advertisement", None]


class LargeOrg:
    """Opportunities and their history, made from their index in (SystemModstamp, Id) order.

    Opportunity i was last modified at `base + i` seconds, its history rows at the same moment;
    `change()` moves some opportunities to a new modstamp (later than every unchanged one) with
    a new stage and a new history row.
    """

    def __init__(self, opportunities: int, partners: list[str], now: datetime) -> None:
        self.count = opportunities
        self.partners = partners
        self.base = now - timedelta(hours=1, seconds=opportunities)
        self.changed: dict[int, datetime] = {}  # opportunity index -> its new modstamp
        self.changes: list[tuple[int, datetime]] = []  # in modstamp, index order

    def modstamp(self, index: int) -> datetime:
        return self.changed.get(index) or self.base + timedelta(seconds=index)

    def first_at(self, moment: datetime | None) -> int:
        if moment is None:
            return 0
        seconds = (moment - self.base).total_seconds()
        return max(0, min(self.count, int(-(-seconds // 1))))

    def change(self, share: float, now: datetime) -> int:
        step = max(1, round(1 / share))
        indexes = [i for i in range(step // 2, self.count, step) if i not in self.changed]
        for index in indexes:
            self.changed[index] = now
            self.changes.append((index, now))
        return len(indexes)

    # --- Opportunity --------------------------------------------------------------------

    def created_on(self, index: int) -> date:
        return date(2023, 1, 1) + timedelta(days=mix(index) % 1000)

    def amount(self, index: int) -> float:
        return float(1000 + mix(index) % 90_000) + (5000.0 if index in self.changed else 0.0)

    def opportunity(self, index: int) -> dict[str, Any]:
        from tests.fake_salesforce import sf_datetime

        h = mix(index)
        created = self.created_on(index)
        changed = index in self.changed
        stage = STAGES[4] if changed else STAGES[h % len(STAGES)]
        closed = stage.startswith("Closed")
        partner = self.partners[index % len(self.partners)] if h % 10 < 7 else None
        return {
            "Id": f"006{index:012d}AAA",
            "IsDeleted": False,
            "Name": f"Deal {index}",
            "Amount": self.amount(index),
            "StageName": stage,
            "IsClosed": closed,
            "IsWon": stage == "Closed Won",
            "CreatedDate": f"{created.isoformat()}T12:00:00.000+0000",
            "CloseDate": (created + timedelta(days=20 + h % 200)).isoformat(),
            "Type": TYPES[(h >> 8) % len(TYPES)],
            "LeadSource": SOURCES[(h >> 12) % len(SOURCES)],
            "PartnerAccountId": partner,
            "PartnerAccount": {"Id": partner} if partner else None,
            "SystemModstamp": sf_datetime(self.modstamp(index)),
        }

    def opportunities(self, moment: datetime | None) -> Iterator[dict[str, Any]]:
        for index in range(self.first_at(moment), self.count):
            if index not in self.changed:
                yield self.opportunity(index)
        for index, _ in self.changes:
            yield self.opportunity(index)

    # --- OpportunityHistory -------------------------------------------------------------

    def history(self, index: int, row: int) -> dict[str, Any]:
        from tests.fake_salesforce import sf_datetime

        # the opportunity's own fields, without making the whole record (a third of the time)
        day = self.created_on(index)
        created = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        if row == HISTORY_PER_OPPORTUNITY:  # the change's own row
            stage, at = STAGES[4], self.changed[index]
            number = self.count * HISTORY_PER_OPPORTUNITY + index
            modified = at
        else:
            h = mix(index)
            final = STAGES[h % len(STAGES)]
            stage = STAGES[0] if row == 0 else (final if final != STAGES[0] else STAGES[1])
            at = created + timedelta(days=row * (5 + h % 15))
            number = index * HISTORY_PER_OPPORTUNITY + row
            modified = self.base + timedelta(seconds=index)
        return {
            "Id": f"008{number:012d}AAA",
            "IsDeleted": False,
            "OpportunityId": f"006{index:012d}AAA",
            "StageName": stage,
            "Amount": self.amount(index),
            "CreatedDate": sf_datetime(at),
            "SystemModstamp": sf_datetime(modified),
        }

    def histories(self, moment: datetime | None) -> Iterator[dict[str, Any]]:
        for index in range(self.first_at(moment), self.count):
            for row in range(HISTORY_PER_OPPORTUNITY):
                yield self.history(index, row)
        for index, _ in self.changes:
            yield self.history(index, HISTORY_PER_OPPORTUNITY)


class _Generated:
    def __init__(self, make: Any, count: Any) -> None:
        self.make = make
        self.count = count  # for the record-count resource

    def since(self, moment: datetime | None) -> Iterator[dict[str, Any]]:
        return iter(self.make(moment))


# --- the fake, in its own process -------------------------------------------------------


def serve(opportunities: int, folder: str, channel: Connection) -> None:
    """The child process: builds the org, serves it, answers the parent's commands."""
    from tests.fake_salesforce import FakeOrg, FakeSalesforce

    now = datetime.now(UTC).replace(microsecond=0)
    org = FakeOrg(now=now, api_total=5_000_000)
    org.sessions.add(TOKEN)
    for order, stage in enumerate(STAGES, 1):
        org.insert("OpportunityStage", {"MasterLabel": stage, "ApiName": stage, "SortOrder": order})
    org.picklists[("Opportunity", "Type")] = [t for t in TYPES if t]
    org.picklists[("Opportunity", "LeadSource")] = [s for s in SOURCES if s]
    partners = []
    count = max(1, opportunities // OPPORTUNITIES_PER_PARTNER)
    first = now - timedelta(days=400)
    for n in range(count):
        joined = first + timedelta(minutes=n)
        owner = {"Id": f"005{n:012d}AAA", "Email": f"manager{n % 40}@example.com"}
        account = org.insert(
            "Account",
            {
                "Id": f"001{n:012d}AAA",
                "Name": f"Partner {n}",
                "IsPartner": True,
                "OwnerId": owner["Id"],
                "Owner": owner,
            },
            modified=joined,
        )
        partners.append(account)
        for c in range(CONTACTS_PER_PARTNER):
            org.insert("Contact", {"AccountId": account, "Email": f"c{c}@partner{n}.example"})
    for n in range(CUSTOMERS):
        org.insert("Account", {"Name": f"Customer {n}", "IsPartner": False}, modified=first)
    large = LargeOrg(opportunities, partners, now)
    org.generated["Opportunity"] = _Generated(large.opportunities, lambda: large.count)
    org.generated["OpportunityHistory"] = _Generated(
        large.histories, lambda: large.count * HISTORY_PER_OPPORTUNITY + len(large.changes)
    )
    with FakeSalesforce(org, Path(folder)) as running:
        channel.send((running.server.port, str(running.cert_file), len(partners)))

        def change(share: float) -> int:
            with org.lock:
                org.now = datetime.now(UTC).replace(microsecond=0)
                return large.change(float(share), org.now)

        answer_commands(
            channel,
            {
                "change": change,
                "used": lambda _: org.api_used,
                "cpu": lambda _: time.process_time(),
                "bulk_jobs": lambda _: sorted(j.sobject for j in running.server.bulk.jobs.values()),
            },
        )


# --- the sync, in this process ----------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.normalize import Normalizer
    from connectors.salesforce import SalesforceSource
    from settings.app import AppConfig

    folder = tempfile.mkdtemp(prefix="sf-bench-")
    with FakeProcess(serve, args.opportunities, folder) as fake:
        port, cert_file, partner_count = fake.greeting
        os.environ["REQUESTS_CA_BUNDLE"] = cert_file
        app = AppConfig.model_validate(
            {
                "source": "salesforce",
                "salesforce": {
                    "auth": "token",
                    "instance_url": f"https://127.0.0.1:{port}",
                    "bulk_threshold": 50_000 if args.bulk else 0,
                },
                "stages": STAGES,
            }
        )
        env = {"SALESFORCE_ACCESS_TOKEN": TOKEN}
        store = fresh_store(args.db, folder)
        results: dict[str, Any] = {
            "opportunities": args.opportunities,
            "partners": partner_count,
            "baseline_mb": round(peak_mb(), 1),
        }
        made: list[SalesforceSource] = []
        upsert_seconds = _time_full_sync_upserts(store, made)

        def make_source() -> SalesforceSource:
            made.append(SalesforceSource(app, Normalizer(app), env=env))
            return made[-1]

        try:
            fake_cpu = fake.ask("cpu")
            results |= sync_twice(store, make_source, fake, args.change_share)
            results["fake_cpu_seconds"] = round(fake.ask("cpu") - fake_cpu, 1)
            results["bulk_jobs"] = fake.ask("bulk_jobs", None)
            results["full"]["store_upsert_seconds"] = round(upsert_seconds[0], 1)
        finally:
            store.engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)  # the certificate and the default store
    results["full"]["calls_target"] = _calls_target(
        results["full"]["objects"], results["bulk_jobs"]
    )
    return results


def _calls_target(objects: dict[str, dict[str, Any]], bulk_jobs: list[str]) -> int:
    """A handful of calls (login, describes, job polls...) and one per page read: a Bulk result
    set holds 50,000 records, a REST page 2,000 (Accounts, with their Contacts, stay on REST)."""
    calls = 20
    for name, counts in objects.items():
        read = counts["new"] + counts["updated"] + counts["unchanged"] + counts["skipped"]
        calls += -(-read // (50_000 if name.split(":")[0] in bulk_jobs else 2000))
    return calls


def _time_full_sync_upserts(store: Any, made: list[Any]) -> list[float]:
    """Times the store's upserts (of records and of stored columns) during the first (full)
    sync: how much of the connector's time is the store's writing (its rollup marks included)
    rather than reading and mapping."""
    seconds = [0.0]

    def timed(upsert: Any) -> Any:
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return upsert(*args, **kwargs)
            finally:
                if len(made) == 1:
                    seconds[0] += time.perf_counter() - started

        return measured

    store.upsert = timed(store.upsert)
    store.upsert_rows = timed(store.upsert_rows)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--db", help="the SQLite store to build (default: a temporary file)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--bulk",
        action="store_true",
        help="read large objects through Bulk API 2.0 (default threshold) instead of REST",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results = run(args)
    results["machine"] = machine("bench.salesforce_bench", argv, load)
    full, incremental = results["full"], results["incremental"]
    print(f"org: {args.opportunities:,} opportunities, {results['partners']:,} partners")
    jobs = ", ".join(results["bulk_jobs"]) or "none"
    print(f"API: {'Bulk API 2.0 over the threshold' if args.bulk else 'REST'} (query jobs: {jobs})")
    print(
        f"full sync: {full['records']:,} records in {full['seconds']} s "
        f"({full['records_per_second']:,}/s), {full['api_calls']} API calls "
        f"(target <= {full['calls_target']}), peak memory {full['peak_mb']} MB "
        f"(before the sync {results['baseline_mb']} MB; target <= 300)"
    )
    print(
        f"  CPU: {full['cpu_seconds']} s in this process; the loopback org's process "
        f"{results['fake_cpu_seconds']} s (both syncs)"
    )
    print(
        f"  of which the connector: {full['connector_seconds']} s, peak memory "
        f"{full['connector_peak_mb']} MB when it ended (the rest: the KPI rollups refresh)"
    )
    reading = full["connector_seconds"] - full["store_upsert_seconds"]
    print(
        f"  of the connector's time, the store's upserts: {full['store_upsert_seconds']} s; "
        f"reading and mapping: {reading:.1f} s "
        f"({full['records'] / max(reading, 0.001):,.0f} records/s without the store's writes)"
    )
    print(
        f"incremental sync after {incremental['changed']:,} opportunities changed: "
        f"{incremental['api_calls']} API calls, {incremental['seconds']} s"
    )
    print(f"machine: {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    ok = full["api_calls"] <= full["calls_target"] and full["peak_mb"] <= 300
    if args.bulk:
        ok = ok and full["records_per_second"] >= 10_000
    return 0 if ok and not full["stopped_early"] else 1


if __name__ == "__main__":
    sys.exit(main())
