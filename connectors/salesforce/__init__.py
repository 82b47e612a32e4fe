"""The Salesforce source: partner accounts, opportunities, stage history and partner contacts,
synced incrementally through simple-salesforce (see `sync.SalesforceSource`)."""

from connectors.salesforce.sync import SalesforceSource

__all__ = ["SalesforceSource"]
