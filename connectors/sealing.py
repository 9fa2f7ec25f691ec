"""Sealing outgoing events and opening incoming ones, per the type's protection (DESIGN 3, 6).

    sealer = Sealer(keystore, directory, "GM0518")
    event = await sealer.seal(connector.event("nl.leerplicht.transfer.offered", dossier, ["GM0599"]))
    await connector.publish(event)
    ...
    payload = await sealer.open(message.event)      # a validated `schemas.events.Payload`

`seal(event)` validates `event.data` against the type's payload model first (so nothing
invalid is ever signed), then replaces it with the JOSE object of `schemas.sealed`:
- `sealed`: encrypted to every current key (primary and pending) of every recipient —
  `group:<name>` expanded through the directory, the sender left out — then signed with
  the keystore's primary signing key; the envelope (id, type, source, recipients, and
  subject and correlationid when set) is bound in both protected headers, so seal the event
  exactly as it will be published.
- `signed`: signed only. `none`: returned unchanged (after validation).

`open(event)` finds the sender (the CBS code in `urn:nld:cbs:<code>:...`, or the tenant of
the OIN in `urn:nld:oin:<OIN>:...` via the directory), verifies the signature with the
sender's published keys (fetching them again once if the signing key is new), checks the
binding to this envelope, decrypts with the keystore's encryption keys, and validates the
payload. Raises `BadSignature` (not the sender's key, or re-addressed / replayed under
another envelope), `CryptoError` (malformed, not for us, or our keys are gone — e.g. the
keystore was destroyed), `SchemaInvalid` / `UnknownType` (the content breaks the contract).
Error messages never contain plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.directory import Directory
from connectors.keystore import Keystore
from schemas import sealed
from schemas.envelope import CloudEvent
from schemas.errors import BadSignature, CryptoError, SchemaInvalid
from schemas.events import Payload, spec_for
from schemas.names import GROUP_PREFIX
from schemas.validation import validate_payload

__all__ = ["Sealer"]


def _plain(data: Any) -> Any:
    return data.model_dump(mode="json") if isinstance(data, Payload) else data


class Sealer:
    def __init__(self, keystore: Keystore, directory: Directory, tenant_code: str) -> None:
        self.keystore = keystore
        self.directory = directory
        self.tenant_code = tenant_code

    # -- outgoing -----------------------------------------------------------------------------

    async def seal(self, event: CloudEvent) -> CloudEvent:
        spec = spec_for(event.type)
        payload = validate_payload(event.type, _plain(event.data))
        content = payload.model_dump(mode="json")
        if spec.protection == "none":
            return event
        envelope = sealed.EnvelopeBinding.from_event(event)
        signer = self.keystore.signing_key()
        if spec.protection == "signed":
            return event.model_copy(update={"data": sealed.sign(content, envelope=envelope, signer=signer)})
        keys = {code: await self._encryption_keys(code) for code in await self.recipients_of(event)}
        jose = sealed.seal(content, envelope=envelope, recipients=keys, signer=signer)
        return event.model_copy(update={"data": jose})

    async def recipients_of(self, event: CloudEvent) -> list[str]:
        """The tenants `event` addresses (groups expanded), without ourselves."""
        out: dict[str, None] = {}
        for address in event.recipients:
            if address.startswith(GROUP_PREFIX):
                members = await self.directory.group_members(address.removeprefix(GROUP_PREFIX))
            else:
                members = [address]
            out.update((m, None) for m in members if m != self.tenant_code)
        if not out:
            raise CryptoError("the event addresses nobody but its sender")
        return list(out)

    async def _encryption_keys(self, code: str) -> list[dict[str, Any]]:
        keys = await self.directory.encryption_keys(code)
        if not keys:
            keys = await self.directory.encryption_keys(code, refresh=True)
        if not keys:
            raise CryptoError(f"{code} has published no encryption key")
        return keys

    # -- incoming -----------------------------------------------------------------------------

    async def sender_of(self, event: CloudEvent) -> str:
        kind, value = event.source_party
        return value if kind == "cbs" else await self.directory.tenant_for_oin(value)

    async def open(self, event: CloudEvent) -> Payload:
        spec = spec_for(event.type)
        if spec.protection == "none":
            return validate_payload(event.type, event.data)
        sender = await self.sender_of(event)
        envelope = sealed.EnvelopeBinding.from_event(event)
        verified, sender_keys = await self._verify(event, sender, envelope)
        if spec.protection == "signed":
            if verified.encrypted:
                raise SchemaInvalid(f"{spec.short_type} must be signed, not sealed", field="data")
            return validate_payload(event.type, verified.payload)
        if not verified.encrypted:
            raise SchemaInvalid(
                f"{spec.short_type} carries personal data and must be sealed, not only signed", field="data"
            )
        plaintext = sealed.open_(
            event.data,
            envelope=envelope,
            sender_keys=sender_keys,
            my_private_keys=self.keystore.encryption_private_keys(),
        )
        if not isinstance(plaintext, Mapping):
            raise SchemaInvalid(f"{spec.short_type} payload must be a JSON object", field="data")
        return validate_payload(event.type, plaintext)

    async def _verify(
        self, event: CloudEvent, sender: str, envelope: sealed.EnvelopeBinding
    ) -> tuple[sealed.VerifiedObject, list[dict[str, Any]]]:
        if not isinstance(event.data, Mapping):
            raise BadSignature("the data is not a signed object", field="data")
        for refresh in (False, True):
            keys = await self.directory.signing_keys(sender, refresh=refresh)
            try:
                return sealed.verify(event.data, envelope=envelope, sender_keys=keys), keys
            except BadSignature:
                if refresh:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
