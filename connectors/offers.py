"""Transfer offers this municipality received, kept for the workspace's werkbak: the dossier
encrypted at rest under a fresh data key (like the register), and what was done with it.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

`claim` moves an offer out of `offered` in one conditional update, so a second submit of the
same answer (a double click, two officers at once) finds it taken and does nothing; `release`
puts it back when sending the answer failed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from connectors.at_rest import decrypt_at_rest, encrypt_at_rest, unwrap_data_key, wrap_data_key
from connectors.schema import transfer_offers
from connectors.store import LocalStore
from schemas.errors import NotFound
from schemas.events import TransferOffered

__all__ = ["OFFERED", "Offer", "OfferUnknown", "claim", "dossier", "incoming", "keep", "release"]

OFFERED = "offered"


class OfferUnknown(NotFound):
    reason = "offer_unknown"


@dataclass(frozen=True)
class Offer:
    transfer_id: str
    offerer: str
    received_at: float
    state: str
    answered_by: str | None


def _aad(transfer_id: str) -> bytes:
    return f"transfer_offers:{transfer_id}:dossier".encode()


async def keep(store: LocalStore, event_id: str, offerer: str, payload: TransferOffered) -> None:
    """Keep a received offer (a redelivered one is kept once)."""
    if store.keystore is None:
        raise RuntimeError("keeping transfer offers needs a keystore")
    data_key, wrapped = wrap_data_key(store.keystore)
    body = json.dumps(payload.model_dump(mode="json")).encode()
    c = transfer_offers.c
    async with store.engine.begin() as conn:
        if await conn.scalar(select(c.transfer_id).where(c.transfer_id == payload.transfer_id)):
            return
        await conn.execute(
            insert(transfer_offers).values(
                transfer_id=payload.transfer_id,
                offerer=offerer,
                event_id=event_id,
                received_at=time.time(),
                wrapped_key=wrapped,
                dossier=encrypt_at_rest(data_key, body, _aad(payload.transfer_id)),
                state=OFFERED,
            )
        )


async def incoming(store: LocalStore) -> list[Offer]:
    """Every kept offer, newest first (no dossier: nothing is decrypted)."""
    c = transfer_offers.c
    query = select(c.transfer_id, c.offerer, c.received_at, c.state, c.answered_by).order_by(
        c.received_at.desc()
    )
    async with store.engine.connect() as conn:
        return [Offer(*row) for row in await conn.execute(query)]


async def get(store: LocalStore, transfer_id: str) -> Offer:
    c = transfer_offers.c
    query = select(c.transfer_id, c.offerer, c.received_at, c.state, c.answered_by).where(
        c.transfer_id == transfer_id
    )
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise OfferUnknown("no such transfer offer")
    return Offer(*row)


async def dossier(store: LocalStore, transfer_id: str) -> dict[str, Any]:
    """The decrypted dossier of a kept offer; `OfferUnknown` if there is none."""
    if store.keystore is None:
        raise RuntimeError("opening transfer offers needs a keystore")
    c = transfer_offers.c
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(select(c.wrapped_key, c.dossier).where(c.transfer_id == transfer_id))
        ).first()
    if row is None:
        raise OfferUnknown("no such transfer offer")
    key = unwrap_data_key(store.keystore, row.wrapped_key)
    data: dict[str, Any] = json.loads(decrypt_at_rest(key, row.dossier, _aad(transfer_id)))
    return data


async def claim(store: LocalStore, transfer_id: str, state: str, user: str) -> bool:
    """Move an open offer to `state` for `user`; False if it was not open (answered already)."""
    c = transfer_offers.c
    async with store.engine.begin() as conn:
        result = await conn.execute(
            update(transfer_offers)
            .where(c.transfer_id == transfer_id, c.state == OFFERED)
            .values(state=state, answered_by=user, answered_at=time.time())
        )
    return bool(result.rowcount)


async def release(store: LocalStore, transfer_id: str) -> None:
    """Open an offer again after its answer could not be sent."""
    async with store.engine.begin() as conn:
        await conn.execute(
            update(transfer_offers)
            .where(transfer_offers.c.transfer_id == transfer_id)
            .values(state=OFFERED, answered_by=None, answered_at=None)
        )
