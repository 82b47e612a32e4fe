"""The HubSpot source: partner companies, deals, stage history and partner contacts, synced
incrementally through hubspot-api-client (see `sync.HubSpotSource`)."""

from connectors.hubspot.sync import HubSpotSource

__all__ = ["HubSpotSource"]
