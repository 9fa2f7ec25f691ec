"""Group keys for neighbour notices' blind indexes (DESIGN section 6), kept by the connector.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

A group's members share a 256-bit HMAC key; the hub never sees it. Lifecycle:

- **create**: a member that wants to ask the group and holds no current key for it makes one
  (`schemas.blind_index.new_group_key`) and sends `nl.leerplicht.group.key_shared` once,
  addressed to every other member by tenant code and sealed (one JWE, one recipient entry
  per recipient key) — so only members can read it.
- **receive**: a member accepts a shared key only if the sender and itself are both members
  of the named group *now* (asked of the hub's `/groups`, not taken from the event); the
  newest key of a group becomes its current key, older ones are retired.
- **rotate**: the hub announces no membership changes as events, so before every use
  (`ensure`) the connector compares the group's members in `/groups` (fetched fresh) with
  the members the current key was shared with. Any difference — a member left, or joined —
  makes a new key, shared with the members of now. A member that left never gets it, so it
  cannot compute the index of any later notice; a member that joined gets the new key only,
  so it cannot match notices sent before it joined.
- **retire/purge**: retired keys still match notices sent under them until those expire;
  `purge(older_than)` deletes keys retired longer ago than the longest notice lifetime.

At rest the key material lives in the connector's local store, encrypted under a data key
wrapped by the keystore's at-rest secret (`connectors.at_rest`): shredding that secret
(or the keystore) makes the group keys unreadable too — and so every index ever made with
them unmatchable. A key that can no longer be unwrapped is treated as absent; `ensure`
then makes a fresh one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors.at_rest import decrypt_at_rest, encrypt_at_rest, unwrap_data_key, wrap_data_key
from connectors.client import Connector, EventSealer
from connectors.schema import group_keys
from connectors.store import LocalStore
from schemas.blind_index import GROUP_KEY_BYTES, new_group_key
from schemas.envelope import CloudEvent
from schemas.errors import CryptoError, InbeeldError, NotFound
from schemas.events import GroupKeyShared
from schemas.sealed import jwk_thumbprint

__all__ = ["KEY_SHARED", "GroupKey", "GroupKeyring", "Groups"]

log = structlog.get_logger("inbeeld.connector.group_keys")

KEY_SHARED = "nl.leerplicht.group.key_shared"


class Groups(Protocol):
    """Who is in a group, as the hub says (`connectors.directory.Directory`)."""

    async def group_members(self, name: str, *, refresh: bool = False) -> list[str]: ...


@dataclass(frozen=True)
class GroupKey:
    group: str
    key_id: str
    key: bytes  # secret: never log
    creator: str
    members: tuple[str, ...]
    created_at: float
    retired_at: float | None = None

    def __repr__(self) -> str:
        return f"GroupKey(group={self.group!r}, key_id={self.key_id!r}, members={self.members!r})"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(group: str, key_id: str) -> bytes:
    return f"group_keys:{group}:{key_id}".encode()


class GroupKeyring:
    """The group keys of one tenant, in its local store."""

    def __init__(
        self,
        store: LocalStore,
        tenant: str,
        groups: Groups,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if store.keystore is None:
            raise InbeeldError("group keys need the keystore (they are encrypted at rest)")
        self.store = store
        self.tenant = tenant
        self.groups = groups
        self.clock = clock

    # -- reading ------------------------------------------------------------------------------

    def _load(self, row: Any) -> GroupKey | None:
        assert self.store.keystore is not None
        try:
            data_key = unwrap_data_key(self.store.keystore, row.wrapped_key)
            key = decrypt_at_rest(data_key, row.key_blob, _aad(row.group_name, row.key_id))
        except CryptoError:
            return None  # its at-rest secret was shredded: as good as gone
        return GroupKey(
            row.group_name,
            row.key_id,
            key,
            row.creator,
            tuple(json.loads(row.members)),
            row.created_at,
            row.retired_at,
        )

    async def keys(self, group: str | None = None) -> list[GroupKey]:
        """Every readable key (of `group`), newest first."""
        q = select(group_keys).order_by(group_keys.c.created_at.desc())
        if group is not None:
            q = q.where(group_keys.c.group_name == group)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [k for k in (self._load(r) for r in rows) if k is not None]

    async def by_id(self, key_id: str) -> GroupKey | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(group_keys).where(group_keys.c.key_id == key_id))).first()
        return self._load(row) if row is not None else None

    async def current(self, group: str) -> GroupKey | None:
        for key in await self.keys(group):
            if key.retired_at is None:
                return key
        return None

    # -- writing ------------------------------------------------------------------------------

    async def _save(self, key: GroupKey) -> None:
        """Store `key` as the group's current key; retire the others."""
        assert self.store.keystore is not None
        data_key, wrapped = wrap_data_key(self.store.keystore)
        blob = encrypt_at_rest(data_key, key.key, _aad(key.group, key.key_id))
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(group_keys)
                .where(
                    group_keys.c.group_name == key.group,
                    group_keys.c.key_id != key.key_id,
                    group_keys.c.retired_at.is_(None),
                )
                .values(retired_at=key.created_at)
            )
            stmt = sqlite_insert(group_keys).values(
                group_name=key.group,
                key_id=key.key_id,
                creator=key.creator,
                members=json.dumps(sorted(key.members)),
                key_blob=blob,
                wrapped_key=wrapped,
                created_at=key.created_at,
                retired_at=None,
            )
            await conn.execute(stmt.on_conflict_do_nothing())

    async def members(self, group: str) -> list[str]:
        """The group's members now (fresh from the hub); `NotFound` if it has no such group."""
        return sorted(await self.groups.group_members(group, refresh=True))

    async def ensure(self, group: str, connector: Connector, sealer: EventSealer | None) -> GroupKey:
        """The key to use for `group` now: the current one, or a new one (shared with the
        other members) if there is none or the membership changed since it was shared."""
        members = await self.members(group)
        if self.tenant not in members:
            raise NotFound(f"{self.tenant} is not a member of group {group}")
        current = await self.current(group)
        if current is not None and sorted(current.members) == members:
            return current
        if current is not None:
            log.info("group_key.rotate", group=group, key_id=current.key_id)
        return await self.rotate(group, connector, sealer, members=members)

    async def rotate(
        self,
        group: str,
        connector: Connector,
        sealer: EventSealer | None,
        *,
        members: Sequence[str] | None = None,
    ) -> GroupKey:
        """Make a new key for `group` and share it with its other members."""
        members = sorted(members if members is not None else await self.members(group))
        key_id, raw = new_group_key()
        key = GroupKey(group, key_id, raw, self.tenant, tuple(members), self.clock())
        others = [m for m in members if m != self.tenant]
        if others:
            payload = GroupKeyShared(group=group, key_id=key_id, key=_b64(raw))
            event = connector.event(KEY_SHARED, payload.model_dump(mode="json"), others)
            await send(connector, sealer, event)
        await self._save(key)
        log.info("group_key.created", group=group, key_id=key_id, shared_with=others)
        return key

    async def receive(self, sender: str, event: CloudEvent, payload: GroupKeyShared) -> GroupKey | None:
        """Store a key another member shared, if the hub confirms both of us are members."""
        try:
            members = await self.members(payload.group)
        except NotFound:
            members = []
        if sender not in members or self.tenant not in members:
            log.warning("group_key.refused", group=payload.group, sender=sender, reason="not both members")
            return None
        raw = _unb64(payload.key)
        if len(raw) < GROUP_KEY_BYTES or jwk_thumbprint({"kty": "oct", "k": _b64(raw)}) != payload.key_id:
            log.warning("group_key.refused", group=payload.group, sender=sender, reason="key id mismatch")
            return None
        holders = sorted({sender, *(r for r in event.recipients if not r.startswith("group:"))})
        key = GroupKey(payload.group, payload.key_id, raw, sender, tuple(holders), self.clock())
        known = await self.by_id(payload.key_id)
        if known is None:
            await self._save(key)
            log.info("group_key.received", group=payload.group, key_id=payload.key_id, sender=sender)
        return key

    async def purge(self, older_than: float) -> int:
        """Delete keys retired more than `older_than` seconds ago (their notices have expired)."""
        limit = self.clock() - older_than
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                group_keys.delete().where(
                    group_keys.c.retired_at.is_not(None), group_keys.c.retired_at < limit
                )
            )
        return int(result.rowcount or 0)


async def send(connector: Connector, sealer: EventSealer | None, event: CloudEvent) -> CloudEvent:
    """Publish `event`, sealed or signed by `sealer` unless the connector seals by itself."""
    if connector.sealer is None:
        if sealer is None:
            raise InbeeldError(f"{event.type} must be sealed or signed: give a sealer")
        event = await sealer.seal(event)
    return await connector.publish(event)
