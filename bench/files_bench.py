"""The files source benchmark issue #18 asks for.

    python3 -m bench.files_bench [--partners N] [--deals N] [--folder PATH] [--db PATH]
                                 [--postgres URL] [--json PATH] [--no-reader]

1. Writes (once, in a spawned child process) the deterministic program of `bench.generate`
   (2,000 partners, 1,000,000 deals, 3.9 million stage changes, trainings, survey answers,
   customers and tickets by default) as a folder of CSV files in the files-source format,
   cached under /work/bench-data/fastfiles/ (a folder whose `bench_meta.json` matches is reused).
2. In another spawned child, `partner-kpi sync`'s code path (`run_sync` with `FilesSource`) into
   a fresh SQLite store: rows read, wall time (the KPI rollups' refresh included), rows per
   second, CPU seconds (the sync's process and its reading processes, which read deals.csv
   and stage_changes.csv: `connectors.reader_process`), and peak memory: the child's own
   (`harness.peak_mb`), the largest reading process's (sampled, `harness.ChildrenMemory`),
   and the two added, which is what the target counts.
3. In the same child, the same sync again with nothing changed: time, and rows written (must
   be none). Every file is skipped by its digest (`connectors.file_digests`) but goals.csv.
4. The same unchanged re-sync forced through the row path (`FilesSource(full_read=True)`:
   every record parsed, fingerprinted and looked up), so that path stays measured.
5. A re-sync of a copy of the folder (written beside the store, `changed-<folder>`) in which
   one row of deals.csv (a deal's name) and one of stage_changes.csv (a moment, a second
   later) differ: those two files are read, 3 rows written (an update, a new stage change
   and the one it replaces deleted), the rest skipped.
6. With `--postgres URL`, steps 2 to 5 into a fresh schema of that PostgreSQL database.

Targets (the issue): >= 50,000 rows/s, <= 300 MB peak, an unchanged re-sync <= 30 s that
writes no row (step 3).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import multiprocessing
import os
import random
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

from bench.generate import (
    CURRENCY_RATES,
    BenchSpec,
    _customers,
    _deals,
    _partner_rows,
    _partners,
    _surveys,
    _trainings,
)
from bench.harness import ChildrenMemory, machine, peak_mb, records_read

DATA = Path("/work/bench-data/fastfiles")
META = "bench_meta.json"
TARGET_ROWS_PER_SECOND = 50_000
TARGET_PEAK_MB = 300.0
TARGET_RESYNC_S = 30.0

#: Each file's columns, in the order written (the files format; ids where it has them).
COLUMNS = {
    "partners": ("id", "name", "tier", "joined_on", "left_on", "owner_email", "contact_emails"),
    "deals": (
        "id", "partner_id", "name", "amount", "currency", "stage", "status", "created_on",
        "closed_on", "expected_close_on", "type", "lead_source", "channel", "registered",
        "registered_on", "csat",
    ),
    "stage_changes": ("deal_id", "stage", "entered_at"),
    "trainings": ("partner_id", "course", "completed_on"),
    "survey_responses": (
        "id", "partner_id", "respondent", "campaign_id", "score", "comment", "submitted_at",
    ),
    "customers": (
        "id", "partner_id", "name", "became_customer_on", "churned_on", "mrr", "currency",
        "onboarded_on", "referred_by",
    ),
    "tickets": ("id", "customer_id", "opened_at"),
}  # fmt: skip
#: A CSV column whose value the generator keeps under another name.
RENAMED = {("deals", "amount"): "original_amount", ("customers", "mrr"): "original_mrr"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


class _CsvBuffer:
    """The generator's `_Buffer` interface, writing rows to a CSV file instead of a table."""

    def __init__(self, handle: IO[str], name: str) -> None:
        self.writer = csv.writer(handle, lineterminator="\n")
        self.columns = [RENAMED.get((name, c), c) for c in COLUMNS[name]]
        self.writer.writerow(COLUMNS[name])
        self.rows: list[dict[str, Any]] = []  # always empty: rows are written at once
        self.count = 0

    def add(self, row: dict[str, Any]) -> None:
        self.writer.writerow([_cell(row.get(c)) for c in self.columns])
        self.count += 1

    def flush(self) -> None:
        pass


