"""The one audit-chain form: the hub's (so its existing chains keep verifying), and `verify`
names the first record that does not fit."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from schemas.audit_chain import GENESIS, Link, canonical, link, verify


def test_link_is_the_hubs_form() -> None:
    fields = {
        "time": datetime(2026, 11, 30, 12, 0, tzinfo=UTC).isoformat(),
        "recipients": ["GM0599"],
        "n": 1.5,
    }
    expected = hashlib.sha256(
        (GENESIS + "|" + json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)).encode()
    ).hexdigest()
    assert link(GENESIS, fields) == expected
    assert canonical(fields) == '{"n":1.5,"recipients":["GM0599"],"time":"2026-11-30T12:00:00+00:00"}'
    # Key order does not matter; a value does.
    assert link(GENESIS, dict(reversed(fields.items()))) == expected
    assert link(GENESIS, {**fields, "n": 2}) != expected


def chain(n: int) -> list[Link]:
    out, prev = [], GENESIS
    for i in range(n):
        fields = {"seq": i, "what": f"record {i}"}
        prev = link(prev, fields)
        out.append(Link(i + 1, out[-1].hash if out else GENESIS, prev, fields))
    return out


def test_verify_reports_the_first_bad_record() -> None:
    links = chain(5)
    assert verify(links).intact and verify(links).records == 5
    assert verify([]).intact
    edited = [*links[:2], Link(3, links[2].prev_hash, links[2].hash, {"seq": 2, "what": "x"}), *links[3:]]
    report = verify(edited)
    assert not report.intact and report.first_bad_seq == 3
    removed = [*links[:1], *links[2:]]
    assert verify(removed).first_bad_seq == 3
    swapped = [links[1], links[0], *links[2:]]
    assert verify(swapped).first_bad_seq == 2
