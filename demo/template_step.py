"""Demo step: shared letter templates. Ingrado publishes its two bundles, signed, to
`group:subscribers`; the hub expands that to every municipality following Ingrado and keeps
a catalogue (ids, versions, digests — no text). Each municipality's connector verifies the
signature against Ingrado's published keys, checks the bundle names Ingrado as its
publisher, and keeps it. Den Haag then renders, locally (only it holds the pupil's data),
the "we zijn je kwijt" letter in Dutch, Polish and Arabic and the door note in Bulgarian,
as PDF and HTML under `<out>/letters/`.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from rich.table import Table

from connectors import Connector
from connectors.directory import Directory
from connectors.letters import Letterhead, shared_bundle_dir
from connectors.sealing import Sealer
from connectors.store import LocalStore
from connectors.templates import TEMPLATE_TYPES, TemplateCatalogue, TemplateOutcome, publish
from demo.context import DemoContext
from demo.support import drain, hub_transport, register_keys, tenant_dir
from hub.workflows.templates import catalogue as hub_catalogue
from schemas.envelope import CloudEvent

__all__ = ["step_templates"]

PUBLISHER = "ingrado"
MUNICIPALITIES = ("GM0518", "GM0599", "GM0307", "GM0957")
BUNDLES = ("we-zijn-je-kwijt", "wij-zijn-langs-geweest")
RENDERER = "GM0518"
LETTERHEAD = Letterhead(
    name="Gemeente Den Haag",
    department="Leerlingzaken",
    return_address=("Postbus 12652", "2500 DP Den Haag"),
    phone="14 070",
    email="leerplicht@denhaag.example",
    website="www.denhaag.nl",
)
# Den Haag's missing pupil (fictitious) and the officer on the case.
COMMON = {
    "case_number": "LLZ-2024-1187",
    "officer_name": "M. de Vries",
    "officer_phone": "070 353 5454",
    "contact_email": "leerplicht@denhaag.example",
}
LETTERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    *(
        (
            "we-zijn-je-kwijt",
            lang,
            {
                **COMMON,
                "pupil_name": "Sanne Voorbeeld",
                "school_name": "Basisschool De Proeftuin",
                "respond_before": date.today() + timedelta(days=14),
            },
        )
        for lang in ("nl", "pl", "ar")
    ),
    ("wij-zijn-langs-geweest", "bg", {**COMMON, "visit_date": date.today()}),
)


async def _receive(
    connector: Connector, catalogue: TemplateCatalogue, want: int, timeout: float = 15.0
) -> list[TemplateOutcome]:
    """Hand the next `want` template events in the inbox to the catalogue (others are acked)."""
    outcomes: list[TemplateOutcome] = []

    async def read() -> None:
        async for message in connector.inbox(idle_timeout=timeout):
            if message.event.type in TEMPLATE_TYPES:
                outcomes.append(await catalogue.handle(message.event, message.payload))
            await message.ack()
            if len(outcomes) >= want:
                return

    await asyncio.wait_for(read(), timeout)
    if len(outcomes) < want:
        raise RuntimeError(f"{connector.tenant} received {len(outcomes)} of {want} templates")
    return outcomes


async def step_templates(ctx: DemoContext) -> None:
    transport = hub_transport(ctx)
    directories: list[Directory] = []
    stores: list[LocalStore] = []
    try:
        sealers: dict[str, Sealer] = {}
        for code in (PUBLISHER, *MUNICIPALITIES):
            keystore, directory = await register_keys(ctx, code, transport)
            directories.append(directory)
            sealers[code] = Sealer(keystore, directory, code)
        for connector in ctx.connectors.values():  # the key.rotated announcements
            await drain(connector)

        sent: list[CloudEvent] = []
        for bundle_id in BUNDLES:
            sent.append(
                await publish(ctx.connectors[PUBLISHER], sealers[PUBLISHER], shared_bundle_dir() / bundle_id)
            )
        refs = [str(e.subject).replace(":", "@", 1) for e in sent]
        ctx.console.print(
            f"{ctx.names[PUBLISHER]} publishes {', '.join(refs)}, signed, to [bold]group:subscribers[/]"
        )

        catalogues: dict[str, TemplateCatalogue] = {}
        received = Table(
            "municipality",
            "template",
            "publisher",
            "languages",
            "kept as",
            title="templates received, signature and publisher checked",
        )
        for code in MUNICIPALITIES:
            store = await LocalStore.open(tenant_dir(ctx, code) / "store.db", sealers[code].keystore)
            stores.append(store)
            catalogues[code] = TemplateCatalogue(store, sealers[code])
            outcomes = await _receive(ctx.connectors[code], catalogues[code], len(BUNDLES))
            entries = {e.ref: e for e in await catalogues[code].entries()}
            for o in outcomes:
                e = entries[o.ref]
                received.add_row(ctx.names[code], o.ref, o.publisher, " ".join(e.languages), o.kind)
        ctx.console.print(received)

        async with ctx.db.session() as s:
            at_hub = [
                f"{r.template_id}@{r.version} ({r.publisher}, sha256 {r.digest[:12]}…)"
                for r in await hub_catalogue(s)
            ]
        ctx.console.print("the hub's catalogue, metadata only: " + "; ".join(at_hub))

        out = ctx.out / "letters"
        out.mkdir(parents=True, exist_ok=True)
        files = Table(
            "file",
            "template",
            "language",
            "format",
            "bytes",
            title=f"letters rendered locally by {ctx.names[RENDERER]}",
        )
        rendered: list[dict[str, Any]] = []
        for template_id, lang, values in LETTERS:
            for fmt in ("pdf", "html"):
                letter = await catalogues[RENDERER].render_letter(
                    template_id, lang=lang, values=values, letterhead=LETTERHEAD, fmt=fmt
                )
                path = out / f"{template_id}.{lang}.{fmt}"
                path.write_bytes(letter.content)
                name, size = str(path.relative_to(ctx.out)), len(letter.content)
                files.add_row(name, letter.ref, lang, fmt, f"{size:,}")
                rendered.append(
                    {"file": name, "template": letter.ref, "lang": lang, "format": fmt, "bytes": size}
                )
        ctx.console.print(files)
        ctx.results["templates"] = {"published": refs, "hub_catalogue": at_hub, "letters": rendered}
    finally:
        for directory in directories:
            await directory.api.aclose()
        for store in stores:
            await store.close()
