"""The one form of a hash-chained audit log, shared by the hub's processing log and the
connector's notice audit.

Each record's hash covers the previous record's hash and the record's own fields:

    hash = sha256(f"{prev_hash}|{canonical}")   canonical: the fields as JSON, keys sorted,
                                                no spaces, non-JSON values as str()

The first record links to `GENESIS`. Altering, removing or reordering a record breaks the
chain at that record, which `verify` reports; a
caller that must not go on past a broken chain raises `AuditChainBroken`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.errors import InbeeldError

__all__ = ["GENESIS", "AuditChainBroken", "ChainReport", "Link", "canonical", "link", "verify"]

GENESIS = "0" * 64


def canonical(fields: Mapping[str, object]) -> str:
    """The fields as the hash sees them."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def link(prev_hash: str, fields: Mapping[str, object]) -> str:
    """The hash of a record with `fields` that follows the record hashed `prev_hash`."""
    return hashlib.sha256(f"{prev_hash}|{canonical(fields)}".encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    """One stored record as the chain sees it: its sequence number (for reports), the
    hashes it holds, and the fields its hash covers."""

    seq: int
    prev_hash: str
    hash: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    records: int  # intact: how many; broken: how many were read up to the first bad one
    first_bad_seq: int | None = None


def verify(links: Iterable[Link]) -> ChainReport:
    """Recompute the chain in order; report the first record that does not fit."""
    prev = GENESIS
    count = 0
    for record in links:
        count += 1
        if record.prev_hash != prev or record.hash != link(prev, record.fields):
            return ChainReport(False, count, record.seq)
        prev = record.hash
    return ChainReport(True, count)


class AuditChainBroken(InbeeldError):
    """An audit chain does not verify: a record was altered, removed or reordered."""

    reason = "audit_chain_broken"

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