def write_program(spec: BenchSpec, folder: Path) -> dict[str, Any]:
    """The program of `bench.generate` for `spec` as CSV files in `folder`, in the generator's
    order of draws (so the rows are the bench store's rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)
    started = time.perf_counter()
    rng = random.Random(spec.seed)
    handles = {name: (folder / f"{name}.csv").open("w", encoding="utf-8") for name in COLUMNS}
    out = {name: _CsvBuffer(handle, name) for name, handle in handles.items()}
    try:
        partners = _partners(rng, spec.partners)
        for row in _partner_rows(rng, partners):
            out["partners"].add(row)
        _deals(rng, partners, spec.deals, out["deals"], out["stage_changes"], False)  # type: ignore[arg-type]
        _trainings(rng, partners, out["trainings"])  # type: ignore[arg-type]
        _surveys(rng, partners, out["survey_responses"])  # type: ignore[arg-type]
        _customers(rng, partners, spec, out["customers"], out["tickets"])  # type: ignore[arg-type]
    finally:
        for handle in handles.values():
            handle.close()
    counts = {name: buffer.count for name, buffer in out.items()}
    meta = {**spec.marker(), "counts": counts, "seconds": round(time.perf_counter() - started, 1)}
    (folder / META).write_text(json.dumps(meta, indent=2))
    return meta


def ensure_folder(spec: BenchSpec, folder: Path) -> dict[str, Any]:
    """The CSV folder of `spec`: reused when its meta matches, else written anew."""
    try:
        meta: dict[str, Any] = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        meta = {}
    if all(meta.get(key) == value for key, value in spec.marker().items()):
        return meta | {"reused": True}
    return write_program(spec, folder) | {"reused": False}


def _app() -> Any:
    from settings.app import AppConfig

    rates = {code: rate for code, rate in CURRENCY_RATES.items() if code != "USD"}
    return AppConfig.model_validate({"source": "files", "currency_rates": rates})


def changed_copy(folder: Path, target: Path) -> Path:
    """A copy of `folder` at `target` (replaced) in which the first record of deals.csv has
    another name and the first of stage_changes.csv a moment a second later."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted(folder.glob("*.csv")):
        if path.name == "deals.csv":
            _first_record_changed(path, target / path.name, "name", lambda name: name + " (2)")
        elif path.name == "stage_changes.csv":
            _first_record_changed(path, target / path.name, "entered_at", _a_second_later)
        else:
            shutil.copyfile(path, target / path.name)
    return target


def _a_second_later(moment: str) -> str:
    return (dt.datetime.fromisoformat(moment) + dt.timedelta(seconds=1)).isoformat()


def _first_record_changed(
    source: Path, target: Path, column: str, change: Callable[[str], str]
) -> None:
    with (
        source.open(encoding="utf-8", newline="") as old,
        target.open("w", encoding="utf-8", newline="") as new,
    ):
        header = old.readline()
        cells = next(csv.reader([old.readline()]))
        at = next(csv.reader([header])).index(column)
        cells[at] = change(cells[at])
        new.write(header)
        csv.writer(new, lineterminator="\n").writerow(cells)
        shutil.copyfileobj(old, new, 1 << 20)


