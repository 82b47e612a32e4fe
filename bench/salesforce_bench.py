"""The Salesforce connector benchmark the Salesforce issue asks for.

    python3 -m bench.salesforce_bench [--opportunities N] [--change-share 0.01] [--db PATH]
                                      [--json PATH]

1. Starts the loopback Salesforce of tests/fake_salesforce.py in a child process (spawned, so
   none of its memory is counted) with a large org made on demand: N opportunities (default a
   million) with two stage-history rows each, one partner Account per 200 opportunities with two
   Contacts each, and customer accounts. Records are generated from their index, so the fake
   holds no million dicts either.
2. In this process, a full `partner-kpi sync` of that org (`run_sync` with the Salesforce source,
   access-token login, TLS with the fake's certificate) into a fresh SQLite store: API calls,
   records read, records per second, wall time, and this process's peak memory (ru_maxrss:
   everything, the interpreter, SQLAlchemy and the sync's buffers).
3. Changes `--change-share` of the opportunities in the fake (a new stage, amount, modstamp and
   a stage-history row each) and runs an incremental sync: API calls and time.

Targets (the issue): API calls ≤ records/2000 + a handful; peak memory ≤ 300 MB; the
incremental sync uses a few calls, not a full pass.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

OPPORTUNITIES_PER_PARTNER = 200
CONTACTS_PER_PARTNER = 2
HISTORY_PER_OPPORTUNITY = 2
CUSTOMERS = 1000
TOKEN = "00D000000000001!bench"
STAGES = ["Prospecting", "Qualification", "Proposal", "Negotiation", "Closed Won", "Closed Lost"]
TYPES = ["New Customer", "Existing Customer - Upgrade", "Renewal", None]
SOURCES = ["Web", "Partner Referral", "Trade Show", "Advertisement", None]


def _mix(n: int) -> int:
    """A cheap deterministic hash of an index (Knuth's multiplicative)."""
    return (n * 2654435761) & 0xFFFFFFFF


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

    def opportunity(self, index: int) -> dict[str, Any]:
        from tests.fake_salesforce import sf_datetime

        h = _mix(index)
        created = date(2023, 1, 1) + timedelta(days=h % 1000)
        changed = index in self.changed
        stage = STAGES[4] if changed else STAGES[h % len(STAGES)]
        closed = stage.startswith("Closed")
        partner = self.partners[index % len(self.partners)] if h % 10 < 7 else None
        return {
            "Id": f"006{index:012d}AAA",
            "IsDeleted": False,
            "Name": f"Deal {index}",
            "Amount": float(1000 + h % 90_000) + (5000.0 if changed else 0.0),
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

        opportunity = self.opportunity(index)
        created = datetime.fromisoformat(opportunity["CreatedDate"])
        if row == HISTORY_PER_OPPORTUNITY:  # the change's own row
            stage, at = STAGES[4], self.changed[index]
            number = self.count * HISTORY_PER_OPPORTUNITY + index
            modified = at
        else:
            h = _mix(index)
            final = STAGES[h % len(STAGES)]
            stage = STAGES[0] if row == 0 else (final if final != STAGES[0] else STAGES[1])
            at = created + timedelta(days=row * (5 + h % 15))
            number = index * HISTORY_PER_OPPORTUNITY + row
            modified = self.base + timedelta(seconds=index)
        return {
            "Id": f"008{number:012d}AAA",
            "IsDeleted": False,
            "OpportunityId": opportunity["Id"],
            "StageName": stage,
            "Amount": opportunity["Amount"],
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
    def __init__(self, make: Any) -> None:
        self.make = make

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
    org.generated["Opportunity"] = _Generated(large.opportunities)
    org.generated["OpportunityHistory"] = _Generated(large.histories)
    with FakeSalesforce(org, Path(folder)) as running:
        channel.send((running.server.port, str(running.cert_file), len(partners)))
        while True:
            command, argument = channel.recv()
            if command == "change":
                with org.lock:
                    org.now = datetime.now(UTC).replace(microsecond=0)
                    channel.send(large.change(float(argument), org.now))
            elif command == "used":
                channel.send(org.api_used)
            else:
                channel.send(None)
                return


# --- the sync, in this process ----------------------------------------------------------


def peak_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.normalize import Normalizer
    from connectors.salesforce import SalesforceSource
    from connectors.sync import run_sync
    from kpi.config import AppConfig
    from kpi.store import open_store

    folder = tempfile.mkdtemp(prefix="sf-bench-")
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    fake = context.Process(target=serve, args=(args.opportunities, folder, child), daemon=True)
    fake.start()
    port, cert_file, partner_count = parent.recv()
    os.environ["REQUESTS_CA_BUNDLE"] = cert_file
    app = AppConfig.model_validate(
        {
            "source": "salesforce",
            "salesforce": {"auth": "token", "instance_url": f"https://127.0.0.1:{port}"},
            "stages": STAGES,
        }
    )
    env = {"SALESFORCE_ACCESS_TOKEN": TOKEN}
    db = Path(args.db) if args.db else Path(folder) / "store.db"
    db.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db}")
    progress = _Progress() if sys.stderr.isatty() else None
    results: dict[str, Any] = {
        "opportunities": args.opportunities,
        "partners": partner_count,
        "baseline_mb": round(peak_mb(), 1),
    }
    try:
        started = time.perf_counter()
        source = _Measured(SalesforceSource(app, Normalizer(app), env=env))
        report = run_sync(store, source, True, progress)
        wall = time.perf_counter() - started
        if progress:
            progress.done()
        read = sum(o.new + o.updated + o.unchanged + o.skipped for o in report.objects.values())
        results["full"] = {
            "api_calls": report.api_calls,
            "records": read,
            "seconds": round(wall, 1),
            "records_per_second": round(read / wall),
            "peak_mb": round(peak_mb(), 1),
            "connector_seconds": round(source.seconds, 1),
            "connector_peak_mb": round(source.peak_mb, 1),
            "calls_target": -(-read // 2000) + 10,
            "stopped_early": report.stopped_early,
            "objects": {name: vars(o) | {"skip_reasons": {}} for name, o in report.objects.items()},
        }
        parent.send(("change", args.change_share))
        changed = parent.recv()
        started = time.perf_counter()
        report = run_sync(store, SalesforceSource(app, Normalizer(app), env=env), False, progress)
        wall = time.perf_counter() - started
        if progress:
            progress.done()
        results["incremental"] = {
            "changed_opportunities": changed,
            "api_calls": report.api_calls,
            "seconds": round(wall, 1),
            "updated": {name: o.updated + o.new for name, o in report.objects.items()},
            "peak_mb": round(peak_mb(), 1),
        }
        results["store_counts"] = store.counts()
    finally:
        parent.send(("stop", None))
        parent.recv()
        fake.join(10)
        store.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)  # the certificate and the default store
    return results


class _Measured:
    """The source, timed and its peak memory taken when it ends, before `run_sync` refreshes
    the KPI rollups (store work, with its own SQLite cache, that every source pays)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.name = source.name
        self.seconds = 0.0
        self.peak_mb = 0.0

    def sync(self, store: Any, report: Any, progress: Any) -> None:
        started = time.perf_counter()
        try:
            self.source.sync(store, report, progress)
        finally:
            self.seconds = time.perf_counter() - started
            self.peak_mb = peak_mb()


class _Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.last: tuple[str, float] = ("", self.started)

    def __call__(self, name: str, rows: int) -> None:
        if name != self.last[0]:
            self.last = (name, time.perf_counter())
        rate = rows / max(time.perf_counter() - self.last[1], 1e-9)
        sys.stderr.write(f"\r\033[K{name}: {rows:,} rows read, {rate:,.0f}/s")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--db", help="the SQLite store to build (default: a temporary file)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results = run(args)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "command": "python3 -m bench.salesforce_bench " + shlex.join(argv or sys.argv[1:]),
    }
    full, incremental = results["full"], results["incremental"]
    print(f"org: {args.opportunities:,} opportunities, {results['partners']:,} partners")
    print(
        f"full sync: {full['records']:,} records in {full['seconds']} s "
        f"({full['records_per_second']:,}/s), {full['api_calls']} API calls "
        f"(target <= {full['calls_target']}), peak memory {full['peak_mb']} MB "
        f"(before the sync {results['baseline_mb']} MB; target <= 300)"
    )
    print(
        f"  of which the connector: {full['connector_seconds']} s, peak memory "
        f"{full['connector_peak_mb']} MB when it ended (the rest: the KPI rollups refresh)"
    )
    print(
        f"incremental sync after {incremental['changed_opportunities']:,} opportunities changed: "
        f"{incremental['api_calls']} API calls, {incremental['seconds']} s"
    )
    print(f"machine: {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    ok = full["api_calls"] <= full["calls_target"] and full["peak_mb"] <= 300
    return 0 if ok and not full["stopped_early"] else 1


if __name__ == "__main__":
    sys.exit(main())
