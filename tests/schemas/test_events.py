from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.envelope import MAX_MESSAGE_BYTES, CloudEvent, parse_event
from schemas.errors import SchemaInvalid
from schemas.events import EVENTS, SCHEMA_BASE, TransferOffered, spec_for
from schemas.validation import validate_payload

DOSSIER_PATH = Path(__file__).resolve().parents[1] / "data" / "dossier.example.json"
DOSSIER: dict[str, Any] = json.loads(DOSSIER_PATH.read_text(encoding="utf-8"))

TEMPLATE = {
    "template_id": "we-zijn-je-kwijt",
    "version": "1.2.0",
    "publisher": "ingrado",
    "title": "We zijn je kwijt",
    "languages": {
        "nl": {"direction": "ltr", "subject": "We zijn je kwijt", "body": "Beste {{ naam }},"},
        "ar": {"direction": "rtl", "subject": "لقد فقدناك", "body": "عزيزي {{ naam }}،"},
        "bg": {"direction": "ltr", "subject": "Изгубихме те", "body": "Здравей {{ naam }},"},
    },
    "placeholders": [
        {"name": "naam", "type": "text"},
        {"name": "datum", "type": "date", "required": False},
        {"name": "telefoon", "type": "phone"},
        {"name": "zaaknummer", "type": "case_number", "description": "Het zaaknummer"},
    ],
}

# One realistic payload per event type (short type -> data).
EXAMPLES: dict[str, dict[str, Any]] = {
    "ping": {"text": "hello from GM0518"},
    "hub.rejected": {
        "event_id": "7d7c3a59-1f0f-4b59-9a58-0d1b4b1f3c11",
        "reason": "schema_invalid",
        "message": "transfer.offered payload: pupil.bsn: not a valid BSN (fails the 11-test)",
        "field": "pupil.bsn",
    },
    "hub.receipt": {
        "event_id": "7d7c3a59-1f0f-4b59-9a58-0d1b4b1f3c11",
        "recipient": "GM0599",
        "processed_at": "2025-01-09T08:00:00+00:00",
    },
    "template.published": TEMPLATE,
    "template.withdrawn": {
        "template_id": "we-zijn-je-kwijt",
        "version": "1.1.0",
        "reason": "Vervangen door 1.2.0 (nieuw telefoonnummer)",
    },
    "transfer.offered": DOSSIER,
    "transfer.accepted": {"transfer_id": "tr-2025-0518-000042", "note": "Zaak overgenomen."},
    "transfer.rejected": {
        "transfer_id": "tr-2025-0518-000042",
        "reason": "not_resident",
        "note": "Niet ingeschreven op dit adres volgens de BRP.",
    },
    "transfer.completed": {"transfer_id": "tr-2025-0518-000042"},
    "transfer.cancelled": {"transfer_id": "tr-2025-0518-000042", "note": "Dubbel verstuurd."},
    "transfer.expired": {
        "transfer_id": "tr-2025-0518-000042",
        "expired_at": "2025-02-09T00:00:00+00:00",
    },
    "receipt": {
        "event_id": "7d7c3a59-1f0f-4b59-9a58-0d1b4b1f3c11",
        "event_source": "urn:nld:cbs:GM0518:systeem:leerlingzaken",
    },
    "transfer.reminder": {
        "transfer_id": "tr-2025-0518-000042",
        "offerer": "GM0518",
        "deadline": "2025-02-09T00:00:00+00:00",
    },
    "notice.pupil_missing": {
        "notice_id": "nt-2025-0518-0007",
        "blind_index": "a" * 64,
        "group_key_id": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        "contact": {
            "department": "Leerlingzaken Den Haag",
            "phone": "14 070",
            "email": "leerplicht@denhaag.example",
        },
        "deadline": "2025-02-01T17:00:00+01:00",
    },
    "notice.pupil_found": {
        "notice_id": "nt-2025-0518-0007",
        "registered_since": "2025-01-06",
        "school": {"brin": "34CD01", "name": "OBS De Testhaven", "level": "po"},
        "contact": {
            "name": "T. Proef",
            "department": "Leerplicht Rotterdam",
            "phone": "14 010",
            "email": "leerplicht@rotterdam.example",
        },
    },
    "notice.closed": {"notice_id": "nt-2025-0518-0007", "reason": "found"},
    "group.key_shared": {
        "group": "haaglanden",
        "key_id": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
        "alg": "HMAC-SHA256",
        "key": "q" * 43,
    },
    "delivery.failed": {
        "event_id": "7d7c3a59-1f0f-4b59-9a58-0d1b4b1f3c11",
        "event_source": "urn:nld:cbs:GM0518:systeem:leerlingzaken",
        "event_type": "nl.leerplicht.transfer.offered",
        "reason": "crypto_error",
    },
    "hub.alert": {
        "alert_id": 7,
        "tenant": "GM0599",
        "kind": "inbox_offline",
        "state": "raised",
        "detail": "no connector is reading the inbox",
        "since": "2026-12-01T01:00:00Z",
        "raised_at": "2026-12-01T05:00:00Z",
    },
    "hub.key_replacement_refused": {
        "tenant": "GM0599",
        "presented_kids": ["NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"],
        "current_kids": ["kuLdV0lq3rRPGoHI0fCqIhGJv5Vq8Y7ADj7bDNqWbyA"],
        "reason": "proof_missing",
    },
    "key.rotated": {
        "tenant": "GM0518",
        "kids": [
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
            "kuLdV0lq3rRPGoHI0fCqIhGJv5Vq8Y7ADj7bDNqWbyA",
        ],
    },
}