def _sync(
    store: Any, folder: Path, full_read: bool = False, reader: bool = True
) -> tuple[Any, float, float, float]:
    """One `run_sync` of the folder (`reader`: large files read by a second process on a first
    load): the report, wall seconds, the connector's seconds and this process's CPU seconds
    (its reading processes' are `_children_cpu`'s)."""
    from bench.harness import Measured
    from connectors.files import FilesSource
    from connectors.normalize import Normalizer
    from connectors.sync import run_sync

    files = FilesSource(folder, Normalizer(_app()), full_read=full_read, parallel=reader)
    source = Measured(files)
    cpu = time.process_time()
    started = time.perf_counter()
    report = run_sync(store, source)  # as `partner-kpi sync` runs it (`--full` reads every file)
    wall = time.perf_counter() - started
    return report, wall, source.seconds, time.process_time() - cpu


def _children_cpu() -> float:
    """The CPU seconds of this process's ended children so far (the reading processes)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _written(report: Any) -> int:
    return sum(o.new + o.updated + o.deleted for o in report.objects.values())


def _resync(store: Any, folder: Path, full_read: bool = False) -> dict[str, Any]:
    """A re-sync's figures: seconds, the connector's, CPU seconds, rows written."""
    report, wall, connector, cpu = _sync(store, folder, full_read)
    return {
        "seconds": round(wall, 1),
        "connector_seconds": round(connector, 1),
        "cpu_seconds": round(cpu, 1),
        "written": _written(report),
        "objects": {name: vars(o) | {"skip_reasons": {}} for name, o in report.objects.items()},
    }


def measure(folder: str, url: str, changed: str, reader: bool = True) -> dict[str, Any]:
    """In a fresh process: a first sync of `folder` into the empty store at `url`, the same
    sync again with nothing changed (each file skipped by its digest, then forced through the
    row path), and a sync of the `changed` copy of the folder."""
    from kpi.store import open_store

    store = open_store(url)
    baseline = peak_mb()
    reader_cpu = _children_cpu()
    with ChildrenMemory() as children:
        report, wall, connector, cpu_first = _sync(store, Path(folder), reader=reader)
    reader_cpu = _children_cpu() - reader_cpu
    first_peak = peak_mb()
    rows = records_read(report)
    again, rewall, reconnector, cpu_again = _sync(store, Path(folder))
    written = _written(again)
    row_path = _resync(store, Path(folder), full_read=True)
    one_row = _resync(store, Path(changed))
    counts = store.counts()
    store.engine.dispose()
    return {
        "rows": rows,
        "seconds": round(wall, 1),
        "connector_seconds": round(connector, 1),
        "rows_per_second": round(rows / wall),
        "cpu_seconds": round(cpu_first, 1),
        "rows_per_cpu_second": round(rows / cpu_first),
        "reader_cpu_seconds": round(reader_cpu, 1),
        "peak_mb": round(first_peak, 1),
        "reader_peak_mb": round(children.child_mb, 1),
        "together_peak_mb": round(children.together_mb, 1),
        "baseline_mb": round(baseline, 1),
        "problems": len(report.problems),
        "objects": {name: vars(o) | {"skip_reasons": {}} for name, o in report.objects.items()},
        "resync_seconds": round(rewall, 1),
        "resync_connector_seconds": round(reconnector, 1),
        "resync_cpu_seconds": round(cpu_again, 1),
        "resync_written": written,
        "resync_peak_mb": round(peak_mb(), 1),
        "row_path_resync": row_path,
        "changed_resync": one_row,
        "store_counts": counts,
    }


def _in_child(function: Callable[..., Any], *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def _postgres_url(url: str) -> tuple[str, str]:
    """A fresh schema in the database at `url` and a URL whose connections use it."""
    from sqlalchemy import create_engine

    schema = f"files_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def _peak(result: dict[str, Any]) -> float:
    """The first sync's peak memory as the target counts it: this process's peak and the
    largest reading process's, added (they never peak at once: sampled together is lower)."""
    return round(float(result["peak_mb"]) + float(result["reader_peak_mb"]), 1)


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _table(name: str, result: dict[str, Any]) -> list[str]:
    rate, peak = result["rows_per_second"], _peak(result)
    resync, written = result["resync_seconds"], result["resync_written"]
    return [
        f"| {name}: first sync, {result['rows']:,} rows | {result['seconds']} s "
        f"({result['connector_seconds']} s reading and writing, the rest the rollups) | | |",
        f"| {name}: rows per second | {rate:,} | >= {TARGET_ROWS_PER_SECOND:,} | "
        f"{_verdict(rate >= TARGET_ROWS_PER_SECOND)} |",
        f"| {name}: CPU seconds (this process, SQLite's work included), rows per CPU second | "
        f"{result['cpu_seconds']} s, {result['rows_per_cpu_second']:,} | | |",
        f"| {name}: the reading processes' CPU seconds (deals.csv, stage_changes.csv) | "
        f"{result['reader_cpu_seconds']} s | | |",
        f"| {name}: peak memory, this process's and the largest reading process's added | "
        f"{peak} MB ({result['peak_mb']} + {result['reader_peak_mb']}; together, sampled: "
        f"{result['together_peak_mb']} MB) | <= {TARGET_PEAK_MB:.0f} MB | "
        f"{_verdict(peak <= TARGET_PEAK_MB)} |",
        f"| {name}: unchanged re-sync | {resync} s ({result['resync_cpu_seconds']} CPU s), "
        f"{written} rows written | "
        f"<= {TARGET_RESYNC_S:.0f} s, none written | "
        f"{_verdict(resync <= TARGET_RESYNC_S and written == 0)} |",
        _resync_line(f"{name}: the same re-sync through the row path", result["row_path_resync"]),
        _resync_line(
            f"{name}: re-sync with one row changed in deals.csv and in stage_changes.csv",
            result["changed_resync"],
        ),
    ]


