"""The files source's bulk read: whole columns of a batch of CSV records at once.

Each function gives, for every record of a batch, its stored columns as the file's builder in
`connectors.files` and `RecordKind.values` would make them, or None for a record a column check
refused (its builder reads it, so a bad row's message is always the builder's).
tests/test_files_bulk.py holds the two paths to the same stored rows. A module of its own,
without the store, so that the files source's reading process (`connectors.reader_process`)
imports it and stays small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from connectors.csv_columns import Columns
from connectors.normalize import Normalizer
from kpi.models import Channel, DealStatus, DealType
from kpi.record_keys import natural_key

Values = dict[str, Any]


def _bulk_partners(c: Columns, _: Normalizer) -> list[Values | None]:
    ids, names = c.required("id"), c.required("name")
    tiers, owners, regions = c.text("tier"), c.text("owner_email"), c.text("region")
    joined, left = c.date("joined_on", required=True), c.date("left_on")
    emails = c.text("contact_emails")
    return [
        None
        if row in c.bad
        else {
            "id": ids[row],
            "name": names[row],
            "tier": tiers[row],
            "joined_on": joined[row],
            "left_on": left[row],
            "owner_email": owners[row],
            "contact_emails": [e.strip() for e in (emails[row] or "").split(";") if e.strip()],
            "region": regions[row],
        }
        for row in range(c.size)
    ]


def _bulk_deals(c: Columns, normalize: Normalizer) -> list[Values | None]:
    statuses = c.choice("status", DealStatus, required=True)
    closed = c.date("closed_on")
    for row, (status, closed_on) in enumerate(zip(statuses, closed, strict=True)):
        if closed_on is None and status != DealStatus.OPEN:
            c.bad.add(row)  # "closed_on is empty" (or the status's own message)
    amounts, currencies = c.decimal("amount"), c.text("currency")
    sources, csats = c.text("lead_source"), c.integer("csat", 1, 5)
    ids, partners, names, stages = (
        c.required("id"),
        c.text("partner_id"),
        c.text("name"),
        c.text("stage"),
    )
    created, expected = c.date("created_on", required=True), c.date("expected_close_on")
    types, explicit = c.choice("type", DealType), c.choice("channel", Channel)
    registered, registered_on = c.boolean("registered"), c.date("registered_on")
    channels: dict[tuple[str | None, str | None], str] = {}
    found: list[Values | None] = []
    for row in range(c.size):
        if row in c.bad:
            found.append(None)
            continue
        amount, currency, source = amounts[row], currencies[row], sources[row]
        pair = (source, explicit[row])
        channel = channels.get(pair)
        if channel is None:
            given = Channel(pair[1]) if pair[1] is not None else None
            channel = channels[pair] = normalize.channel(source, given).value
        converted = normalize.amount(amount, currency)  # last, as the builder converts
        found.append(
            {
                "id": ids[row],
                "partner_id": partners[row],
                "name": names[row] or "",
                "amount": None if converted is None else float(converted),
                "original_amount": None if amount is None else float(amount),
                "currency": currency.upper() if currency else None,
                "stage": stages[row],
                "status": statuses[row],
                "created_on": created[row],
                "closed_on": closed[row],
                "expected_close_on": expected[row],
                "type": types[row],
                "lead_source": source,
                "channel": channel,
                "registered": registered[row],
                "registered_on": registered_on[row],
                "csat": csats[row],
            }
        )
    return found


def _bulk_stage_changes(c: Columns, _: Normalizer) -> list[Values | None]:
    return _keyed_by_content(c, ("deal_id", "stage", "entered_at"), c.timestamp("entered_at"))


def _bulk_trainings(c: Columns, _: Normalizer) -> list[Values | None]:
    completed = c.date("completed_on", required=True)
    # numbered among identical rows by the reader
    return _keyed_by_content(c, ("partner_id", "course", "completed_on"), completed, occurrence=1)


def _keyed_by_content(
    c: Columns, names: tuple[str, str, str], moments: Sequence[object], **fixed: object
) -> list[Values | None]:
    """Records without an id (stage changes, trainings), keyed by two required text columns
    and a moment (`kpi.store.natural_key`)."""
    firsts, seconds = c.required(names[0]), c.required(names[1])
    found: list[Values | None] = []
    for row in range(c.size):
        first, second, moment = firsts[row], seconds[row], moments[row]
        if row in c.bad or first is None or second is None or not isinstance(moment, dt.date):
            found.append(None)
            continue
        key = natural_key(first, second, moment.isoformat())
        found.append({"id": key, names[0]: first, names[1]: second, names[2]: moment, **fixed})
    return found


def _bulk_customers(c: Columns, normalize: Normalizer) -> list[Values | None]:
    ids, partners, names = c.required("id"), c.text("partner_id"), c.text("name")
    became, churned = c.date("became_customer_on", required=True), c.date("churned_on")
    mrrs, currencies = c.decimal("mrr"), c.text("currency")
    onboarded, referrers = c.date("onboarded_on"), c.text("referred_by")
    found: list[Values | None] = []
    for row in range(c.size):
        if row in c.bad:
            found.append(None)
            continue
        mrr, currency = mrrs[row], currencies[row]
        converted = normalize.amount(mrr, currency)  # last, as the builder converts
        found.append(
            {
                "id": ids[row],
                "partner_id": partners[row],
                "name": names[row] or "",
                "became_customer_on": became[row],
                "churned_on": churned[row],
                "mrr": None if converted is None else float(converted),
                "original_mrr": None if mrr is None else float(mrr),
                "currency": currency.upper() if currency else None,
                "onboarded_on": onboarded[row],
                "referred_by": referrers[row],
            }
        )
    return found


def _bulk_tickets(c: Columns, _: Normalizer) -> list[Values | None]:
    ids, customers, opened = c.required("id"), c.required("customer_id"), c.timestamp("opened_at")
    return [
        None
        if row in c.bad
        else {"id": ids[row], "customer_id": customers[row], "opened_at": opened[row]}
        for row in range(c.size)
    ]


#: The files read in bulk, by name (survey answers and goals: each row by its builder).
BULK: dict[str, Callable[[Columns, Normalizer], list[Values | None]]] = {
    "partners.csv": _bulk_partners,
    "deals.csv": _bulk_deals,
    "stage_changes.csv": _bulk_stage_changes,
    "trainings.csv": _bulk_trainings,
    "customers.csv": _bulk_customers,
    "tickets.csv": _bulk_tickets,
}


#: The settings each file's builder reads, as a fingerprint covers them.
SETTINGS_READ: dict[str, Callable[[Normalizer], str]] = {
    "deals.csv": lambda normalize: normalize.settings(channels=True),
    "customers.csv": lambda normalize: normalize.settings(channels=False),
}
