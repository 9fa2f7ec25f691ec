"""Demo step: a pupil moves from Den Haag to Rotterdam and his file goes with him, sealed.

Den Haag offers the dossier to Rotterdam, Rotterdam opens and accepts it, Den Haag completes
the transfer; the hub routes each step without reading the dossier and keeps only states and
times, which the step prints as the parties' timeline (from the hub API, as Den Haag sees it).

Sealing needs each party's keystore and the hub's key directory: the step uses each tenant's
keystore of the whole demo (`demo.support.keystore_for`: the hub refuses to replace keys an
earlier step registered without a rotation proof), registers its public keys through the
hub API (in process, ASGI), gives the two tenants' demo connectors a `Sealer` for the
length of the step, and drains the `key.rotated` announcements the registration causes from
every tenant's inbox, so later steps start with empty inboxes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from rich.table import Table

from connectors import Connector, EventSealer, offers
from connectors import transfers as sdk
from connectors.directory import Directory
from connectors.hub_api import HubApi
from connectors.sealing import Sealer
from connectors.store import LocalStore
from demo.context import DemoContext
from demo.support import keystore_for, tenant_dir
from hub import auth
from hub.api.app import create_app
from schemas.envelope import CloudEvent
from schemas.events import TransferOffered

__all__ = ["step_transfer"]

OFFERER, RECEIVER = "GM0518", "GM0599"
# A fictitious pupil (BSN passes the 11-test; nobody real).
DOSSIER: dict[str, Any] = {
    "pupil": {
        "bsn": "111222333",
        "given_names": "Sanne",
        "family_name": "Voorbeeld",
        "birth_date": "2014-05-17",
    },
    "previous_address": {
        "street": "Proefstraat",
        "house_number": 12,
        "postcode": "2511 AB",
        "city": "Den Haag",
        "municipality": "GM0518",
    },
    "new_address": {
        "street": "Testkade",
        "house_number": 7,
        "postcode": "3011AA",
        "city": "Rotterdam",
        "municipality": "GM0599",
    },
    "moved_on": "2025-01-06",
    "guardians": [
        {"family_name": "Voorbeeld", "relation": "parent", "phone": "06 12345678", "preferred_language": "pl"}
    ],
    "school": {"brin": "12AB", "name": "Basisschool De Proeftuin", "level": "po"},
    "compulsory_education": {"status": "leerplichtig"},
    "absence_case": {
        "case_number": "LLZ-2024-1187",
        "kind": "relatief_verzuim",
        "opened_on": "2024-11-04",
        "summary": "Sinds half oktober ongeoorloofd afwezig.",
    },
    "contact_attempts": [
        {
            "kind": "home_visit",
            "at": "2024-11-20T16:15:00+01:00",
            "by": "Leerplichtambtenaar",
            "outcome": "not_reached",
            "note": "Buren: het gezin verhuist naar Rotterdam.",
        },
        {
            "kind": "phone",
            "at": "2025-01-08T10:00:00+01:00",
            "by": "Leerplichtambtenaar",
            "outcome": "reached",
        },
    ],
}
FALLBACK_TYPE = "nl.leerplicht.hub.rejected"


async def _token(ctx: DemoContext, code: str) -> str:
    async with ctx.db.session() as s, s.begin():
        _, token = await auth.issue(s, "tenant", code, "demo transfer")
    return token


async def _wait_for(
    connector: Connector, want: Callable[[CloudEvent], bool], timeout: float = 15.0
) -> CloudEvent:
    """The first inbox event matching `want` (everything read is acked); a refusal fails loudly."""

    async def read() -> CloudEvent:
        async for message in connector.inbox(idle_timeout=timeout):
            await message.ack()
            if want(message.event):
                return message.event
            if message.event.type == FALLBACK_TYPE:
                raise RuntimeError(f"the hub refused a transfer step: {message.event.data}")
        raise TimeoutError("the expected event did not arrive")

    return await asyncio.wait_for(read(), timeout)


async def _drain(connector: Connector, quiet: float = 0.5) -> int:
    n = 0
    async for message in connector.inbox(idle_timeout=quiet):
        await message.ack()
        n += 1
    return n


async def step_transfer(ctx: DemoContext) -> None:
    """Den Haag offers a pupil who moved to Rotterdam; Rotterdam accepts; Den Haag completes."""
    app = create_app(ctx.settings, ctx.db)
    transport = httpx.ASGITransport(app=app)
    directories: dict[str, Directory] = {}
    sealing: dict[str, Connector] = {}
    previous: dict[str, EventSealer | None] = {}
    stores: dict[str, LocalStore] = {}
    try:
        for code in (OFFERER, RECEIVER):
            keystore = keystore_for(ctx, code)
            directory = Directory(HubApi("http://hub", await _token(ctx, code), transport=transport))
            directories[code] = directory
            await directory.register(keystore.public_jwks())
            # the demo's own connector for the tenant, sealing for the length of this step
            connector = ctx.connectors[code]
            previous[code] = connector.sealer
            connector.sealer = Sealer(keystore, directory, code)
            # ... and keeping its processing log (Logboek dataverwerkingen) in its local store
            stores[code] = await LocalStore.open(tenant_dir(ctx, code) / "store.db", keystore)
            connector.processing_log = stores[code]
            sealing[code] = connector
        for connector in ctx.connectors.values():  # the key.rotated announcements
            await _drain(connector)
        den_haag, rotterdam = sealing[OFFERER], sealing[RECEIVER]

        transfer_id = sdk.new_transfer_id(OFFERER)
        dossier = {**DOSSIER, "transfer_id": transfer_id}
        offered = await sdk.offer(den_haag, RECEIVER, dossier)
        ctx.console.print(
            f"{ctx.names[OFFERER]} offers transfer [bold]{transfer_id}[/] to {ctx.names[RECEIVER]}"
        )

        got = await _wait_for(rotterdam, lambda e: e.id == offered.id)
        assert rotterdam.sealer is not None
        opened = await rotterdam.sealer.open(got)
        assert isinstance(opened, TransferOffered)
        sdk.check_subject(got, opened)
        ctx.console.print(
            f"{ctx.names[RECEIVER]} opened the sealed dossier: "
            f"{len(opened.contact_attempts)} contact attempts, "
            f"open case: {'yes' if opened.absence_case else 'no'}, "
            f"family language: {opened.guardians[0].preferred_language}"
        )

        # ... and keeps it for its officers' werkbak, as `inbeeld-connector run` does
        await offers.keep(stores[RECEIVER], got.id, OFFERER, opened)
        await offers.claim(stores[RECEIVER], transfer_id, "accepted", "demo-officer")
        accepted = await sdk.accept(rotterdam, transfer_id, to=OFFERER, note="Zaak overgenomen.")
        await _wait_for(den_haag, lambda e: e.id == accepted.id)
        ctx.console.print(f"{ctx.names[RECEIVER]} accepted; {ctx.names[OFFERER]} received the answer")

        completed = await sdk.complete(den_haag, transfer_id, to=RECEIVER)
        await _wait_for(rotterdam, lambda e: e.id == completed.id)
        ctx.console.print(f"{ctx.names[OFFERER]} completed the transfer")

        async with HubApi("http://hub", await _token(ctx, OFFERER), transport=transport) as api:
            record = await sdk.TransferStatus(api).get(transfer_id)
        table = Table(
            "step", "by", "for", "at (UTC)", "event", title=f"transfer {transfer_id} as the hub keeps it"
        )
        for x in record["timeline"]:
            table.add_row(
                x["step"],
                ctx.names.get(x["actor"], x["actor"]),
                ctx.names.get(x["acted_for"], x["acted_for"] or ""),
                x["at"][:19].replace("T", " "),
                x["event_id"][:8],
            )
        ctx.console.print(table)
        ctx.console.print(
            f"state: [bold]{record['state']}[/]; the hub holds states and times, never the dossier"
        )
        ctx.results["transfer"] = {
            "transfer_id": transfer_id,
            "state": record["state"],
            "events": {"offered": offered.id, "accepted": accepted.id, "completed": completed.id},
            "timeline": [{k: x[k] for k in ("step", "actor", "acted_for", "at")} for x in record["timeline"]],
        }
        if record["state"] != "completed":
            raise RuntimeError(f"transfer {transfer_id} ended {record['state']}, not completed")
    finally:
        for code, connector in sealing.items():
            connector.sealer = previous[code]
            connector.processing_log = None
        for store in stores.values():
            await store.close()
        for directory in directories.values():
            await directory.api.aclose()