def _resync_line(what: str, figures: dict[str, Any]) -> str:
    return (
        f"| {what} | {figures['seconds']} s ({figures['cpu_seconds']} CPU s), "
        f"{figures['written']} rows written | | |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folder", help="the CSV folder (default: under /work/bench-data)")
    parser.add_argument("--db", help="the SQLite store to build (replaced; default: beside it)")
    parser.add_argument("--postgres", help="also sync into a fresh schema of this database")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite store")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--no-reader",
        action="store_true",
        help="the first sync reads every file in its own process (no reading process)",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    spec = BenchSpec(partners=args.partners, deals=args.deals, seed=args.seed)
    folder = Path(args.folder or DATA / f"program-{args.partners}-{args.deals}-{args.seed}")
    data = _in_child(ensure_folder, spec, folder)
    how = "reused" if data["reused"] else f"written in {data['seconds']} s"
    print(f"CSV folder {folder} ({how}): {data['counts']}")
    results: dict[str, Any] = {"folder": str(folder), "data": data}
    lines = ["| measure | value | target | |", "| --- | --- | --- | --- |"]
    db = Path(args.db or folder.parent / f"store-{folder.name}.db")
    changed = str(changed_copy(folder, db.parent / f"changed-{folder.name}"))
    if not args.no_sqlite:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        results["sqlite"] = _in_child(
            measure, str(folder), f"sqlite:///{db}", changed, not args.no_reader
        )
        lines += _table("SQLite", results["sqlite"])
    if args.postgres:
        url, schema = _postgres_url(args.postgres)
        try:
            results["postgresql"] = _in_child(measure, str(folder), url, changed, False)
        finally:
            _drop_schema(args.postgres, schema)
        lines += _table("PostgreSQL", results["postgresql"])
    results["machine"] = machine("bench.files_bench", argv, load)
    print("\n".join(lines))
    print(f"machine: {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    met = all(
        r["rows_per_second"] >= TARGET_ROWS_PER_SECOND
        and _peak(r) <= TARGET_PEAK_MB
        and r["resync_seconds"] <= TARGET_RESYNC_S
        and r["resync_written"] == 0
        for key in ("sqlite", "postgresql")
        if (r := results.get(key))
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
