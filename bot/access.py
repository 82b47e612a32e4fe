"""Who may ask what: app.yaml's `access` section applied to a Slack user, failing closed.

Members of the workspace may use the command when no allow-list is set, or when they are on the
list of users, in a listed user group, or asking in a listed channel. External users (Slack
Connect partners, guests) see at most their own partner's scorecard, found by their Slack user
id, their email or its domain, and are refused otherwise.

Every fact a rule needs comes from Slack (bot/slack_facts.py). When one cannot be had, the
answer is a refusal (`FactUnavailable`), never a default: a failed profile lookup does not make
a guest a member, a failed group lookup does not let anyone in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from settings.slack import AccessConfig, GoalSettersConfig


class FactUnavailable(Exception):
    """A fact about Slack could not be learned (an error, a rate limit, a timeout)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class Refused(Exception):
    """A request refused after the first check (an external user asking for the program, a
    forged button); `refusal` names the sentence of templates/refused.json.j2, `reason` is what
    the audit log records."""

    def __init__(self, refusal: str, reason: str) -> None:
        super().__init__(reason)
        self.refusal = refusal
        self.reason = reason


@dataclass(frozen=True)
class Workspace:
    """The bot's own workspace (auth.test): whoever belongs to neither is external."""

    team_id: str
    enterprise_id: str | None = None

    def includes(self, team_id: str | None, enterprise_id: str | None) -> bool:
        if self.enterprise_id and enterprise_id:
            return enterprise_id == self.enterprise_id
        return team_id == self.team_id


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
    reason: str  # what the audit log records
    # None: every partner; else the only partners this asker may see
    partner_ids: frozenset[str] | None = None
    refusal: str | None = None  # for a refusal: the sentence's name in refused.json.j2
    external: bool = False  # answers take the partner view (bot/answers.py)

    @classmethod
    def refuse(cls, refusal: str, reason: str) -> Decision:
        return cls(False, reason, frozenset(), refusal)


#: Returns the member ids of a Slack user group; raises FactUnavailable when it cannot.
GroupMembers = Callable[[str], frozenset[str]]


def identify(
    user: Mapping[str, Any],
    workspace: Workspace,
    channel_id: str | None,
    user_name: str | None = None,
    request_team: tuple[str | None, str | None] = (None, None),
) -> Asker | Decision:
    """The asker that users.info's `user` describes, or a refusal for a deleted or bot user.

    External: a guest (restricted, ultra-restricted), a stranger, or anyone whose team (as
    users.info or the request says) is outside the bot's workspace or Enterprise Grid org.
    """
    user_id = str(user.get("id") or "")
    if user.get("deleted"):
        return Decision.refuse("not_allowed", "deactivated Slack user")
    if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
        return Decision.refuse("people_only", "bot user")
    profile = user.get("profile") or {}
    enterprise = (user.get("enterprise_user") or {}).get("enterprise_id")
    outside = not workspace.includes(user.get("team_id") or profile.get("team"), enterprise)
    # What Slack sent with the request only ever tightens: a team other than the bot's (unless
    # the profile places the user in the bot's Enterprise Grid org), or another org.
    request_team_id, request_enterprise = request_team
    same_org = bool(workspace.enterprise_id) and enterprise == workspace.enterprise_id
    if request_team_id and request_team_id != workspace.team_id and not same_org:
        outside = True
    if request_enterprise and workspace.enterprise_id != request_enterprise and not same_org:
        outside = True
    external = bool(
        user.get("is_restricted")
        or user.get("is_ultra_restricted")
        or user.get("is_stranger")
        or outside
    )
    email = profile.get("email")
    return Asker(
        user_id=user_id,
        channel_id=channel_id,
        email=email if isinstance(email, str) else None,
        external=external,
        user_name=user_name,
    )


def decide(
    access: AccessConfig, asker: Asker, group_members: GroupMembers | None = None
) -> Decision:
    """The access decision for an identified asker; a user group that cannot be read refuses
    (when no other rule already let the asker in)."""
    if asker.external:
        return _decide_external(access, asker)
    if not (access.users or access.usergroups or access.channels):
        return Decision(True, "workspace member")
    if asker.user_id in access.users:
        return Decision(True, "listed user")
    if asker.channel_id and asker.channel_id in access.channels:
        return Decision(True, "listed channel")
    if group_members is not None:
        for group in access.usergroups:
            try:
                members = group_members(group)
            except FactUnavailable as error:
                return Decision.refuse(
                    "lookup_failed", f"user group {group} unreadable: {error.cause}"
                )
            if asker.user_id in members:
                return Decision(True, f"member of user group {group}")
    return Decision.refuse("not_allowed", "not on the access list")


def _decide_external(access: AccessConfig, asker: Asker) -> Decision:
    external = access.external
    partner_id = external.users.get(asker.user_id)
    if partner_id is None and (external.domains or external.users) and not split_email(asker.email):
        return Decision.refuse("no_email", "external user without a usable email in Slack")
    if partner_id is None:
        partner_id = _partner_by_email(access, asker.email)
    if partner_id is None:
        return Decision.refuse("no_partner", "external user with no partner mapping")
    return Decision(
        True,
        f"external user, own partner {partner_id} only",
        frozenset({partner_id}),
        external=True,
    )


def _partner_by_email(access: AccessConfig, email: str | None) -> str | None:
    parts = split_email(email)
    if parts is None:
        return None
    address = "@".join(parts)
    external = access.external
    for key, partner_id in external.users.items():
        if key.strip().lower() == address:
            return partner_id
    for key, partner_id in external.domains.items():
        if key.strip().lower() == parts[1]:
            return partner_id
    return None


def split_email(email: str | None) -> tuple[str, str] | None:
    """(local part, domain), lower-cased, for an address of exactly one local part and one
    domain; None for anything else (no `@`, two of them, an empty side, spaces)."""
    if not email:
        return None
    address = email.strip().lower()
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in address):
        return None
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    return local, domain


def require_goal_setter(
    setters: GoalSettersConfig,
    user_id: str,
    decision: Decision,
    group_members: GroupMembers | None = None,
) -> None:
    """Raises Refused unless the asker may set goals: a member of the workspace (never an
    external user) listed in `access.goal_setters` by user id or user group. A user group that
    cannot be read refuses, as for access itself."""
    if decision.external or decision.partner_ids is not None:
        raise Refused("not_goal_setter", "goal change by an external user")
    if user_id in setters.users:
        return
    if group_members is not None:
        for group in setters.usergroups:
            try:
                members = group_members(group)
            except FactUnavailable as error:
                raise Refused(
                    "lookup_failed", f"goal setters' user group {group} unreadable: {error.cause}"
                ) from None
            if user_id in members:
                return
    raise Refused("not_goal_setter", "goal change by a user not in access.goal_setters")
