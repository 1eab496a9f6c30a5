"""What the reference topic says about donors, sites and recipients: names and kinds for the reports and the
flow picture. Bounded by the number of such entities, never by the number of events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import reference_events as ref
from shared.events.batch_events import Payload


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    name: str
    kind: str
    city: str | None = None
    country: str | None = None
    recipient_id: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    party_id: str
    name: str
    kind: str
    site_id: str | None = None


@dataclass(slots=True)
class ReferenceBook:
    donors: dict[str, Party] = field(default_factory=dict)
    recipients: dict[str, Party] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def apply(self, payload: Payload) -> None:
        name = type(payload).__name__
        self.counts[name] = self.counts.get(name, 0) + 1
        if isinstance(payload, ref.DonorRegistered):
            self.donors[payload.donor_id] = Party(payload.donor_id, payload.name, payload.kind)
        elif isinstance(payload, ref.RecipientRegistered):
            self.recipients[payload.recipient_id] = Party(
                payload.recipient_id, payload.name, payload.kind.value, payload.site_id
            )
        elif isinstance(payload, ref.SiteRegistered):
            self.sites[payload.site_id] = Site(
                payload.site_id, payload.name, payload.kind.value, payload.city, payload.country, payload.recipient_id
            )

    def site_name(self, site_id: str | None) -> str:
        if site_id is None:
            return "-"
        site = self.sites.get(site_id)
        return site.name if site else site_id

    def donor_name(self, donor_id: str) -> str:
        donor = self.donors.get(donor_id)
        return donor.name if donor else donor_id

    def recipient_name(self, recipient_id: str | None) -> str:
        if recipient_id is None:
            return "-"
        recipient = self.recipients.get(recipient_id)
        return recipient.name if recipient else recipient_id

    def recipient_of_site(self, site_id: str) -> str | None:
        site = self.sites.get(site_id)
        if site and site.recipient_id:
            return site.recipient_id
        return next((r.party_id for r in self.recipients.values() if r.site_id == site_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "donors": {k: {"name": v.name, "kind": v.kind} for k, v in sorted(self.donors.items())},
            "recipients": {
                k: {"name": v.name, "kind": v.kind, "site_id": v.site_id} for k, v in sorted(self.recipients.items())
            },
            "sites": {
                k: {"name": v.name, "kind": v.kind, "city": v.city, "recipient_id": v.recipient_id}
                for k, v in sorted(self.sites.items())
            },
            "event_counts": dict(sorted(self.counts.items())),
        }
