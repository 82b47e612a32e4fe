"""The CRM-independent sync machinery: watermarks committed with their pages, look-back,
full-sync sweeps, retries with backoff and jitter, and the API budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.guard import DeleteGuard, DeletionRefused
from connectors.incremental import (
    ApiBudget,
    Cursor,
    Page,
    RetryPolicy,
    StopSync,
    Stream,
    StreamWriter,
    advance_watermark,
    read_watermark,
)
from connectors.report import SyncReport
from kpi.models import Deal, DealStatus, Partner
from kpi.read_keys import ReadKeys
from kpi.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = "crm"


def partner(n: int) -> Partner:
    return Partner(id=f"p{n}", name=f"Partner {n}", joined_on=date(2025, 1, 1))


def pages_of(numbers: list[int], fail_after: int | None = None) -> Iterator[Page]:
    for index, n in enumerate(numbers):
        if fail_after is not None and index >= fail_after:
            raise ConnectionError("the network went away")
        yield Page([partner(n)], cursor=Cursor(T0 + timedelta(minutes=n), f"p{n}"), rows_read=1)


def writer(store: Store, report: SyncReport | None = None) -> StreamWriter:
    return StreamWriter(store, SOURCE, report or SyncReport(SOURCE, False), None, T0)


def test_each_page_commits_with_its_watermark_so_a_failure_keeps_earlier_pages(
    store: Store,
) -> None:
    stream = Stream("Account", Partner, lambda start: pages_of([1, 2, 3], fail_after=2))
    with pytest.raises(ConnectionError):
        writer(store).run(stream, full=False, lookback=timedelta())
    assert [p.id for p in store.records(Partner)] == ["p1", "p2"]
    assert read_watermark(store, SOURCE, "Account") == Cursor(T0 + timedelta(minutes=2), "p2")


def test_the_next_run_starts_at_the_watermark_minus_the_lookback(store: Store) -> None:
    starts: list[Cursor | None] = []

    def pages(start: Cursor | None) -> Iterator[Page]:
        starts.append(start)
        return pages_of([1, 2])

    stream = Stream("Account", Partner, pages)
    writer(store).run(stream, full=False, lookback=timedelta(minutes=10))
    writer(store).run(stream, full=False, lookback=timedelta(minutes=10))
    assert starts == [None, Cursor(T0 + timedelta(minutes=2) - timedelta(minutes=10), "")]
    assert len(store.records(Partner)) == 2  # re-reading the look-back adds nothing


def test_a_watermark_never_moves_back(store: Store) -> None:
    later, earlier = Cursor(T0 + timedelta(hours=1), "b"), Cursor(T0, "z")
    with store.transaction() as connection:
        advance_watermark(store, connection, SOURCE, "Account", later)
        advance_watermark(store, connection, SOURCE, "Account", earlier)
    assert read_watermark(store, SOURCE, "Account") == later
    assert Cursor(T0, "a") < Cursor(T0, "b") < Cursor(T0 + timedelta(seconds=1), "a")


def test_a_full_sync_sweeps_what_it_did_not_see(store: Store) -> None:
    report = SyncReport(SOURCE, True)
    writer(store, report).run(
        Stream("Account", Partner, lambda s: pages_of([1, 2, 3, 4, 5, 6])), False, timedelta()
    )
    full = writer(store, report)
    full.run(Stream("Account", Partner, lambda s: pages_of([1, 3, 4, 5, 6])), True, timedelta())
    assert len(store.records(Partner)) == 6  # the sweep waits for every stream
    full.sweep()
    assert [p.id for p in store.records(Partner)] == ["p1", "p3", "p4", "p5", "p6"]
    assert report.objects["Account"].deleted == 1  # 1 of 6: within the guard's 20%


def test_a_full_sync_sweep_over_the_guard_share_deletes_nothing(store: Store) -> None:
    report = SyncReport(SOURCE, True)
    writer(store, report).run(
        Stream("Account", Partner, lambda s: pages_of([1, 2, 3, 4, 5])), False, timedelta()
    )
    guard = DeleteGuard(max_share=0.2)
    full = StreamWriter(store, SOURCE, report, None, T0, guard)
    full.run(Stream("Account", Partner, lambda s: pages_of([1, 3, 5])), True, timedelta())
    full.sweep()
    assert len(store.records(Partner)) == 5
    assert [(s.table, sorted(s.gone), s.stored) for s in guard.refused] == [
        ("partners", ["p2", "p4"], 5)
    ]
    with pytest.raises(DeletionRefused, match=r"2 of the 5 stored partners, more than"):
        guard.raise_if_refused("none of them were deleted")


def test_one_refused_sweep_keeps_every_tables_rows(store: Store) -> None:
    """Deals hidden with their history: the history's sweep alone would pass the guard."""
    report = SyncReport(SOURCE, True)
    first = writer(store, report)
    first.run(Stream("Account", Partner, lambda s: pages_of(list(range(10)))), True, timedelta())
    first.run(Stream("Deal", Deal, lambda s: deal_pages(range(10))), True, timedelta())
    first.sweep()
    guard = DeleteGuard(max_share=0.2)
    full = StreamWriter(store, SOURCE, report, None, T0, guard)
    full.run(Stream("Account", Partner, lambda s: pages_of(list(range(9)))), True, timedelta())
    full.run(Stream("Deal", Deal, lambda s: deal_pages(range(5))), True, timedelta())
    full.sweep()
    assert [s.table for s in guard.refused] == ["deals"]
    assert len(store.records(Partner)) == 10  # p9's deletion (10%) waits with the deals'
    assert len(store.records(Deal)) == 10


