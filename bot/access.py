"""Who may ask what: app.yaml's `access` section applied to a Slack user.

Members of the workspace may use the command when no allow-list is set, or when they are on the
list of users, in a listed user group, or asking in a listed channel. External users (Slack
Connect partners, guests) see at most their own partner's scorecard, found by their email
domain or a configured user entry, and are refused politely otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kpi.config import AccessConfig


@dataclass(frozen=True)
class Asker:
    user_id: str
    channel_id: str | None = None
    email: str | None = None
    external: bool = False  # a Slack Connect user from another organisation, or a guest
    user_name: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # None: every partner; else the only partners this asker may see
    partner_ids: frozenset[str] | None = None


#: Returns the member ids of a Slack user group (the Web API's usergroups.users.list).
GroupMembers = Callable[[str], set[str]]


def decide(
    access: AccessConfig, asker: Asker, group_members: GroupMembers | None = None
) -> Decision:
    if asker.external:
        partner_id = _external_partner(access, asker)
        if partner_id is None:
            return Decision(False, "external user with no partner mapping")
        return Decision(True, "external user, own partner only", frozenset({partner_id}))
    if not (access.users or access.usergroups or access.channels):
        return Decision(True, "workspace member")
    if asker.user_id in access.users:
        return Decision(True, "listed user")
    if asker.channel_id and asker.channel_id in access.channels:
        return Decision(True, "listed channel")
    if group_members is not None:
        for group in access.usergroups:
            if asker.user_id in group_members(group):
                return Decision(True, f"member of user group {group}")
    return Decision(False, "not on the access list")


def _external_partner(access: AccessConfig, asker: Asker) -> str | None:
    external = access.external
    if asker.user_id in external.users:
        return external.users[asker.user_id]
    if asker.email:
        email = asker.email.strip().lower()
        for key, partner_id in external.users.items():
            if key.lower() == email:
                return partner_id
        domain = email.rpartition("@")[2]
        for key, partner_id in external.domains.items():
            if key.lower() == domain:
                return partner_id
    return None