def test_every_spec_has_an_example() -> None:
    assert set(EXAMPLES) == {s.short_type for s in EVENTS.values()}


@pytest.mark.parametrize("short_type", sorted(EXAMPLES))
def test_example_round_trips(short_type: str) -> None:
    spec = spec_for("nl.leerplicht." + short_type)
    payload = validate_payload(spec.type, EXAMPLES[short_type])
    assert isinstance(payload, spec.model)
    wire = json.loads(payload.model_dump_json())
    again = validate_payload(spec.type, wire)
    assert again == payload
    assert json.loads(again.model_dump_json()) == wire


@pytest.mark.parametrize("short_type", sorted(EXAMPLES))
def test_example_fits_in_a_cloudevent(short_type: str) -> None:
    spec = spec_for("nl.leerplicht." + short_type)
    event = CloudEvent(
        source="urn:nld:cbs:GM0518:systeem:leerlingzaken",
        type=spec.type,
        dataschema=spec.dataschema,
        recipients=["GM0599"],
        data=EXAMPLES[short_type],
    )
    parsed = parse_event(event.to_bytes())
    assert validate_payload(parsed.type, parsed.data) == validate_payload(spec.type, event.data)


def test_catalogue_shape() -> None:
    for spec in EVENTS.values():
        assert spec.type == "nl.leerplicht." + spec.short_type
        assert spec.dataschema == f"{SCHEMA_BASE}/{spec.short_type}/v{spec.version}.json"
        assert spec.schema_file == f"{spec.short_type}.v{spec.version}.json"
        assert spec.model.model_config.get("extra") == "forbid"
    hub_only = {s.short_type for s in EVENTS.values() if s.hub_only}
    assert hub_only == {
        "hub.rejected",
        "hub.receipt",
        "transfer.expired",
        "transfer.reminder",
        "key.rotated",
        "hub.key_replacement_refused",
        "hub.alert",
    }
    protections = {s.short_type: s.protection for s in EVENTS.values()}
    assert protections["transfer.offered"] == "sealed"
    assert protections["notice.pupil_found"] == "sealed"
    assert protections["group.key_shared"] == "sealed"
    assert protections["notice.pupil_missing"] == "signed"
    assert protections["template.published"] == "signed"
    assert protections["transfer.expired"] == "none"


# --- the dossier --------------------------------------------------------------------------


def test_example_dossier_validates() -> None:
    dossier = validate_payload("nl.leerplicht.transfer.offered", DOSSIER)
    assert isinstance(dossier, TransferOffered)
    assert dossier.previous_address.postcode == "2511AB"
    assert dossier.previous_address.municipality == "GM0518"
    assert dossier.new_address is not None and dossier.new_address.municipality == "GM0599"
    assert {a.kind for a in dossier.contact_attempts} >= {
        "phone",
        "letter",
        "home_visit",
        "door_note",
    }


def _bad(path: str, value: Any) -> dict[str, Any]:
    """The example dossier with the value at dotted `path` replaced (or removed: ...)."""
    data = copy.deepcopy(DOSSIER)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        ("pupil.bsn", "111222334", "11-test"),
        ("pupil.birth_date", "2999-01-01", "future"),
        ("pupil.family_name", "", "at least 1"),
        ("previous_address.postcode", "0511AB", "postcode"),
        ("previous_address.municipality", "0518", "GM"),
        ("previous_address.house_number", 0, "greater than or equal to 1"),
        ("new_address.city", "x" * 201, "200"),
        ("guardians.1.phone", "+48 60", "phone"),
        ("guardians.0.email", "not-an-address", "e-mail"),
        ("guardians.0.preferred_language", "de", "'nl'"),
        ("guardians.0.relation", "uncle", "'parent'"),
        ("school.brin", "ABCD", "BRIN"),
        ("school.level", "hbo", "'po'"),
        ("compulsory_education.status", "vrijstelling", "required when status is vrijstelling"),
        ("absence_case.opened_on", "04-11-2024", "YYYY-MM-DD"),
        ("contact_attempts.2.kind", "carrier_pigeon", "'home_visit'"),
        ("contact_attempts.0.at", "2024-11-05T09:30:00", "timezone"),
        ("contact_attempts.3.note", "x" * 1001, "1000"),
        ("notes", "x" * 5001, "5000"),
        ("transfer_id", "tr 42", "identifier"),
        ("new_address", ..., "Field required"),
        ("pupil.nickname", "Sanne", "Extra inputs are not permitted"),
    ],
)
def test_bad_dossier_reports_the_field_path(path: str, value: Any, why: str) -> None:
    expected_field = path
    if path == "compulsory_education.status":
        expected_field = "compulsory_education.exemption_reason"
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.transfer.offered", _bad(path, value))
    exc = info.value
    assert exc.field == expected_field
    assert exc.message.startswith(f"transfer.offered payload: {expected_field}: ")
    assert why in exc.message
    if isinstance(value, str) and len(value) > 4 and value not in why:
        assert value not in exc.message