def deal_pages(numbers: range) -> Iterator[Page]:
    deals = [
        Deal(id=f"d{n}", partner_id=f"p{n}", status=DealStatus.OPEN, created_on=date(2026, 1, 1))
        for n in numbers
    ]
    yield Page(list(deals), cursor=Cursor(T0, "d"), rows_read=len(deals))


def test_a_changes_only_stream_without_watermark_is_seeded_not_read(store: Store) -> None:
    def never(start: Cursor | None) -> Iterator[Page]:
        raise AssertionError("read")

    writer(store).run(Stream("Contact", Partner, never, changes_only=True), False, timedelta())
    assert read_watermark(store, SOURCE, "Contact") == Cursor(T0)


def test_deletions_in_a_page_are_counted(store: Store) -> None:
    report = SyncReport(SOURCE, False)
    writer(store, report).run(
        Stream("Account", Partner, lambda s: pages_of([1, 2])), False, timedelta()
    )
    gone = Page(deleted_ids=["p1", "unknown"], cursor=Cursor(T0 + timedelta(hours=1)))
    writer(store, report).run(Stream("Account", Partner, lambda s: [gone]), False, timedelta())
    assert [p.id for p in store.records(Partner)] == ["p2"]
    assert report.objects["Account"].deleted == 1


def test_retries_back_off_with_jitter_and_give_up() -> None:
    slept: list[float] = []
    policy = RetryPolicy(
        attempts=4, base_delay=1, max_delay=3, sleep=slept.append, jitter=lambda: 1
    )
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 4:
            raise ConnectionError
        return "ok"

    assert policy.run(flaky, lambda e: isinstance(e, ConnectionError)) == "ok"
    assert slept == [1, 2, 3]  # 1·2ⁿ capped at 3
    with pytest.raises(ValueError):
        policy.run(lambda: (_ for _ in ()).throw(ValueError()), lambda e: False)
    half = RetryPolicy(base_delay=2, jitter=lambda: 0.5)
    assert half.delay(0) == 1 and half.delay(2) == 4


def test_the_budget_stops_before_the_share_is_spent() -> None:
    budget = ApiBudget(max_share=0.5)
    budget.check()  # nothing known yet
    budget.observe(used=101, total=200)  # 100 by others, 1 by us
    for used in range(102, 400):
        try:
            budget.check()
        except StopSync as stop:
            assert "50%" in str(stop)
            break
        budget.observe(used=used, total=200)
    assert budget.spent == 100


def test_seen_ids_answer_membership_for_what_was_added_only() -> None:
    seen = ReadKeys()
    ids = [f"006{n:015d}" for n in range(5_000)]
    seen.add(ids[:2_500])
    seen.add(ids[2_500:4_000])  # pages arrive one after another
    assert len(seen) == 4_000
    assert all(key in seen for key in ids[:4_000])
    assert not any(key in seen for key in ids[4_000:])
    seen.add(["late"])  # more after a lookup still counts
    assert "late" in seen and "never" not in seen and 42 not in seen
