"""The connector's view of the hub's key directory and groups, over the hub's HTTP API.

    directory = Directory("https://hub.example", token)          # a tenant API token
    await directory.register(keystore.public_jwks(),              # PUT /keys, with a rotation
                             tenant="GM0518", signers=keystore.signing_keys())  # proof
    await directory.encryption_keys("GM0599")                     # whom to seal to
    await directory.signing_keys("GM0518")                        # whose signature to trust
    await directory.group_members("zuid-holland")
    directory.on_key_rotated(event)                               # drop a stale copy at once

Answers are cached for `ttl` seconds; `refresh=True` (or a `key.rotated` event) fetches
again. Everything here is public key material and tenant codes: nothing secret, nothing
personal. Errors: `schemas.errors.NotFound` for an unknown tenant, OIN or group,
`KeyReplacementRefused` when the hub keeps the tenant's current keys (a new key set without
a valid rotation proof: another keystore than the one registered), `DirectoryError` when
the hub cannot be asked or answers otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from schemas import nesting
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, NotFound, TooDeep
from schemas.key_proof import sign_rotation
from schemas.names import KEY_ROTATED

__all__ = ["DEFAULT_TTL", "Directory", "DirectoryError", "KeyReplacementRefused"]

DEFAULT_TTL = 300.0
_ENCRYPT_TO = ("primary", "pending")  # retired keys only decrypt what was sealed before


class DirectoryError(InbeeldError):
    reason = "directory_error"


class KeyReplacementRefused(DirectoryError):
    """The hub refused to replace the tenant's published keys (HTTP 409)."""

    reason = "key_replacement_refused"


class Directory:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.ttl = ttl
        self._clock = clock
        self._jwks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._oins: dict[str, str] = {}
        self._groups: tuple[float, dict[str, list[str]]] | None = None

    async def __aenter__(self) -> Directory:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- HTTP ---------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise DirectoryError(f"cannot reach the hub's directory ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise NotFound(_detail(response))
        if response.status_code == 409 and _reason(response) == KeyReplacementRefused.reason:
            raise KeyReplacementRefused(
                "the hub refused to replace this tenant's keys (key_replacement_refused): "
                + _detail(response),
                field="keys",
            )
        if response.status_code >= 400:
            status = response.status_code
            raise DirectoryError(f"the hub refused {method} {path}: {status} {_detail(response)}")
        try:
            return nesting.loads(response.content, what="the hub's answer")
        except ValueError:
            raise DirectoryError(f"the hub's answer to {method} {path} is not JSON") from None

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp <= self.ttl

    # -- keys ---------------------------------------------------------------------------------

    async def keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The tenant's published public JWKs (every use and status)."""
        entry = self._jwks.get(tenant)
        if refresh or entry is None or not self._fresh(entry[0]):
            body = await self._call("GET", f"/tenants/{tenant}/keys")
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
            body = await self._call("GET", f"/tenants/by-oin/{oin}/keys")
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
        `KeyReplacementRefused` or `DirectoryError` naming the problem if the hub refuses it."""
        payload = dict(jwks)
        if tenant is not None and signers:
            try:
                known = {k.get("kid") for k in await self.signing_keys(tenant, refresh=True)}
            except NotFound:  # not a tenant the hub knows: the hub will say so on PUT
                known = set()
            signer = next((k for k in signers if k.get("kid") in known), None)
            if signer is not None:
                payload["proof"] = sign_rotation(jwks, signer)
        body: dict[str, Any] = await self._call("PUT", "/keys", json=payload)
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
            body = await self._call("GET", "/groups")
            self._groups = (self._clock(), {str(k): list(v) for k, v in body.items()})
        return self._groups[1]

    async def group_members(self, name: str, *, refresh: bool = False) -> list[str]:
        members = (await self.groups(refresh=refresh)).get(name)
        if members is None and not refresh:
            members = (await self.groups(refresh=True)).get(name)
        if members is None:
            raise NotFound(f"there is no group {name}")
        return members


def _reason(response: httpx.Response) -> str | None:
    try:
        body = nesting.loads(response.content)
    except (ValueError, TooDeep):
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None


def _detail(response: httpx.Response) -> str:
    try:
        body = nesting.loads(response.content)
    except (ValueError, TooDeep):
        return response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail")
        return str(detail)[:500] if detail is not None else response.reason_phrase
    return response.reason_phrase
