"""Writes small CSV folders in the files-source format for tests."""

from __future__ import annotations

from pathlib import Path

PARTNER_HEADER = "id,name,tier,joined_on,left_on,owner_email,contact_emails"
DEAL_HEADER = (
    "id,partner_id,name,amount,currency,stage,status,created_on,closed_on,expected_close_on,"
    "type,lead_source,channel,registered,registered_on,csat"
)
STAGE_HEADER = "deal_id,stage,entered_at"
CUSTOMER_HEADER = (
    "id,partner_id,name,became_customer_on,churned_on,mrr,currency,onboarded_on,referred_by"
)
TICKET_HEADER = "id,customer_id,opened_at"
TRAINING_HEADER = "partner_id,course,completed_on"


def write_folder(folder: Path, **files: str) -> Path:
    """Writes each keyword as `<name>.csv` (its text dedented line by line)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        lines = [line.strip() for line in text.strip().splitlines()]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def minimal_folder(folder: Path) -> Path:
    return write_folder(
        folder,
        partners=f"""{PARTNER_HEADER}
            p1,Acme Corp,Gold,2024-01-15,,ann@example.com,a@acme.example;b@acme.example
            p2,Globex,,2025-03-01,2026-06-30,,""",
        deals=f"""{DEAL_HEADER}
            d1,p1,Acme big,200,USD,Closed Won,won,2026-01-01,2026-02-01,,new,Web,,true,,5
            d2,p1,Acme euro,100,EUR,Closed Won,won,2026-01-05,2026-03-01,,upsell,Paid Search,,,,
            d3,,Direct,50,,Proposal,open,2026-02-01,,2026-12-01,,,,false,,""",
        stage_changes=f"""{STAGE_HEADER}
            d1,Prospecting,2026-01-01T09:00:00Z
            d1,Closed Won,2026-02-01T10:00:00+01:00""",
    )
