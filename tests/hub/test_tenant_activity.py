"""The tenants page's traffic and keys per tenant (hub.tenant_activity) on each store backend:
last sent and received, the oldest message waiting found from the inbox's sequence numbers,
the keys in use and their first expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hub import tenant_activity
from hub.seed import seed_all
from hub.store.db import Database
from hub.store.models import DeliveryRecord, LedgerEvent, TenantKey, utcnow


async def test_traffic_oldest_waiting_and_keys(db: Database) -> None:
    now = utcnow().replace(microsecond=0)
    async with db.session() as s, s.begin():
        await seed_all(s)
        for n in range(1, 6):  # GM0518 sends five pings to GM0599, one a minute
            event = LedgerEvent(
                event_id=uuid.uuid4().hex,
                source="urn:test",
                type="nl.leerplicht.ping",
                sender="GM0518",
                status="routed",
                received_at=now - timedelta(minutes=10 - n),
            )
            event.deliveries.append(
                DeliveryRecord(recipient="GM0599", sequence=n, published_at=now - timedelta(minutes=10 - n))
            )
            s.add(event)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}
        s.add_all(
            [
                TenantKey(
                    tenant_code="GM0599",
                    kid="a",
                    use="sig",
                    jwk=jwk,
                    status="primary",
                    expires_at=now + timedelta(days=30),
                ),
                TenantKey(
                    tenant_code="GM0599",
                    kid="b",
                    use="enc",
                    jwk=jwk,
                    status="primary",
                    expires_at=now + timedelta(days=90),
                ),
                TenantKey(
                    tenant_code="GM0599",
                    kid="c",
                    use="sig",
                    jwk=jwk,
                    status="retired",
                    expires_at=now - timedelta(days=1),
                ),
            ]
        )
    async with db.session() as s:
        seen = await tenant_activity.for_tenants(
            s, ["GM0518", "GM0599", "GM0307"], {"GM0518": 0, "GM0599": 2, "GM0307": None}
        )
    assert seen["GM0518"].last_sent == now - timedelta(minutes=5)
    assert seen["GM0518"].last_received is None and seen["GM0518"].oldest_waiting is None
    # Two of five copies wait: the oldest is the fourth.
    assert seen["GM0599"].oldest_waiting == now - timedelta(minutes=6)
    assert seen["GM0599"].last_received == now - timedelta(minutes=5)
    assert seen["GM0599"].last_sent is None
    assert (seen["GM0599"].keys, seen["GM0599"].keys_expire) == (2, now + timedelta(days=30))
    assert seen["GM0307"] == tenant_activity.TenantActivity()
    async with db.session() as s:
        assert await tenant_activity.for_tenants(s, [], {}) == {}
