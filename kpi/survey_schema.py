"""The survey tables (migration 0005), on the store's metadata beside kpi.schema's tables.

Answers themselves live in `survey_responses` (kpi.schema), which the KPI engine reads.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, SmallInteger, String, Table, Text

from kpi.schema import ID, metadata

#: email (lower case) -> Slack user, as users.lookupByEmail last answered.
survey_contacts = Table(
    "survey_contacts",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("slack_user_id", String(64)),  # null: no Slack user has this email
    Column("status", String(16), nullable=False),  # found | not_found | error
    Column("error", String(255)),
    Column("checked_at", DateTime, nullable=False),
)

#: One row per round of a campaign, written when the round is first sent. `salt` keys the
#: hashed answer ids of an anonymous round and is erased when the round closes.
survey_rounds = Table(
    "survey_rounds",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("round_id", String(32), primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("remind_at", DateTime),
    Column("closes_at", DateTime, nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("salt", String(64)),
)

#: One row per DM of a round: who got it, for which partner, and where it is (to update it).
survey_deliveries = Table(
    "survey_deliveries",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("round_id", String(32), primary_key=True),
    Column("slack_user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("partner_id", String(ID), nullable=False),
    Column("channel_id", String(64)),
    Column("message_ts", String(64)),
    Column("sent_at", DateTime),
    Column("answered", Boolean, nullable=False),
    Column("score", SmallInteger),  # what the DM shows; null for an anonymous round
    Column("comment", Text),  # likewise
    Index("ix_survey_deliveries_message", "channel_id", "message_ts"),
)

#: "Stop these surveys": honoured in every later round of the campaign.
survey_opt_outs = Table(
    "survey_opt_outs",
    metadata,
    Column("campaign", String(64), primary_key=True),
    Column("slack_user_id", String(64), primary_key=True),
    Column("email", String(320)),
    Column("at", DateTime, nullable=False),
)
