"""Letter templates, the connector's side (DESIGN section 2): publish bundles, keep the ones
received, render letters from them.

    event = await publish(connector, sealer, "templates_shared/we-zijn-je-kwijt")   # a publisher
    await withdraw(connector, sealer, "we-zijn-je-kwijt", "1.0.0", "vervangen door 1.1.0")

    catalogue = TemplateCatalogue(store, sealer)                                   # a subscriber
    ...for every inbox event of a template type:
    outcome = await catalogue.handle(message.event, message.payload)
    letter = await catalogue.render_letter("we-zijn-je-kwijt", lang="ar", values=..., letterhead=...)
    Path("letter.pdf").write_bytes(letter.content)                  # letter.ref: "we-zijn-je-kwijt@1.0.0"

Publishing: the bundle is checked with `connectors.letters.load_bundle` (grammar, declared
placeholders, sizes) before anything is signed; its `publisher` must be this tenant. The
event is *signed* (not encrypted: templates hold no personal data) and addressed to
`group:subscribers`, which the hub expands to the publisher's current subscribers.

Receiving: the sealer verifies the signature against the sending tenant's keys in the hub's
directory. That proves who sent it, not in whose name: so the bundle's `publisher` must be
the sending tenant, a template id stays with the publisher that first used it here, and an
id@version already held with other content is refused (`TemplateRefused`; the caller
rejects the message). A bundle that fails the publisher's own checks (`check_bundle`:
grammar, declared placeholders, characters, sizes) is kept aside as refused, with the
reason, in `template_refusals`: it is listed, never rendered, and never the default. Every
good version is kept; a withdrawn one is marked retired and no longer rendered.
`render_letter` without a version uses the newest version neither withdrawn nor refused.

Bundles live in the local store's `templates` table, withdrawals in its
`template_withdrawals` table (both in `connectors.schema`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors import metrics
from connectors.client import Connector, EventSealer
from connectors.letters import (
    DEFAULT_LIMITS,
    Letter,
    Letterhead,
    Limits,
    compose,
    letter_html,
    letter_pdf,
    load_bundle,
)
from connectors.letters.bundle import check_bundle
from connectors.letters.errors import LetterError
from connectors.letters.values import Value
from connectors.schema import template_refusals, template_withdrawals, templates
from connectors.store import LocalStore
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, NotFound
from schemas.events import Payload, TemplatePublished, TemplateWithdrawn

__all__ = [
    "PUBLISHED",
    "SUBSCRIBERS",
    "TEMPLATE_TYPES",
    "WITHDRAWN",
    "CatalogueEntry",
    "RenderedFile",
    "TemplateCatalogue",
    "TemplateOutcome",
    "TemplateRefused",
    "TemplateUnavailable",
    "publish",
    "publish_bundle",
    "withdraw",
]

PUBLISHED = "nl.leerplicht.template.published"
WITHDRAWN = "nl.leerplicht.template.withdrawn"
TEMPLATE_TYPES = (PUBLISHED, WITHDRAWN)
SUBSCRIBERS = "group:subscribers"  # the hub expands it to the publisher's subscribers
Format = Literal["pdf", "html"]


class TemplateRefused(InbeeldError):
    """A received template event this connector does not accept (the caller rejects it)."""

    reason = "template_refused"


class TemplateUnavailable(NotFound):
    """No such template (version) in the local catalogue, or it was withdrawn."""


_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key by SemVer 2.0 precedence (a pre-release sorts before its release)."""
    m = _SEMVER.match(version)
    if m is None:
        return (-1, -1, -1, 0, ())
    pre = m[4]
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (int(m[1]), int(m[2]), int(m[3]), 0 if pre else 1, parts)


