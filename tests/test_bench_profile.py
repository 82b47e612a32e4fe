"""The benchmark's SQL profile (bench/phases.profile_phase) re-runs every statement an engine call
read with, on a small bench store: every partner's cards too, whose customer sums also set
SQLite's page cache (a PRAGMA the profile must leave out, as it reads nothing)."""

from __future__ import annotations

from pathlib import Path

from bench.generate import BenchSpec, build_database
from bench.phases import profile_phase


def test_every_partners_statements_are_profiled(tmp_path: Path) -> None:
    path = tmp_path / "bench.db"
    build_database(BenchSpec(partners=10, deals=300, seed=3, stays="direct"), path)
    [result] = profile_phase(str(path), [("all_partners", "last-90d", None)])
    statements = result["statements"]
    assert statements, "no statement profiled"
    assert not any(s["statement"].upper().startswith("PRAGMA") for s in statements)
    # the customers' tickets statement is among them, timed and planned
    tickets = [s for s in statements if "support_tickets" in s["statement"]]
    assert tickets and all(s["plan"] and s["ms"] >= 0 for s in tickets)
