"""Registering a tenant's public keys: the one rule, for the API (`PUT /keys`, the operator's
`PUT /tenants/{code}/keys`) and the CLI (`inbeeld tenant replace-keys`).

- First registration (the tenant publishes no live key): allowed.
- The same set again: no change, nothing announced (a connector registers on every start).
- Any other change made with the tenant's token needs a rotation proof
  (`schemas.key_proof`) signed by one of the tenant's currently published signing keys.
  Without one it is refused (`key_replacement_refused`, HTTP 409): nothing changes, the
  refusal is audited and the tenant is alerted with `hub.key_replacement_refused` in its
  inbox, so its real connector logs that another installation holds its credentials.
- The operator may replace a tenant's keys without a proof (a lost keystore, a key that
  leaked): audited with the operator's token id.

Every change is announced to every active tenant with `key.rotated`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit, keys, publisher, registry
from hub.config import Settings
from hub.store.db import Database
from schemas.errors import KeyReplacementRefused
from schemas.events import HubKeyReplacementRefused, KeyRotated
from schemas.key_proof import ProofInvalid, verify_rotation

__all__ = ["Registered", "register_as_tenant", "replace_as_operator"]

log = structlog.get_logger("inbeeld.keys")


@dataclass(frozen=True)
class Registered:
    tenant: str
    keys: list[dict[str, Any]]  # what the directory now publishes
    changed: bool


async def _announce(
    s: AsyncSession, settings: Settings, tenant: str, jwks: list[dict[str, Any]]
) -> tuple[list[tuple[Any, dict[str, int]]], list[str]]:
    tenants = [t.code for t in await registry.list_tenants(s) if t.active]
    data = KeyRotated(tenant=tenant, kids=[k["kid"] for k in jwks]).model_dump()
    about = f"{tenant}:{uuid.uuid4()}"  # every change is news, even back to an old set
    events = []
    for i in range(0, len(tenants), publisher.MAX_RECIPIENTS):
        chunk = tenants[i : i + publisher.MAX_RECIPIENTS]
        event = publisher.hub_event(settings, "key.rotated", data, chunk, about=f"{about}:{i}")
        events.append((event, await publisher.record(s, event)))
    return events, tenants


def _check_proof(body: Mapping[str, Any], before: list[dict[str, Any]]) -> None:
    presented = body["keys"]
    proof = body.get("proof")
    if proof is None:
        raise KeyReplacementRefused(
            "the tenant already has published keys; replacing them needs a rotation proof signed "
            "by a current signing key (a connector with the tenant's keystore sends one), or the "
            "operator (`inbeeld tenant replace-keys`). Is another installation using this tenant's "
            "credentials? Check the connector's `tenant` and keystore.",
            field="proof",
        )
    try:
        verify_rotation(proof, presented, before)
    except ProofInvalid as exc:
        message = f"the rotation proof is not valid: {exc.message}"
        raise KeyReplacementRefused(message, field="proof") from None


async def _apply(
    db: Database,
    settings: Settings,
    tenant: str,
    body: Any,
    *,
    actor: str,
    activity: str,
    check: bool,
) -> Registered:
    records = keys.validate_jwks(body)  # refuse before touching the broker or the store
    async with publisher.HubPublisher.open(settings) as pub:
        events: list[tuple[Any, dict[str, int]]] = []
        try:
            async with db.session() as s, s.begin():
                before = await keys.published(s, tenant)
                jwks, changed = await keys.register(s, tenant, records)
                if changed and before and check:
                    _check_proof(body, before)  # a refusal rolls the change back
                tenants = [tenant]
                if changed:
                    events, tenants = await _announce(s, settings, tenant, jwks)
                if changed or not check:  # every operator action is in the chain, even a no-op
                    outcome = ("registered" if check else "replaced") if changed else "unchanged"
                    await audit.append(
                        s,
                        activity=activity,
                        actor=actor,
                        outcome=outcome,
                        sender=tenant,
                        recipients=tenants,
                        subject_ref=events[0][0].id if events else None,
                    )
        except KeyReplacementRefused as exc:
            await _refused(db, pub, settings, tenant, body, actor, exc)
            raise
        await pub.announce(db, events)
    log.info("keys.registered", tenant=tenant, kids=[k["kid"] for k in jwks], changed=changed, actor=actor)
    return Registered(tenant, jwks, changed)


async def _refused(
    db: Database,
    pub: publisher.HubPublisher,
    settings: Settings,
    tenant: str,
    body: Mapping[str, Any],
    actor: str,
    exc: KeyReplacementRefused,
) -> None:
    """Audit the refusal and tell the tenant, in its own inbox."""
    why: Literal["proof_missing", "proof_invalid"] = (
        "proof_missing" if body.get("proof") is None else "proof_invalid"
    )
    presented = sorted(k["kid"] for k in body["keys"])
    async with db.session() as s, s.begin():
        current = sorted(k["kid"] for k in await keys.published(s, tenant))
        data = HubKeyReplacementRefused(
            tenant=tenant, presented_kids=presented, current_kids=current, reason=why
        ).model_dump()
        alert = publisher.hub_event(
            settings, "hub.key_replacement_refused", data, [tenant], about=f"{tenant}:{uuid.uuid4()}"
        )
        seqs = await publisher.record(s, alert)
        await audit.append(
            s,
            activity="register keys",
            actor=actor,
            outcome=f"refused:{exc.reason}",
            sender=tenant,
            recipients=[tenant],
            subject_ref=alert.id,
        )
    await pub.announce(db, [(alert, seqs)])
    log.warning(
        "keys.replacement_refused",
        tenant=tenant,
        reason=why,
        presented=presented,
        current=current,
        actor=actor,
    )


async def register_as_tenant(db: Database, settings: Settings, tenant: str, body: Any) -> Registered:
    """`PUT /keys` by the tenant itself (module docstring)."""
    return await _apply(
        db, settings, tenant, body, actor=f"api:{tenant}", activity="register keys", check=True
    )


async def replace_as_operator(
    db: Database, settings: Settings, tenant: str, body: Any, *, actor: str
) -> Registered:
    """The operator replaces a tenant's keys without a proof; audited as `replace keys`."""
    async with db.session() as s:
        await registry.get_tenant(s, tenant)  # NotFound before anything else
    return await _apply(db, settings, tenant, body, actor=actor, activity="replace keys", check=False)
