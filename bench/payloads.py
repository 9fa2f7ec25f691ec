"""What the benchmarks send: realistic payloads per event type, and sealing without a hub API.

`LocalDirectory` answers the `connectors.sealing.Sealer`'s questions from the run's own
keystores (the same public keys the hub's directory publishes), so sealing costs no HTTP.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.keystore import Keystore
from connectors.sealing import Sealer
from schemas.envelope import CloudEvent, source_urn
from schemas.events import EVENTS

PING = "nl.leerplicht.ping"
PING_TEXT_MAX = 200  # schemas.events.Ping.text


def source_of(code: str) -> str:
    return source_urn(system="bench", oin=None, cbs=code)


def event(sender: str, event_type: str, data: Any, recipients: Sequence[str], **extra: Any) -> CloudEvent:
    return CloudEvent(
        source=source_of(sender),
        type=event_type,
        dataschema=EVENTS[event_type].dataschema,
        recipients=list(recipients),
        data=data,
        **extra,
    )


def stamped_ping(sender: str, recipient: str) -> CloudEvent:
    """A ping at its largest allowed size whose text starts with the send time (ns)."""
    stamp = f"t={time.time_ns()};"
    return event(sender, PING, {"text": stamp.ljust(PING_TEXT_MAX, "x")}, [recipient])


def stamp_of(data: Any) -> int | None:
    text = data.get("text", "") if isinstance(data, Mapping) else ""
    if not text.startswith("t="):
        return None
    return int(text[2:].split(";", 1)[0])


def raw_body(size: int = 1024) -> bytes:
    return os.urandom(size // 2).hex().encode()[:size]


def dossier(transfer_id: str, sender: str, recipient: str) -> dict[str, Any]:
    """A transfer.offered payload shaped like a real pupil file (~2.7 KiB of JSON, fictitious)."""
    note = "Leerplichtambtenaar Leerlingzaken"
    return {
        "transfer_id": transfer_id,
        "pupil": {
            "bsn": "111222333",
            "given_names": "Sanne Maria",
            "family_name_prefix": "van der",
            "family_name": "Voorbeeld",
            "birth_date": "2014-05-17",
        },
        "previous_address": {
            "street": "Proefstraat",
            "house_number": 12,
            "house_letter": "A",
            "postcode": "2511 AB",
            "city": "Den Haag",
            "municipality": sender,
        },
        "new_address": {
            "street": "Testkade",
            "house_number": 7,
            "house_number_addition": "BIS",
            "postcode": "3011AA",
            "city": "Rotterdam",
            "municipality": recipient,
        },
        "moved_on": "2025-01-06",
        "guardians": [
            {
                "given_names": "Maria",
                "family_name": "Voorbeeld",
                "relation": "parent",
                "phone": "06 12345678",
                "email": "m.voorbeeld@mail.example",
                "preferred_language": "pl",
            },
            {
                "given_names": "Piet",
                "family_name_prefix": "van der",
                "family_name": "Voorbeeld",
                "relation": "parent",
                "phone": "+48 600 000 000",
                "preferred_language": "nl",
            },
        ],
        "school": {"brin": "12AB", "name": "Basisschool De Proeftuin", "level": "po"},
        "compulsory_education": {"status": "leerplichtig"},
        "absence_case": {
            "case_number": "LLZ-2024-1187",
            "kind": "relatief_verzuim",
            "opened_on": "2024-11-04",
            "summary": "Sinds half oktober ongeoorloofd afwezig (ca. 40 uur). School meldde via DUO; "
            "gesprek met ouder gepland maar niet doorgegaan.",
        },
        "contact_attempts": [
            {
                "kind": "phone",
                "at": "2024-11-05T09:30:00+01:00",
                "by": note,
                "outcome": "not_reached",
                "note": "Voicemail ingesproken.",
            },
            {
                "kind": "letter",
                "at": "2024-11-06T12:00:00+01:00",
                "by": note,
                "outcome": "no_response",
                "note": "Uitnodiging voor gesprek, Nederlands en Pools.",
            },
            {
                "kind": "home_visit",
                "at": "2024-11-20T16:15:00+01:00",
                "by": note,
                "outcome": "not_reached",
                "note": "Niemand thuis; buren zeggen dat het gezin verhuist.",
            },
            {
                "kind": "door_note",
                "at": "2024-11-20T16:20:00+01:00",
                "by": note,
                "outcome": "no_response",
                "note": "Kaart 'Wij zijn langs geweest' achtergelaten.",
            },
        ],
        "notes": "Voorkeur voor contact in het Pools. Fictief voorbeelddossier voor de benchmark.",
    }


def template(publisher: str, version: str) -> dict[str, Any]:
    body = "Beste {{ naam }},\n\nWe hebben je de afgelopen weken niet op school gezien. " * 8
    return {
        "template_id": "we-zijn-je-kwijt",
        "version": version,
        "publisher": publisher,
        "title": "We zijn je kwijt",
        "languages": {
            "nl": {"direction": "ltr", "subject": "We zijn je kwijt", "body": body},
            "en": {"direction": "ltr", "subject": "We have lost you", "body": body},
            "ar": {"direction": "rtl", "subject": "لقد فقدناك", "body": "عزيزي {{ naam }}،"},
        },
        "placeholders": [{"name": "naam", "type": "text"}, {"name": "telefoon", "type": "phone"}],
    }


def pupil_missing(notice_id: str) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "blind_index": os.urandom(32).hex(),
        "group_key_id": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        "contact": {"department": "Leerlingzaken", "phone": "14 070", "email": "leerplicht@gemeente.example"},
        "deadline": (datetime.now(UTC) + timedelta(days=14)).isoformat(),  # within the hub's maximum
    }


def pupil_found(notice_id: str) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "registered_since": "2025-01-06",
        "school": {"brin": "34CD01", "name": "OBS De Testhaven", "level": "po"},
        "contact": {"name": "T. Proef", "department": "Leerplicht", "phone": "14 010"},
    }


class LocalDirectory:
    """The key directory and groups of this run, for `Sealer` (no HTTP)."""

    def __init__(self, keystores: Mapping[str, Keystore], groups: Mapping[str, Sequence[str]]) -> None:
        self._jwks = {code: ks.public_jwks()["keys"] for code, ks in keystores.items()}
        self._groups = {name: list(members) for name, members in groups.items()}

    async def signing_keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        return [k for k in self._jwks[tenant] if k.get("use") == "sig"]

    async def encryption_keys(self, tenant: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        return [k for k in self._jwks[tenant] if k.get("use") == "enc"]

    async def group_members(self, name: str, *, refresh: bool = False) -> list[str]:
        return self._groups[name]

    async def tenant_for_oin(self, oin: str) -> str:
        raise KeyError(oin)


def sealer_for(code: str, keystores: Mapping[str, Keystore], directory: LocalDirectory) -> Sealer:
    return Sealer(keystores[code], directory, code)  # type: ignore[arg-type]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
