"""A regional bureau's workspace: the municipalities it acts for, and their transfers.

A bureau is a tenant of its own whose members are the registry group `bureau-<code>` (the
hub's `hub.workflows.transfers.bureau_group`; the connector reads it from the directory, as
any group). The hub lists the members' transfers to the bureau and lets it answer or close
them for a member; the dossier of an offer to a member is sealed to the member's keys, so
the bureau's workspace cannot open it and says so. Acting for a member needs the role
`bureau_officer` (`Account.may_act_for_members`)."""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from connectors.schema import state
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from schemas.errors import InbeeldError

__all__ = ["GROUP_PREFIX", "claim_answer", "members", "release_answer"]

log = structlog.get_logger("inbeeld.connector.workspace")
GROUP_PREFIX = "bureau-"  # the hub's name for the group of a bureau's members


async def members(services: ConnectorServices) -> frozenset[str]:
    """The municipalities this tenant acts for as a regional bureau (none for any other)."""
    if services.directory is None:
        return frozenset()
    try:
        groups: dict[str, Any] = await services.directory.groups()
    except (InbeeldError, OSError) as exc:
        log.warning("workspace.hub_unavailable", error=type(exc).__name__)
        return frozenset()
    return frozenset(groups.get(GROUP_PREFIX + services.config.tenant.lower(), []))


def _key(transfer_id: str) -> str:
    return "member_answer:" + hashlib.sha256(transfer_id.encode()).hexdigest()[:48]


async def claim_answer(store: LocalStore, transfer_id: str) -> bool:
    """Claim the one answer this workspace gives for a member's offer: False if it was given."""
    try:
        async with store.engine.begin() as conn:
            await conn.execute(insert(state).values(key=_key(transfer_id), value="answered"))
    except IntegrityError:
        return False
    return True


async def release_answer(store: LocalStore, transfer_id: str) -> None:
    """The answer could not be sent: the offer may be answered again."""
    async with store.engine.begin() as conn:
        await conn.execute(delete(state).where(state.c.key == _key(transfer_id)))
