"""The one form of a hash-chained audit log, shared by the hub's processing log and the
connector's notice audit.

Each record's hash covers the previous record's hash and the record's own fields:

    hash = sha256(f"{prev_hash}|{canonical}")   canonical: the fields as JSON, keys sorted,
                                                no spaces, non-JSON values as str()

A log may hold several chains side by side, each named by a key (the hub keeps one per tenant,
so writers about different tenants never wait for each other). A keyed chain's first record
links to `genesis(key)`, the hash of a record {"chain": key} that follows `GENESIS`: the key is
in every hash of the chain, so a record moved to another chain no longer fits either. An
unkeyed chain (the connector's notice audit, the hub's log from before keyed chains) starts at
`GENESIS` itself.

Altering, removing or reordering a record breaks its chain at that record, which `verify`
reports (`verify_chains` for each chain of a log); a caller that must not go on past a broken
chain raises `AuditChainBroken`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.errors import InbeeldError

__all__ = [
    "GENESIS",
    "AuditChainBroken",
    "ChainReport",
    "ChainsReport",
    "Link",
    "canonical",
    "genesis",
    "link",
    "verify",
    "verify_chains",
]

GENESIS = "0" * 64


def canonical(fields: Mapping[str, object]) -> str:
    """The fields as the hash sees them."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def link(prev_hash: str, fields: Mapping[str, object]) -> str:
    """The hash of a record with `fields` that follows the record hashed `prev_hash`."""
    return hashlib.sha256(f"{prev_hash}|{canonical(fields)}".encode()).hexdigest()


def genesis(key: str | None) -> str:
    """What the first record of the chain `key` links to (`GENESIS` for an unkeyed chain)."""
    return GENESIS if key is None else link(GENESIS, {"chain": key})


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
    key: str | None = None  # the chain's key (None: an unkeyed chain)


def verify(links: Iterable[Link], key: str | None = None, *, start: str | None = None) -> ChainReport:
    """Recompute the chain `key` in order; report the first record that does not fit. `start`:
    what its first record links to, if not `genesis(key)` (a chain kept from before keys)."""
    prev = genesis(key) if start is None else start
    count = 0
    for record in links:
        count += 1
        if record.prev_hash != prev or record.hash != link(prev, record.fields):
            return ChainReport(False, count, record.seq, key)
        prev = record.hash
    return ChainReport(True, count, None, key)


@dataclass(frozen=True)
class ChainsReport:
    """Every chain of a log, each verified on its own (in key order)."""

    chains: tuple[ChainReport, ...]

    @property
    def intact(self) -> bool:
        return all(c.intact for c in self.chains)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)

    @property
    def broken(self) -> tuple[ChainReport, ...]:
        return tuple(c for c in self.chains if not c.intact)

    @property
    def first_bad_seq(self) -> int | None:
        """The first bad record of the first broken chain, if any."""
        return self.broken[0].first_bad_seq if self.broken else None


def verify_chains(
    chains: Iterable[tuple[str | None, Iterable[Link]]], starts: Mapping[str, str] | None = None
) -> ChainsReport:
    """Verify each (key, its links in order) on its own, in the order given: one broken chain
    leaves the others' reports as they are. `starts`: the chains that begin elsewhere than at
    `genesis(key)`."""
    begin = starts or {}
    return ChainsReport(
        tuple(verify(links, key, start=begin.get(key) if key is not None else None) for key, links in chains)
    )


class AuditChainBroken(InbeeldError):
    """An audit chain does not verify: a record was altered, removed or reordered."""

    reason = "audit_chain_broken"

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