def _digest(bundle: TemplatePublished) -> str:
    canonical = json.dumps(bundle.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- publishing ---------------------------------------------------------------------------------


async def _send(connector: Connector, sealer: EventSealer | None, event: CloudEvent) -> CloudEvent:
    if connector.sealer is None:
        if sealer is None:
            raise TemplateRefused("templates are signed: give a sealer (or a connector with one)")
        event = await sealer.seal(event)
    return await connector.publish(event)  # seals with the connector's own sealer if it has one


def _subject(template_id: str, version: str) -> str:
    """`template_id:version` for the envelope (`subject` allows no `@` or `+`)."""
    return re.sub(r"[^A-Za-z0-9._:-]", "-", f"{template_id}:{version}")[:100]


async def publish(
    connector: Connector,
    sealer: EventSealer | None,
    bundle_dir: str | Path,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> CloudEvent:
    """Check the bundle folder, sign it, and send it to the publisher's subscribers."""
    return await publish_bundle(connector, sealer, load_bundle(bundle_dir, limits=limits), limits=limits)


async def publish_bundle(
    connector: Connector,
    sealer: EventSealer | None,
    bundle: TemplatePublished,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> CloudEvent:
    """Sign a bundle and send it to the publisher's subscribers (`publish` for one read from a
    folder; the template studio for one written in the workspace). The publisher's checks run
    here too, however the bundle was made."""
    check_bundle(bundle, limits)
    if bundle.publisher != connector.tenant:
        raise TemplateRefused(
            f"the bundle names publisher {bundle.publisher}, but this connector is {connector.tenant}",
            field="publisher",
        )
    subject = _subject(bundle.template_id, bundle.version)
    event = connector.event(PUBLISHED, bundle.model_dump(mode="json"), [SUBSCRIBERS], subject=subject)
    return await _send(connector, sealer, event)


async def withdraw(
    connector: Connector, sealer: EventSealer | None, template_id: str, version: str, reason: str
) -> CloudEvent:
    """Tell the subscribers that `template_id@version` must no longer be used."""
    payload = TemplateWithdrawn(template_id=template_id, version=version, reason=reason)
    subject = _subject(template_id, version)
    event = connector.event(WITHDRAWN, payload.model_dump(mode="json"), [SUBSCRIBERS], subject=subject)
    return await _send(connector, sealer, event)


# -- the local catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateOutcome:
    kind: Literal["stored", "duplicate", "withdrawn", "refused"]
    template_id: str
    version: str
    publisher: str
    detail: str | None = None  # refused: the failed check's reason code and message

    @property
    def ref(self) -> str:
        return f"{self.template_id}@{self.version}"


@dataclass(frozen=True)
class CatalogueEntry:
    template_id: str
    version: str
    publisher: str
    title: str
    languages: tuple[str, ...]
    received_at: float
    withdrawn_at: float | None
    withdraw_reason: str | None
    refused_reason: str | None = None  # failed the publisher's checks on receipt: kept aside

    @property
    def ref(self) -> str:
        return f"{self.template_id}@{self.version}"

    @property
    def status(self) -> str:
        if self.refused_reason is not None:
            return "refused"
        return "retired" if self.withdrawn_at is not None else "active"


@dataclass(frozen=True)
class RenderedFile:
    """A rendered letter: `letter.ref` is the `template_id@version` it came from."""

    letter: Letter
    fmt: Format
    content: bytes

    @property
    def ref(self) -> str:
        return self.letter.ref


class TemplateCatalogue:
    def __init__(self, store: LocalStore, sealer: EventSealer | None = None) -> None:
        self.store = store
        self.sealer = sealer
        self._bundles: dict[tuple[str, str], TemplatePublished] = {}

    async def _sender(self, event: CloudEvent) -> str:
        sender_of = getattr(self.sealer, "sender_of", None)
        if sender_of is not None:
            return str(await sender_of(event))
        kind, value = event.source_party
        if kind != "cbs":
            raise TemplateRefused("cannot tell the sending tenant of an OIN source without a sealer")
        return value

    async def handle(self, event: CloudEvent, payload: Payload | None = None) -> TemplateOutcome:
        """Take a received `template.*` event into the catalogue (see the module docstring).
        `payload` is the opened payload (`InboxMessage.payload`); None opens it here."""
        if payload is None:
            if self.sealer is None:
                raise TemplateRefused("a signed template event needs a sealer to be verified")
            payload = await self.sealer.open(event)
        sender = await self._sender(event)
        if isinstance(payload, TemplatePublished):
            return await self._on_published(sender, payload, event.id)
        if isinstance(payload, TemplateWithdrawn):
            return await self._on_withdrawn(sender, event, payload)
        raise TemplateRefused(f"{event.type} is not a template event", field="type")

    async def import_bundle(self, bundle: TemplatePublished) -> TemplateOutcome:
        """Take a bundle from a folder (`load_bundle` ran the publisher's checks) into the
        catalogue by hand, as if its publisher had sent it: the same owner and version rules."""
        return await self._on_published(bundle.publisher, bundle)

    async def _on_published(
        self, sender: str, bundle: TemplatePublished, event_id: str | None = None
    ) -> TemplateOutcome:
        ref = f"{bundle.template_id}@{bundle.version}"
        if bundle.publisher != sender:
            raise TemplateRefused(
                f"{ref} names publisher {bundle.publisher} but was signed and sent by {sender}",
                field="publisher",
            )
        owner = await self._owner(bundle.template_id)
        if owner is not None and owner != sender:
            raise TemplateRefused(f"template {bundle.template_id} belongs to {owner}", field="template_id")
        refused = await self._refusal(bundle.template_id, bundle.version)
        if refused is not None:
            return TemplateOutcome("refused", bundle.template_id, bundle.version, sender, refused)
        try:
            check_bundle(bundle)
        except LetterError as exc:
            detail = f"{exc.reason}: {exc.message}"[:300]
            async with self.store.engine.begin() as conn:
                stmt = sqlite_insert(template_refusals).values(
                    template_id=bundle.template_id,
                    version=bundle.version,
                    publisher=sender,
                    reason=exc.reason,
                    detail=detail,
                    event_id=event_id,
                    refused_at=time.time(),
                )
                await conn.execute(stmt.on_conflict_do_nothing())
            return TemplateOutcome("refused", bundle.template_id, bundle.version, sender, detail)
        held = await self._stored(bundle.template_id, bundle.version)
        if held is not None:
            if _digest(held) != _digest(bundle):
                raise TemplateRefused(f"{ref} is already held with other content", field="version")
            return TemplateOutcome("duplicate", bundle.template_id, bundle.version, sender)
        await self.store.save_template(
            bundle.template_id, bundle.version, bundle.publisher, bundle.model_dump(mode="json")
        )
        return TemplateOutcome("stored", bundle.template_id, bundle.version, sender)

    async def _on_withdrawn(self, sender: str, event: CloudEvent, w: TemplateWithdrawn) -> TemplateOutcome:
        owner = await self._owner(w.template_id)
        if owner is not None and owner != sender:
            raise TemplateRefused(f"only {owner} withdraws {w.template_id}", field="template_id")
        async with self.store.engine.begin() as conn:
            stmt = sqlite_insert(template_withdrawals).values(
                template_id=w.template_id,
                version=w.version,
                publisher=sender,
                reason=w.reason,
                event_id=event.id,
                withdrawn_at=time.time(),
            )
            await conn.execute(stmt.on_conflict_do_nothing())
        return TemplateOutcome("withdrawn", w.template_id, w.version, sender)

    async def _refusal(self, template_id: str, version: str) -> str | None:
        async with self.store.engine.connect() as conn:
            value = await conn.scalar(
                select(template_refusals.c.detail).where(
                    template_refusals.c.template_id == template_id, template_refusals.c.version == version
                )
            )
        return None if value is None else str(value)

    async def _owner(self, template_id: str) -> str | None:
        async with self.store.engine.connect() as conn:
            value = await conn.scalar(
                select(templates.c.publisher).where(templates.c.template_id == template_id).limit(1)
            )
        return None if value is None else str(value)

    async def _stored(self, template_id: str, version: str) -> TemplatePublished | None:
        key = (template_id, version)
        if key not in self._bundles:
            async with self.store.engine.connect() as conn:
                raw = await conn.scalar(
                    select(templates.c.bundle).where(
                        templates.c.template_id == template_id, templates.c.version == version
                    )
                )
            if raw is None:
                return None
            self._bundles[key] = TemplatePublished.model_validate(json.loads(raw))
        return self._bundles[key]

    async def entries(self, template_id: str | None = None) -> list[CatalogueEntry]:
        """Every version held (newest first per template), withdrawn ones marked retired, and
        those refused on receipt (status `refused`, never rendered)."""
        w = template_withdrawals
        q = select(
            templates.c.template_id,
            templates.c.version,
            templates.c.publisher,
            templates.c.bundle,
            templates.c.received_at,
            w.c.withdrawn_at,
            w.c.reason,
        ).outerjoin(w, (w.c.template_id == templates.c.template_id) & (w.c.version == templates.c.version))
        if template_id is not None:
            q = q.where(templates.c.template_id == template_id)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for r in rows:
            bundle = json.loads(r.bundle)
            out.append(
                CatalogueEntry(
                    r.template_id,
                    r.version,
                    r.publisher,
                    str(bundle.get("title", "")),
                    tuple(bundle.get("languages", {})),
                    float(r.received_at),
                    None if r.withdrawn_at is None else float(r.withdrawn_at),
                    r.reason,
                )
            )
        kept = template_refusals
        q2 = select(kept.c.template_id, kept.c.version, kept.c.publisher, kept.c.detail, kept.c.refused_at)
        if template_id is not None:
            q2 = q2.where(kept.c.template_id == template_id)
        async with self.store.engine.connect() as conn:
            for row in (await conn.execute(q2)).all():
                out.append(
                    CatalogueEntry(
                        row.template_id,
                        row.version,
                        row.publisher,
                        "",
                        (),
                        float(row.refused_at),
                        None,
                        None,
                        refused_reason=row.detail,
                    )
                )
        out.sort(key=lambda e: (e.template_id, semver_key(e.version)), reverse=True)
        out.sort(key=lambda e: e.template_id)
        return out

    async def bundle(self, template_id: str, version: str | None = None) -> TemplatePublished:
        """The bundle to render: `version`, or the newest version not withdrawn."""
        versions = await self.entries(template_id)
        if version is None:
            active = [e for e in versions if e.status == "active"]
            if not active:
                held = "every version held was withdrawn" if versions else "none is held"
                raise TemplateUnavailable(f"no usable version of {template_id}: {held}", field="template")
            version = active[0].version
        entry = next((e for e in versions if e.version == version), None)
        if entry is None:
            raise TemplateUnavailable(f"{template_id}@{version} is not in the catalogue", field="template")
        if entry.refused_reason is not None:
            raise TemplateUnavailable(
                f"{entry.ref} was refused on receipt ({entry.refused_reason})", field="version"
            )
        if entry.withdrawn_at is not None:
            raise TemplateUnavailable(
                f"{entry.ref} was withdrawn by {entry.publisher} ({entry.withdraw_reason})", field="version"
            )
        bundle = await self._stored(template_id, version)
        assert bundle is not None
        return bundle

    async def versions_to_compare(
        self, template_id: str, old: str | None = None, new: str | None = None
    ) -> tuple[TemplatePublished, TemplatePublished]:
        """Two versions of a template to compare: by default the one in use (the newest not
        withdrawn) and the usable version before it, i.e. what the newest arrival changed."""
        usable = [e.version for e in await self.entries(template_id) if e.status == "active"]
        if new is None:
            if not usable:
                raise TemplateUnavailable(f"no usable version of {template_id} is held", field="template")
            new = usable[0]
        if old is None:
            older = [v for v in usable if semver_key(v) < semver_key(new)]
            if not older:
                raise TemplateUnavailable(
                    f"{template_id}@{new} is the only usable version held: nothing to compare it with",
                    field="version",
                )
            old = older[0]
        return await self.bundle(template_id, old), await self.bundle(template_id, new)

    async def render_letter(
        self,
        template_id: str,
        *,
        lang: str,
        values: Mapping[str, Value | None],
        letterhead: Letterhead,
        version: str | None = None,
        fmt: Format = "pdf",
        bilingual: bool = False,
        recipient: Sequence[str] = (),
        letter_date: date | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> RenderedFile:
        """Render from the catalogue (the newest active version unless `version` is given).
        Raises `TemplateUnavailable` or a `connectors.letters.LetterError`."""
        bundle = await self.bundle(template_id, version)
        letter = compose(bundle, lang, values, bilingual=bilingual, letter_date=letter_date, limits=limits)
        if fmt == "pdf":
            content = letter_pdf(letter, letterhead, recipient=recipient, limits=limits)
        else:
            content = letter_html(letter, letterhead, recipient=recipient, limits=limits).encode("utf-8")
        metrics.letters_rendered.labels(format=fmt).inc()
        return RenderedFile(letter, fmt, content)
