"""Templates at the hub (DESIGN section 2): subscriptions, the fan-out, and the catalogue.

    template.published   publisher -> group:subscribers (+ any explicit tenants or groups)
    template.withdrawn   publisher -> group:subscribers (+ ...)

Addressing: `group:subscribers` (`hub.routing.SUBSCRIBERS`) is reserved for `template.*`;
`check` replaces it with the sender's current subscribers — every active tenant following
that publisher or `*` — so a publisher need not know who follows it. Explicit tenants and
groups are still allowed and added (`hub.routing` has authorised them).

Catalogue: template id, version, publisher, title, languages, a digest of the signed bundle,
published / withdrawn times — never the text (the connectors keep that). The router has
verified the signature and validated the bundle before this runs (`VerifiedEvent.payload`),
so the payload is the publisher's. Refused:
- a bundle whose `publisher` is not the sender (not_authorised): nobody publishes in
  someone else's name; the connectors check the same thing themselves;
- a template id another publisher already uses (not_authorised);
- the same id@version again with other content, or a withdrawn version again
  (invalid_transition); the same content again is routed (a resend for new subscribers);
- withdrawing a version that was never published or is already withdrawn (invalid_transition).

Subscriptions: `subscribe` / `unsubscribe` / `subscriptions_of` / `subscribers_of` serve
the API (`hub.api.routes.templates`); `hub.seed.seed_subscriptions` makes every municipality
and regional bureau follow `ingrado`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit
from hub.routing import SUBSCRIBERS
from hub.store.models import PublishedTemplate, Subscription, Tenant, utcnow
from hub.tenants import TenantInfo
from hub.verified import VerifiedEvent
from schemas.envelope import CloudEvent
from schemas.errors import InvalidTransition, NotAuthorised, NotFound
from schemas.events import TemplatePublished, TemplateWithdrawn

__all__ = [
    "ALL_PUBLISHERS",
    "TemplateWorkflow",
    "bundle_digest",
    "catalogue",
    "subscribe",
    "subscribers_of",
    "subscriptions_of",
    "unsubscribe",
]

ALL_PUBLISHERS = "*"
PUBLISHED, WITHDRAWN = "template.published", "template.withdrawn"
ACTOR = "hub-templates"


def bundle_digest(bundle: TemplatePublished) -> str:
    """SHA-256 of the bundle's canonical JSON: equal content, equal digest."""
    canonical = json.dumps(bundle.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- subscriptions ------------------------------------------------------------------------------


async def _tenant(s: AsyncSession, code: str) -> Tenant:
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    return tenant


async def subscribe(s: AsyncSession, tenant: str, publisher: str) -> bool:
    """`tenant` follows `publisher` (a tenant code, or `*`). True if it was new."""
    await _tenant(s, tenant)
    if publisher != ALL_PUBLISHERS:
        await _tenant(s, publisher)
        if publisher == tenant:
            raise NotAuthorised("a tenant does not subscribe to itself", field="publisher")
    if await s.get(Subscription, (tenant, publisher)) is not None:
        return False
    row = {"tenant_code": tenant, "publisher": publisher, "created_at": utcnow()}
    try:
        # A concurrent request may add the same row first: then it is simply not new. PostgreSQL
        # aborts the transaction on a failed statement, so there it runs in a savepoint.
        if s.get_bind().dialect.name == "sqlite":
            await s.execute(insert(Subscription), [row])
        else:
            async with s.begin_nested():
                await s.execute(insert(Subscription), [row])
    except IntegrityError:
        return False
    return True


async def unsubscribe(s: AsyncSession, tenant: str, publisher: str) -> bool:
    """True if there was such a subscription."""
    result = await s.execute(
        delete(Subscription).where(Subscription.tenant_code == tenant, Subscription.publisher == publisher)
    )
    return bool(getattr(result, "rowcount", 0))


async def subscriptions_of(s: AsyncSession, tenant: str) -> list[str]:
    q = select(Subscription.publisher).where(Subscription.tenant_code == tenant)
    rows = await s.scalars(q.order_by(Subscription.publisher))
    return list(rows)


async def subscribers_of(s: AsyncSession, publisher: str) -> list[str]:
    """Active tenants following `publisher` or every publisher (never the publisher itself)."""
    rows = await s.scalars(
        select(Subscription.tenant_code)
        .join(Tenant, Tenant.code == Subscription.tenant_code)
        .where(
            or_(Subscription.publisher == publisher, Subscription.publisher == ALL_PUBLISHERS),
            Tenant.active.is_(True),
            Subscription.tenant_code != publisher,
        )
    )
    return sorted(set(rows))


async def catalogue(
    s: AsyncSession, *, publisher: str | None = None, include_withdrawn: bool = True
) -> list[PublishedTemplate]:
    q = select(PublishedTemplate).order_by(
        PublishedTemplate.publisher, PublishedTemplate.template_id, PublishedTemplate.published_at
    )
    if publisher is not None:
        q = q.where(PublishedTemplate.publisher == publisher)
    if not include_withdrawn:
        q = q.where(PublishedTemplate.withdrawn_at.is_(None))
    return list(await s.scalars(q))


# -- the workflow -------------------------------------------------------------------------------


class TemplateWorkflow:
    prefixes: tuple[str, ...] = ("template.",)

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        event = verified.event
        if event.short_type == PUBLISHED:
            await self._check_published(s, sender, verified)
        else:
            await self._check_withdrawn(s, sender, verified)
        out = dict.fromkeys(recipients)
        if SUBSCRIBERS in event.recipients:
            out.update(dict.fromkeys(await subscribers_of(s, sender.code)))
        out.pop(sender.code, None)
        return sorted(out)

    async def _owner(self, s: AsyncSession, template_id: str) -> str | None:
        return await s.scalar(
            select(PublishedTemplate.publisher).where(PublishedTemplate.template_id == template_id).limit(1)
        )

    async def _check_published(self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent) -> None:
        event, bundle = verified.event, verified.payload_as(TemplatePublished)
        if bundle.publisher != sender.code:
            raise NotAuthorised(
                f"{sender.code} may not publish a template in the name of {bundle.publisher}",
                field="data.publisher",
            )
        owner = await self._owner(s, bundle.template_id)
        if owner is not None and owner != sender.code:
            raise NotAuthorised(f"template {bundle.template_id} belongs to {owner}", field="data.template_id")
        known = await s.get(PublishedTemplate, (bundle.template_id, bundle.version))
        if known is None:
            return
        ref = f"{bundle.template_id}@{bundle.version}"
        if known.digest != bundle_digest(bundle):
            raise InvalidTransition(
                f"{ref} was published with other content; publish a new version", field="data.version"
            )
        if known.withdrawn_at is not None and known.withdraw_event_id != event.id:
            raise InvalidTransition(f"{ref} was withdrawn; publish a new version", field="data.version")

    async def _check_withdrawn(self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent) -> None:
        event, w = verified.event, verified.payload_as(TemplateWithdrawn)
        ref = f"{w.template_id}@{w.version}"
        known = await s.get(PublishedTemplate, (w.template_id, w.version))
        if known is None:
            raise InvalidTransition(f"{ref} was never published", field="data.version")
        if known.publisher != sender.code:
            raise NotAuthorised(f"only {known.publisher} withdraws {ref}", field="data.template_id")
        if known.withdrawn_at is not None and known.withdraw_event_id != event.id:
            raise InvalidTransition(f"{ref} is already withdrawn", field="data.version")

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None:
        event, now = verified.event, utcnow()
        if event.short_type == PUBLISHED:
            bundle = verified.payload_as(TemplatePublished)
            ref = f"{bundle.template_id}@{bundle.version}"
            if await s.get(PublishedTemplate, (bundle.template_id, bundle.version)) is not None:
                return  # a resend of the same content
            s.add(
                PublishedTemplate(
                    template_id=bundle.template_id,
                    version=bundle.version,
                    publisher=sender.code,
                    title=bundle.title,
                    languages=sorted(bundle.languages),
                    digest=bundle_digest(bundle),
                    event_id=event.id,
                    published_at=now,
                )
            )
            outcome = "published"
        else:
            w = verified.payload_as(TemplateWithdrawn)
            ref = f"{w.template_id}@{w.version}"
            known = await s.get(PublishedTemplate, (w.template_id, w.version))
            if known is None or known.withdrawn_at is not None:
                return
            known.withdrawn_at, known.withdraw_reason, known.withdraw_event_id = now, w.reason, event.id
            outcome = "withdrawn"
        await audit.append(
            s,
            activity=f"template {outcome}"[:64],
            actor=ACTOR,
            outcome=outcome,
            sender=sender.code,
            recipients=list(recipients),
            subject_ref=ref[:100],
            traceparent=event.traceparent,
        )
        await s.flush()

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]:
        return []
