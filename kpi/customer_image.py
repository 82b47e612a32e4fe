"""An in-memory copy of what every partner's customer sums read (kpi-spec.md section 7), per
customers version (see `kpi.images`).

Every partner's cards show customer outcomes: in SQL three grouped statements over the
customers, a seek per customer into its tickets, and the referrals' join (about 0.2 s at the
benchmark's 50,000 customers and 250,000 tickets, most of it the tickets' index). Here each
customer is a row of small arrays (its partner group, its dates as days since 1970, its MRR),
a window's sums for every partner are a few comparisons and one `np.bincount` per field; the
tickets and the referred customers are sorted by moment and day, so a window is a slice.
Customers and tickets move no rollup: migration 0013's triggers bump their own version
(`kpi_customers_version`) with every write, and the copy is tied to it.
Memory: about 33 bytes per customer and 12 per ticket (5 MB for the benchmark's store).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Date, func, literal, select

from kpi import images, schema
from kpi.aggregates import CustomerTotals, PartnerKey, Totals, Window, totals_of
from kpi.sqlfuncs import days_between, epoch_micros
from kpi.stage_image import micros_of_texts, micros_since_1970

Ints = npt.NDArray[np.int64]
Days = npt.NDArray[np.int32]
Groups = npt.NDArray[np.int32]
_EPOCH = date(1970, 1, 1)
_NEVER = np.iinfo(np.int32).max  # a null date: after every window
_ROWS_PER_CHUNK = 10_000

c = schema.customers
t = schema.support_tickets


@dataclass(frozen=True)
class CustomerImage:
    version: int
    groups: list[str | None]  # the partner id of each group (None: direct customers)
    group: Groups  # each customer's group
    became: Days  # each customer's became_customer_on, days since 1970
    churned: Days  # churned_on, or _NEVER
    onboarded: Days  # onboarded_on, or _NEVER
    wait: Ints  # max(onboarded_on - became_customer_on, 0) days, 0 when not onboarded
    mrr: npt.NDArray[np.float64]  # the MRR, 0 when null
    has_mrr: npt.NDArray[np.bool_]  # whether the MRR is known
    ticket_at: Ints  # the tickets of known customers: opened_at in microseconds, ascending
    ticket_group: Groups  # their customer's group
    referral_day: Days  # customers referred by a known customer: became_customer_on, ascending
    referral_group: Groups  # their referrer's group

    def add(
        self,
        periods: Sequence[tuple[dict[PartnerKey, Totals], Window]],
        partner_ids: Collection[str] | None = None,
    ) -> None:
        """Sets each group's CustomerTotals for each (totals, window), as
        `kpi.customers.add_customers_of`'s statements do: every group with a customer gets one
        (`partner_ids`: only theirs)."""
        chosen = None if partner_ids is None else set(partner_ids)
        for totals, window in periods:
            rows = self.sums(window)
            for key, row in zip(self.groups, rows, strict=True):
                if chosen is None or key in chosen:
                    totals_of(totals, key).customers = CustomerTotals(*row)

    def sums(self, window: Window) -> list[tuple[Any, ...]]:
        """Each group's CustomerTotals fields for `window`, in order: counts as ints, MRR sums
        as floats (an int 0 where no known MRR counted, as SQL's SUM over none is null)."""
        size = len(self.groups)
        start, end = _day(window.start), _day(window.end)
        became, churned, onboarded = self.became, self.churned, self.onboarded

        def count(mask: npt.NDArray[np.bool_]) -> list[int]:
            counted: Ints = np.bincount(self.group[mask], minlength=size)
            return counted.tolist()  # type: ignore[no-any-return]

        def money(mask: npt.NDArray[np.bool_]) -> list[Any]:
            known = mask & self.has_mrr
            total = np.bincount(self.group[known], weights=self.mrr[known], minlength=size)
            summed = np.bincount(self.group[known], minlength=size)
            pairs = zip(total.tolist(), summed.tolist(), strict=True)
            return [value if n else 0 for value, n in pairs]

        at_start = (became < start) & (churned >= start)
        at_end = (became < end) & (churned >= end)
        retained = at_start & at_end
        is_onboarded = (onboarded >= start) & (onboarded < end)
        waited = np.bincount(
            self.group[is_onboarded], weights=self.wait[is_onboarded], minlength=size
        )
        bounds = [micros_since_1970(window.start_at), micros_since_1970(window.end_at)]
        low, high = np.searchsorted(self.ticket_at, bounds)
        tickets = np.bincount(self.ticket_group[low:high], minlength=size)
        first, last = np.searchsorted(self.referral_day, [start, end])
        referrals = np.bincount(self.referral_group[first:last], minlength=size)
        columns = [
            count(at_start),
            count(at_end),
            count(retained),
            count((became >= start) & (became < end)),
            count((churned >= start) & (churned < end)),
            money(at_start),
            money(retained),
            money(at_end),
            count(is_onboarded),
            waited.astype(np.int64).tolist(),
            count((became < end) & (churned >= start)),
            tickets.tolist(),
            referrals.tolist(),
        ]
        return list(zip(*columns, strict=True))


def _day(day: date) -> int:
    return (day - _EPOCH).days


def version(connection: Connection) -> int:
    """The customers' version: every write to the customers or their tickets moves it."""
    found = connection.execute(select(schema.kpi_customers_version.c.version)).scalar()
    return int(found or 0)


def load(connection: Connection, as_text: bool = True) -> CustomerImage | None:
    """The copy of the store's customers and tickets (None below `images.MIN_ROWS` rows of
    them together, or when a write committed while they were read). SQLite's moments come as
    their stored text, parsed here; any text not in SQLAlchemy's form makes it read them
    converted by the database (`as_text=False`)."""
    at_version = version(connection)  # before the rows: see kpi.images
    since_epoch = literal(_EPOCH, Date)
    customers = select(
        c.c.id,
        c.c.partner_id,
        days_between(since_epoch, c.c.became_customer_on),
        days_between(since_epoch, c.c.churned_on),
        days_between(since_epoch, c.c.onboarded_on),
        c.c.mrr,
        c.c.referred_by,
    )
    rows = [row for chunk in images.chunks(connection, customers, _ROWS_PER_CHUNK) for row in chunk]
    textual = as_text and connection.dialect.name == "sqlite"
    opened = t.c.opened_at if textual else epoch_micros(t.c.opened_at)
    tickets_query = select(
        t.c.customer_id, func.count(), *images.lists(connection, [opened], t.c.id)
    ).group_by(t.c.customer_id)
    owners: list[str] = []
    sizes: list[int] = []
    moments: list[Ints] = []
    parse = micros_of_texts if textual else images.integers
    for chunk in images.chunks(connection, tickets_query, _ROWS_PER_CHUNK):
        owners.extend(row[0] for row in chunk)
        sizes.extend(int(row[1]) for row in chunk)
        try:
            moments.append(parse(row[2] for row in chunk))
        except ValueError:
            return load(connection, as_text=False)
    if version(connection) != at_version:
        return None  # a write committed while the rows were read: they may not be its
    ticket_count = sum(sizes)
    if len(rows) + ticket_count < images.MIN_ROWS:
        return None
    return _image(at_version, rows, owners, sizes, moments)


def _image(
    at_version: int, rows: list[Any], owners: list[str], sizes: list[int], moments: list[Ints]
) -> CustomerImage | None:
    partner_ids = {row[1] for row in rows}
    groups = sorted(partner_ids, key=lambda key: (key is not None, key or ""))
    index = {key: number for number, key in enumerate(groups)}
    group_of = {row[0]: index[row[1]] for row in rows}

    def days(position: int) -> Days:
        found = [_NEVER if row[position] is None else row[position] for row in rows]
        return np.array(found, dtype=np.int32)

    became, churned, onboarded = days(2), days(3), days(4)
    mrr = np.array([0.0 if row[5] is None else row[5] for row in rows], dtype=np.float64)
    has_mrr = np.array([row[5] is not None for row in rows], dtype=np.bool_)
    wait = np.where(onboarded == _NEVER, 0, np.maximum(onboarded.astype(np.int64) - became, 0))
    ticket_at = np.concatenate(moments) if moments else np.zeros(0, dtype=np.int64)
    if len(ticket_at) != sum(sizes):
        return None  # lists that do not line up
    owner_group = np.array([group_of.get(owner, -1) for owner in owners], dtype=np.int32)
    ticket_group = np.repeat(owner_group, np.array(sizes, dtype=np.int64))
    known = ticket_group >= 0  # a ticket of an unknown customer counts for nobody
    ticket_at, ticket_group = _sorted(ticket_at[known], ticket_group[known])
    referred = [(row[2], group_of[row[6]]) for row in rows if row[6] in group_of]
    referral_day, referral_group = _sorted(
        np.array([day for day, _ in referred], dtype=np.int32),
        np.array([group for _, group in referred], dtype=np.int32),
    )
    return CustomerImage(
        version=at_version,
        groups=groups,
        group=np.array([index[row[1]] for row in rows], dtype=np.int32),
        became=became,
        churned=churned,
        onboarded=onboarded,
        wait=wait.astype(np.int64),
        mrr=mrr,
        has_mrr=has_mrr,
        ticket_at=ticket_at,
        ticket_group=ticket_group,
        referral_day=referral_day,
        referral_group=referral_group,
    )


def _sorted(keys: npt.NDArray[Any], groups: Groups) -> tuple[Any, Groups]:
    order = np.argsort(keys, kind="stable")
    return keys[order], groups[order].astype(np.int32)


def current(connection: Connection, at_version: int) -> CustomerImage | None:
    """The store's copy at `at_version` (see `kpi.images.current`)."""
    return images.current(connection, at_version, "customers", load)
