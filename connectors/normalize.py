"""What every connector does the same way at the edge: channels from lead sources, and amounts
converted into the deployment's currency (kpi-spec.md section 1)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kpi.models import Channel, Customer
from settings.kpi import normalize_lead_source

if TYPE_CHECKING:  # (not imported at run time: the files source's reading process stays small)
    from settings.app import AppConfig

#: The counters behind `Normalizer.warnings`, as `counted` names them.
COUNTERS = ("unconvertible", "unknown_channels")


class Normalizer:
    def __init__(self, app: AppConfig) -> None:
        self.currency = app.currency
        self.rates = {code: Decimal(str(rate)) for code, rate in app.currency_rates.items()}
        self.channels = app.lead_source_channels
        self._counters()

    def _counters(self) -> None:
        #: amounts dropped because their currency has no rate, by currency code
        self.unconvertible: Counter[str] = Counter()
        #: values of a CRM's channel field that are no channel, by value
        self.unknown_channels: Counter[str] = Counter()

    def portable(self) -> dict[str, Any]:
        """The settings, as JSON carries them to another process (`from_portable`)."""
        return {
            "currency": self.currency,
            "rates": {code: str(rate) for code, rate in self.rates.items()},
            "channels": {source: channel.value for source, channel in self.channels.items()},
        }

    @classmethod
    def from_portable(cls, settings: dict[str, Any]) -> Normalizer:
        """A normalizer of the settings another one's `portable` gave, with nothing counted."""
        normalizer = cls.__new__(cls)
        normalizer.currency = settings["currency"]
        normalizer.rates = {code: Decimal(rate) for code, rate in settings["rates"].items()}
        normalizer.channels = {
            source: Channel(value) for source, value in settings["channels"].items()
        }
        normalizer._counters()
        return normalizer

    def channel(self, lead_source: str | None, explicit: Channel | None = None) -> Channel:
        """An explicit channel wins; else the lead source's mapping; else `other`."""
        if explicit is not None:
            return explicit
        if not lead_source:
            return Channel.OTHER
        return self.channels.get(normalize_lead_source(lead_source), Channel.OTHER)

    def explicit_channel(self, value: str | None) -> Channel | None:
        """A CRM channel field's value (paid, earned, owned or other, in any case), or None
        when it is empty or another value (counted for the report): the lead source decides."""
        if not value or not value.strip():
            return None
        try:
            return Channel(value.strip().lower())
        except ValueError:
            self.unknown_channels[value.strip()] += 1
            return None

    def amount(self, amount: Decimal | None, currency: str | None) -> Decimal | None:
        """`amount` in the deployment's currency, or None where its currency has no rate."""
        if amount is None:
            return None
        code = (currency or "").strip().upper()
        if not code or code == self.currency:
            return amount
        rate = self.rates.get(code)
        if rate is None:  # see known_currency
            self.unconvertible[code] += 1
            return None
        return amount * rate

    def settings(self, channels: bool) -> str:
        """The settings `amount` reads (and `channel`'s, with `channels`), as text: what a
        record's fingerprint covers besides its cells (`connectors.fingerprints`)."""
        mapped = sorted(self.channels.items()) if channels else None
        return repr((self.currency, sorted(self.rates.items()), mapped))

    def known_currency(self, code: str) -> bool:
        """Whether `amount` converts amounts in `code` (an upper-case code, or empty) without
        counting them as unconvertible."""
        return not code or code == self.currency or code in self.rates

    def counted(self) -> dict[str, dict[str, int]]:
        """What `warnings` tells, as counts by counter (`COUNTERS`) and value: what a read
        added is the difference (`connectors.file_digests` keeps a file's)."""
        return {
            "unconvertible": dict(self.unconvertible),
            "unknown_channels": dict(self.unknown_channels),
        }

    def restore(self, counts: dict[str, dict[str, int]]) -> None:
        """Sets the counts back to what `counted` gave earlier."""
        self._counters()
        self.count(counts)

    def count(self, counts: dict[str, dict[str, int]]) -> None:
        """Adds counts as `counted` gives them: those a skipped file's read added."""
        self.unconvertible.update(counts.get("unconvertible", {}))
        self.unknown_channels.update(counts.get("unknown_channels", {}))

    def warnings(self) -> list[str]:
        found = [
            f"{count} amount(s) in {code} have no rate in currency_rates and count as empty"
            for code, count in sorted(self.unconvertible.items())
        ]
        if self.unknown_channels:
            values = ", ".join(sorted(self.unknown_channels)[:5])
            found.append(
                f"{self.unknown_channels.total()} deal(s) have a channel value that is none of "
                f"paid, earned, owned, other ({values}); their lead source decides"
            )
        return found


def customer_record(
    normalizer: Normalizer, mrr: Decimal | None, currency: str | None, **fields: Any
) -> Customer:
    """A Customer with its MRR as the CRM has it and converted (a ValidationError when a field
    is invalid; the MRR is converted last, so such a record never counts as unconverted)."""
    code = currency.upper() if currency else None
    record = Customer(original_mrr=mrr, currency=code, **fields)
    return record.model_copy(update={"mrr": normalizer.amount(mrr, currency)})


def validation_reason(error: ValidationError) -> str:
    """A record that failed validation, as one reason: `closed_on: a won or lost deal needs …`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
