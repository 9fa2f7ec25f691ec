"""CloudEvents conformance of the envelope, checked with the official CloudEvents Python SDK,
and the sequence extension's string form (issue 15, item 13)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import (
    CONTENT_TYPE,
    MAX_SEQUENCE,
    SEQUENCE_TYPE,
    SEQUENCE_WIDTH,
    CloudEvent,
    format_sequence,
    parse_event,
)
from schemas.errors import EnvelopeInvalid
from schemas.events import EVENTS

SOURCE = "urn:nld:cbs:GM0518:systeem:leerlingzaken"


def sdk_parse(body: bytes):
    """What a consumer using the CloudEvents SDK reads off the RabbitMQ message."""
    return from_rabbitmq(RabbitMQMessage(headers={}, content_type=CONTENT_TYPE, body=body), JSONFormat())


def event(event_type: str = "nl.leerplicht.ping", **extra: object) -> CloudEvent:
    return CloudEvent(
        source=SOURCE,
        type=event_type,
        recipients=["GM0599"],
        subject="tr-GM0518-0001",
        correlationid="flow-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        data={"text": "hallo"},
        **extra,
    )


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_the_sdk_parses_every_event_type_as_delivered(event_type):
    sent = event(event_type).with_sequence(7)
    got = sdk_parse(sent.to_bytes())
    assert got.get_id() == sent.id and got.get_type() == event_type and got.get_source() == SOURCE
    assert got.get_specversion() == "1.0" and got.get_subject() == "tr-GM0518-0001"
    assert got.get_time() == sent.time
    assert got.get_extension("sequence") == "0" * (SEQUENCE_WIDTH - 1) + "7"
    assert got.get_extension("sequencetype") == SEQUENCE_TYPE == "Integer"
    assert got.get_extension("correlationid") == "flow-1"
    assert got.get_data() == {"text": "hallo"}


def test_an_event_without_sequence_has_no_sequencetype():
    got = sdk_parse(event().to_bytes())
    assert got.get_extension("sequence") is None and got.get_extension("sequencetype") is None
    cleared = event().with_sequence(3).model_copy(update={"sequence": None})
    assert b"sequencetype" not in cleared.to_bytes()


@given(st.integers(1, MAX_SEQUENCE), st.integers(1, MAX_SEQUENCE))
@settings(max_examples=300)
def test_string_order_is_numeric_order(a, b):
    sa, sb = format_sequence(a), format_sequence(b)
    assert len(sa) == len(sb) == SEQUENCE_WIDTH
    assert (sa < sb) == (a < b)
    assert parse_event(event().with_sequence(a).to_bytes()).sequence == a


def test_the_integer_form_is_still_read_for_one_release():
    wire = json.loads(event().with_sequence(42).to_bytes())
    wire["sequence"] = 42
    del wire["sequencetype"]
    old = parse_event(json.dumps(wire).encode())
    assert old.sequence == 42
    assert json.loads(old.to_bytes())["sequence"] == format_sequence(42)  # sent on as a string


@pytest.mark.parametrize(
    "change",
    [
        {"sequence": "-1"},
        {"sequence": "42"},  # not zero-padded: its string order would not be its numeric order
        {"sequence": "0"},
        {"sequence": "1e3"},
        {"sequence": "0" * 21},
        {"sequence": "99999999999999999999"},  # beyond 2**63 - 1
        {"sequence": True},
        {"sequence": 1.5},
        {"sequencetype": "Lexical"},
    ],
)
def test_bad_sequences_are_refused(change):
    wire = {**json.loads(event().with_sequence(1).to_bytes()), **change}
    with pytest.raises(EnvelopeInvalid) as exc:
        parse_event(json.dumps(wire).encode())
    assert exc.value.field in ("sequence", "sequencetype")


def test_with_sequence_takes_an_int():
    assert event().with_sequence(2**40).sequence == 2**40
    for bad in (0, -1, MAX_SEQUENCE + 1, "5", True):
        with pytest.raises(ValueError):
            event().with_sequence(bad)  # type: ignore[arg-type]


def test_time_survives_the_sdk_round_trip():
    sent = event(time=datetime(2026, 8, 24, 7, 30, tzinfo=UTC))
    assert sdk_parse(sent.to_bytes()).get_time() == datetime(2026, 8, 24, 7, 30, tzinfo=UTC)
