"""The one audit-chain form: the hub's (so its existing chains keep verifying), and `verify`
names the first record that does not fit."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from schemas.audit_chain import GENESIS, ChainReport, Link, canonical, genesis, link, verify, verify_chains


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


def keyed(key: str, n: int, first_seq: int) -> list[Link]:
    out, prev = [], genesis(key)
    for i in range(n):
        fields = {"what": f"{key} record {i}"}
        h = link(prev, fields)
        out.append(Link(first_seq + i, prev, h, fields))
        prev = h
    return out


def test_a_keyed_chain_starts_at_its_own_genesis() -> None:
    assert genesis(None) == GENESIS
    assert genesis("tenant:GM0518") == link(GENESIS, {"chain": "tenant:GM0518"})
    assert genesis("tenant:GM0518") != genesis("tenant:GM0599")
    links = keyed("tenant:GM0518", 3, 1)
    assert verify(links, "tenant:GM0518") == ChainReport(True, 3, None, "tenant:GM0518")
    # The same records read as another chain's (or as an unkeyed one) do not fit at the first.
    assert verify(links, "tenant:GM0599").first_bad_seq == 1
    assert verify(links).first_bad_seq == 1
    # A chain kept from before keys: unkeyed records under a key, told where they start.
    assert verify(chain(3), "legacy", start=GENESIS).intact


def test_verify_chains_reports_each_chain_on_its_own() -> None:
    a, b = keyed("tenant:GM0518", 3, 1), keyed("tenant:GM0599", 2, 4)
    old = chain(2)
    report = verify_chains([("legacy", old), ("tenant:GM0518", a), ("tenant:GM0599", b)], {"legacy": GENESIS})
    assert report.intact and report.records == 7 and report.first_bad_seq is None
    assert [c.key for c in report.chains] == ["legacy", "tenant:GM0518", "tenant:GM0599"]
    edited = [a[0], Link(2, a[1].prev_hash, a[1].hash, {"what": "changed"}), a[2]]
    report = verify_chains(
        [("legacy", old), ("tenant:GM0518", edited), ("tenant:GM0599", b)], {"legacy": GENESIS}
    )
    assert not report.intact and report.first_bad_seq == 2
    assert [(c.key, c.first_bad_seq) for c in report.broken] == [("tenant:GM0518", 2)]
    assert [c.intact for c in report.chains] == [True, False, True]
    # A record moved from one chain to the other fits neither.
    moved = verify_chains([("tenant:GM0518", a[1:]), ("tenant:GM0599", [a[0], *b])])
    assert {c.key for c in moved.broken} == {"tenant:GM0518", "tenant:GM0599"}
    assert verify_chains([]).intact and verify_chains([]).records == 0