def test_dossier_unknowns_are_explicit_nulls() -> None:
    data = copy.deepcopy(DOSSIER)
    data["new_address"] = None
    data["school"] = None
    del data["absence_case"]
    dossier = validate_payload("nl.leerplicht.transfer.offered", data)
    assert isinstance(dossier, TransferOffered)
    assert dossier.new_address is None and dossier.school is None


def test_exemption_needs_a_reason_and_only_then() -> None:
    data = copy.deepcopy(DOSSIER)
    data["compulsory_education"] = {"status": "vrijstelling", "exemption_reason": "school_abroad"}
    validate_payload("nl.leerplicht.transfer.offered", data)
    data["compulsory_education"] = {"status": "leerplichtig", "exemption_reason": "school_abroad"}
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.transfer.offered", data)
    assert info.value.field == "compulsory_education.exemption_reason"


def test_largest_dossier_still_fits_a_message_when_sealed() -> None:
    """Every bound at its maximum (ASCII): JWE then JWS each base64url-encode once."""
    data = copy.deepcopy(DOSSIER)
    text = {"given_names": "x" * 200, "family_name_prefix": "x" * 20, "family_name": "x" * 200}
    data["pupil"].update(text)
    data["guardians"] = [
        {**text, "relation": "guardian", "phone": "+" + "1" * 15, "email": "x" * 64 + "@x.nl"}
    ] * 6
    data["absence_case"]["summary"] = "x" * 5000
    data["notes"] = "x" * 5000
    attempt = {**DOSSIER["contact_attempts"][0], "by": "x" * 200, "note": "x" * 1000}
    data["contact_attempts"] = [attempt] * 100
    dossier = validate_payload("nl.leerplicht.transfer.offered", data)
    plain = len(dossier.model_dump_json().encode())
    sealed_estimate = plain * 4 / 3 * 4 / 3 + 64 * 1024  # + headers, recipients, envelope
    assert sealed_estimate < MAX_MESSAGE_BYTES


# --- other payload rules ------------------------------------------------------------------


def test_template_needs_dutch_and_right_directions() -> None:
    no_dutch = copy.deepcopy(TEMPLATE)
    del no_dutch["languages"]["nl"]
    with pytest.raises(SchemaInvalid, match="Dutch") as info:
        validate_payload("nl.leerplicht.template.published", no_dutch)
    assert info.value.field == "languages"

    arabic_ltr = copy.deepcopy(TEMPLATE)
    arabic_ltr["languages"]["ar"]["direction"] = "ltr"
    with pytest.raises(SchemaInvalid, match="ar is written rtl"):
        validate_payload("nl.leerplicht.template.published", arabic_ltr)

    german = copy.deepcopy(TEMPLATE)
    german["languages"]["de"] = german["languages"]["nl"]
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.template.published", german)
    assert info.value.field == "languages.de.[key]"


def test_template_placeholders_are_unique_and_typed() -> None:
    dup = copy.deepcopy(TEMPLATE)
    dup["placeholders"].append({"name": "naam", "type": "text"})
    with pytest.raises(SchemaInvalid, match="unique"):
        validate_payload("nl.leerplicht.template.published", dup)
    bad_type = copy.deepcopy(TEMPLATE)
    bad_type["placeholders"][0]["type"] = "html"
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.template.published", bad_type)
    assert info.value.field == "placeholders.0.type"


def test_rejection_for_other_reason_needs_a_note() -> None:
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.transfer.rejected", {"transfer_id": "tr-1", "reason": "other"})
    assert info.value.field == "note"
    validate_payload(
        "nl.leerplicht.transfer.rejected", {"transfer_id": "tr-1", "reason": "already_registered"}
    )


def test_pupil_missing_carries_no_pupil_fields() -> None:
    """The signed (not encrypted) notice may hold only the blind index and a contact point."""
    model = spec_for("nl.leerplicht.notice.pupil_missing").model
    assert set(model.model_fields) == {
        "notice_id",
        "blind_index",
        "group_key_id",
        "contact",
        "deadline",
    }
    bad = copy.deepcopy(EXAMPLES["notice.pupil_missing"])
    bad["blind_index"] = "A" * 64
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.notice.pupil_missing", bad)
    assert info.value.field == "blind_index"
