"""The SDK's report of an event it cannot open (`delivery.failed`): to whom, and with what.
Its delivery through the hub is replayed in tests/security/test_key_takeover.py."""

from __future__ import annotations

from connectors import Connector
from schemas.envelope import CloudEvent
from schemas.events import EVENTS
from schemas.validation import validate_payload

FAILED = "nl.leerplicht.delivery.failed"
SENDER = "urn:nld:cbs:GM0518:systeem:leerlingzaken"


def event(short_type: str, source: str = SENDER, subject: str | None = "tr-GM0518-1") -> CloudEvent:
    return CloudEvent(
        source=source,
        type=EVENTS["nl.leerplicht." + short_type].type,
        recipients=["GM0599"],
        subject=subject,
        correlationid="c-1",
        data={"x": 1},
    )


async def test_a_report_names_the_event_and_reason_and_goes_to_its_sender_only() -> None:
    rotterdam = Connector("GM0599", "amqp://u:p@127.0.0.1:1/v", system="leerplicht")
    offer = event("transfer.offered")
    report = await rotterdam.delivery_failed_for(offer, "crypto_error")
    assert report is not None
    assert report.type == FAILED and report.recipients == ["GM0518"]
    assert report.source == rotterdam.source and report.subject == offer.subject
    assert report.correlationid == "c-1" and report.dataschema == EVENTS[FAILED].dataschema
    assert report.data == {
        "event_id": offer.id,
        "event_source": SENDER,
        "event_type": "nl.leerplicht.transfer.offered",
        "reason": "crypto_error",
    }
    validate_payload(FAILED, report.data)
    again = await rotterdam.delivery_failed_for(offer, "crypto_error")
    assert again is not None and again.id != report.id  # random: nobody can occupy it beforehand


async def test_nothing_to_report_for_hub_events_plain_events_or_our_own() -> None:
    rotterdam = Connector("GM0599", "amqp://u:p@127.0.0.1:1/v", system="leerplicht")
    hub = "urn:nld:cbs:inbeeld:systeem:hub"
    assert await rotterdam.delivery_failed_for(event("hub.rejected", hub), "schema_invalid") is None
    assert await rotterdam.delivery_failed_for(event("ping"), "schema_invalid") is None
    assert await rotterdam.delivery_failed_for(event("delivery.failed"), "schema_invalid") is None
    own = event("transfer.accepted", "urn:nld:cbs:GM0599:systeem:other")
    assert await rotterdam.delivery_failed_for(own, "crypto_error") is None
    # a sender known only by OIN, with no sealer to look it up: nobody to address
    by_oin = event("notice.pupil_found", "urn:nld:oin:00000001234567890000:systeem:x")
    assert await rotterdam.delivery_failed_for(by_oin, "bad_signature") is None
