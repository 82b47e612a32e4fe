"""The org's describe: checks every field app.yaml names before anything is synced, follows
relationship paths (`Owner.Email` through Account.OwnerId → User), and reads picklists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import SourceError
from connectors.salesforce.client import NotFound, SalesforceApi
from settings.crm import SalesforceConfig


class UnknownFields(SourceError):
    """app.yaml names fields the org does not have; nothing was synced."""


@dataclass
class OrgSchema:
    api: SalesforceApi
    describes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The object's fields by lower-cased name (Salesforce names ignore case)."""
        key = sobject.casefold()
        if key not in self.describes:
            try:
                described = self.api.describe(sobject)
            except NotFound:  # an object the org lacks or the user cannot see: no fields
                described = {}
            self.describes[key] = {f["name"].casefold(): f for f in described.get("fields", [])}
        return self.describes[key]

    def find(self, sobject: str, path: str) -> dict[str, Any] | None:
        """The field at `path` from `sobject`, following lookups by relationship name."""
        *hops, last = path.split(".")
        current = sobject
        for hop in hops:
            link = next(
                (
                    f
                    for f in self.fields(current).values()
                    if (f.get("relationshipName") or "").casefold() == hop.casefold()
                ),
                None,
            )
            if link is None or not link.get("referenceTo"):
                return None
            current = link["referenceTo"][0]
        return self.fields(current).get(last.casefold())

    def picklist(self, sobject: str, name: str) -> list[str]:
        found = self.find(sobject, name) or {}
        return [v["value"] for v in found.get("picklistValues", []) if v.get("active", True)]


CUSTOMER_KEYS = (
    "name",
    "partner",
    "became_customer_on",
    "churned_on",
    "mrr",
    "onboarded_on",
    "referred_by",
)


def configured_fields(settings: SalesforceConfig) -> Iterable[tuple[str, str, str]]:
    """(object, field path, where in app.yaml) for every field app.yaml names."""
    partners, deals = settings.partners, settings.deals
    for key in ("name", "tier", "joined_on", "left_on", "owner_email", "region"):
        path = getattr(partners, key)
        if path:
            yield "Account", path, f"salesforce.partners.{key}"
    for path in partners.filter:
        yield "Account", path, "salesforce.partners.filter"
    keys = ["name", "amount", "type", "lead_source", "channel", "registered", "registered_on"]
    keys.append("csat")
    if deals.partner_role is None:
        keys.append("partner")
    for key in keys:
        path = getattr(deals, key)
        if path:
            yield "Opportunity", path, f"salesforce.deals.{key}"
    customers = settings.customers
    if customers is None:
        return
    for path in customers.filter:
        yield "Account", path, "salesforce.customers.filter"
    for key in CUSTOMER_KEYS:
        path = getattr(customers, key)
        if path:
            yield "Account", path, f"salesforce.customers.{key}"
    if customers.tickets:
        for path in ("AccountId", "CreatedDate"):
            yield "Case", path, "salesforce.customers.tickets"


def check_fields(org: OrgSchema, settings: SalesforceConfig) -> None:
    """Raises UnknownFields naming every configured field the org's describe lacks."""
    unknown = [
        f"{sobject}.{path} ({where})"
        for sobject, path, where in configured_fields(settings)
        if org.find(sobject, path) is None
    ]
    if unknown:
        raise UnknownFields(
            f"Salesforce has no field {', '.join(unknown)}; fix app.yaml or the org's field "
            "permissions. Nothing was synced."
        )
