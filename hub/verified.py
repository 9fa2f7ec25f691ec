"""An event the router has verified: what a workflow is given instead of the raw message.

The router verifies each event once (`hub.keys.KeyCache.check`): the envelope it arrived in,
the sender tenant the broker vouched for, and what the hub may know of its `data`:

- a plain (`none`) or signed event: its payload, validated against its schema — for a signed
  one, the very JSON the sender signed (the JWS is taken apart in `schemas.sealed` only);
- a sealed event: `Sealed`, the marker for a payload encrypted to its recipients that the
  hub cannot read (it knows only which recipient keys it is sealed to).

A workflow reads the payload with `payload_as(Model)` and never decodes `data` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from schemas.envelope import CloudEvent
from schemas.events import Payload

__all__ = ["Sealed", "VerifiedEvent"]

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True, slots=True)
class Sealed:
    """The payload of a sealed event: a JWE the hub cannot open."""

    recipient_kids: tuple[str, ...]  # the recipient key ids it is encrypted to


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """One event as verified by the router: envelope, sender and (readable) payload."""

    event: CloudEvent
    sender: str  # the sender's tenant code (from the broker-validated user)
    payload: Payload | Sealed
    signer_kid: str | None = None  # the key that signed it (signed and sealed events)

    @property
    def sealed(self) -> bool:
        return isinstance(self.payload, Sealed)

    def payload_as(self, model: type[P]) -> P:
        """The validated payload as `model`; a `TypeError` (a bug, not a refusal) when this
        event does not carry one (a sealed event, or another type)."""
        if not isinstance(self.payload, model):
            raise TypeError(f"{self.event.short_type} carries no readable {model.__name__} payload")
        return self.payload
