"""The connector's view of the hub's key directory and groups, over the hub's HTTP API.

    directory = Directory(HubApi("https://hub.example", token))   # a tenant API token
    await directory.register(keystore.public_jwks(),              # PUT /keys, with a rotation
                             tenant="GM0518", signers=keystore.signing_keys())  # proof
    await directory.encryption_keys("GM0599")                     # whom to seal to
    await directory.signing_keys("GM0518")                        # whose signature to trust
    await directory.group_members("zuid-holland")
    directory.on_key_rotated(event)                               # drop a stale copy at once

Answers are cached for `ttl` seconds; `refresh=True` (or a `key.rotated` event) fetches
again. Everything here is public key material and tenant codes: nothing secret, nothing
personal. Errors: `schemas.errors.NotFound` for an unknown tenant, OIN or group,
`schemas.errors.KeyReplacementRefused` when the hub keeps the tenant's current keys (a new
key set without a valid rotation proof: another keystore than the one registered),
`connectors.hub_api.HubApiError` when the hub cannot be asked or answers otherwise (see
`connectors.hub_api` for the whole mapping). The `HubApi` is the caller's to close.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.hub_api import HubApi
from schemas.envelope import CloudEvent
from schemas.errors import KeyReplacementRefused, NotFound
from schemas.key_proof import sign_rotation
from schemas.names import KEY_ROTATED

__all__ = ["DEFAULT_TTL", "Directory"]

DEFAULT_TTL = 300.0
_ENCRYPT_TO = ("primary", "pending")  # retired keys only decrypt what was sealed before


class Directory:
    def __init__(
        self, api: HubApi, *, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.ttl = ttl
        self._clock = clock
        self._jwks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._oins: dict[str, str] = {}
        self._groups: tuple[float, dict[str, list[str]]] | None = None

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp <= self.ttl

    # -- keys ---------------------------------------------------------------------------------

    async def keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The tenant's published public JWKs (every use and status)."""
        entry = self._jwks.get(tenant)
        if refresh or entry is None or not self._fresh(entry[0]):
            body = await self.api.get(f"/tenants/{tenant}/keys")
            entry = (self._clock(), list(body["keys"]))
            self._jwks[tenant] = entry
        return entry[1]

    async def signing_keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Ed25519 keys whose signatures are the tenant's (primary, pending and retired)."""
        return [k for k in await self.keys(tenant, refresh=refresh) if k.get("use") == "sig"]

    async def encryption_keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """X25519 keys to seal to: the primary and any pending one (not retired ones)."""
        return [
            k
            for k in await self.keys(tenant, refresh=refresh)
            if k.get("use") == "enc" and k.get("status", "primary") in _ENCRYPT_TO
        ]

    async def tenant_for_oin(self, oin: str) -> str:
        """The tenant code of an OIN (as used in `urn:nld:oin:<OIN>:...` sources)."""
        if oin not in self._oins:
            body = await self.api.get(f"/tenants/by-oin/{oin}/keys")
            self._oins[oin] = body["tenant"]
            self._jwks[body["tenant"]] = (self._clock(), list(body["keys"]))
        return self._oins[oin]

    async def register(
        self,
        jwks: Mapping[str, Any],
        *,
        tenant: str | None = None,
        signers: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Publish our own public JWK Set (e.g. `Keystore.public_jwks()`); returns what the hub
        now publishes. With `tenant` and `signers` (`Keystore.signing_keys()`) the set goes
        with a rotation proof signed by the first signer the hub publishes for `tenant`, which
        the hub needs for any change once keys are registered. Raises
        `KeyReplacementRefused` or another refusal (`connectors.hub_api`) naming the problem
        if the hub refuses it."""
        payload = dict(jwks)
        if tenant is not None and signers:
            try:
                known = {k.get("kid") for k in await self.signing_keys(tenant, refresh=True)}
            except NotFound:  # not a tenant the hub knows: the hub will say so on PUT
                known = set()
            signer = next((k for k in signers if k.get("kid") in known), None)
            if signer is not None:
                payload["proof"] = sign_rotation(jwks, signer)
        try:
            body: dict[str, Any] = await self.api.put("/keys", payload)
        except KeyReplacementRefused as exc:  # say what was refused, not only the hub's why
            raise KeyReplacementRefused(
                f"the hub refused to replace this tenant's keys ({exc.reason}): {exc.message}",
                field=exc.field,
            ) from None
        self._jwks[body["tenant"]] = (self._clock(), list(body["keys"]))
        return body

    def invalidate(self, tenant: str | None = None) -> None:
        """Forget the cached keys of `tenant` (all tenants, and the groups, if None)."""
        if tenant is None:
            self._jwks.clear()
            self._groups = None
        else:
            self._jwks.pop(tenant, None)

    def on_key_rotated(self, event: CloudEvent) -> None:
        """Feed every `key.rotated` from the inbox here; other events are ignored."""
        if event.type == KEY_ROTATED and isinstance(event.data, Mapping):
            tenant = event.data.get("tenant")
            if isinstance(tenant, str):
                self.invalidate(tenant)

    # -- groups -------------------------------------------------------------------------------

    async def groups(self, *, refresh: bool = False) -> dict[str, list[str]]:
        if refresh or self._groups is None or not self._fresh(self._groups[0]):
            body = await self.api.get("/groups")
            self._groups = (self._clock(), {str(k): list(v) for k, v in body.items()})
        return self._groups[1]

    async def group_members(self, name: str, *, refresh: bool = False) -> list[str]:
        members = (await self.groups(refresh=refresh)).get(name)
        if members is None and not refresh:
            members = (await self.groups(refresh=True)).get(name)
        if members is None:
            raise NotFound(f"there is no group {name}")
        return members
