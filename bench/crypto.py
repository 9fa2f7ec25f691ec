"""Sealing cost against the raw primitives it is made of, measured in the same run.

    python -m bench.crypto [--quick]

For each payload size and recipient count: seal, verify (what the hub does) and open (what a
recipient does) per second, beside a hand-rolled equivalent on `cryptography` alone — per
recipient an X25519 key generation + exchange, one AES-256-GCM over the payload, one Ed25519
signature (and the reverse for open; one Ed25519 verification for verify). The ratio is the
price of standard JOSE (JSON, base64url, Concat KDF, AES-KW, header checks) over bare crypto.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import OKPKey
from rich.console import Console
from rich.table import Table

from schemas.sealed import EnvelopeBinding, open_, seal, verify

ENV = EnvelopeBinding(
    id="0b6e4f1a-3c2d-4e5f-8a9b-0c1d2e3f4a5b",
    type="nl.leerplicht.transfer.offered",
    source="urn:nld:cbs:GM0518:systeem:leerlingzaken",
    recipients=("GM0599",),
)


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: jwk[k] for k in ("kty", "crv", "x")}


Case = tuple[str, Callable[[], object], Callable[[], object]]


def _cases(payload: bytes, n: int, signer: dict[str, Any], raw_signer: Ed25519PrivateKey) -> list[Case]:
    keys = [OKPKey.generate_key("X25519").as_dict(private=True) for _ in range(n)]
    recipients = {f"GM{i:04d}": [public(k)] for i, k in enumerate(keys)}
    sender = [public(signer)]
    sealed = seal(payload, envelope=ENV, recipients=recipients, signer=signer)
    raw_keys = [X25519PrivateKey.generate() for _ in range(n)]
    raw_pubs = [k.public_key() for k in raw_keys]
    raw_verifier = raw_signer.public_key()
    cek, nonce = AESGCM.generate_key(256), os.urandom(12)
    ct = AESGCM(cek).encrypt(nonce, payload, None)
    sig = raw_signer.sign(ct)

    def raw_seal() -> None:
        for pub in raw_pubs:
            X25519PrivateKey.generate().exchange(pub)
        raw_signer.sign(AESGCM(cek).encrypt(nonce, payload, None))

    def raw_open() -> None:
        raw_verifier.verify(sig, ct)
        raw_keys[0].exchange(raw_pubs[-1])
        AESGCM(cek).decrypt(nonce, ct, None)

    return [
        (
            "seal",
            lambda: seal(payload, envelope=ENV, recipients=recipients, signer=signer),
            raw_seal,
        ),
        (
            "verify (hub)",
            lambda: verify(sealed, envelope=ENV, sender_keys=sender),
            lambda: raw_verifier.verify(sig, ct),
        ),
        (
            "open",
            lambda: open_(sealed, envelope=ENV, sender_keys=sender, my_private_keys=keys[:1]),
            raw_open,
        ),
    ]


def run(seconds: float) -> Table:
    signer = OKPKey.generate_key("Ed25519").as_dict(private=True)
    raw_signer = Ed25519PrivateKey.generate()
    table = Table(title=f"schemas.sealed vs raw cryptography ({seconds:.2f} s per cell)")
    for col in ("payload", "recipients", "operation", "sealed/s", "raw/s", "raw ÷ sealed"):
        table.add_column(col, justify="right")

    for size in (1024, 64 * 1024):
        for n in (1, 5):
            for name, ours, raw in _cases(os.urandom(size), n, signer, raw_signer):
                a, b = rate(ours, seconds), rate(raw, seconds)
                row = (
                    f"{size // 1024} KiB",
                    str(n),
                    name,
                    f"{a:,.0f}",
                    f"{b:,.0f}",
                    f"{b / a:.1f}×",
                )
                table.add_row(*row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.1 s per cell instead of 1 s")
    args = parser.parse_args()
    Console().print(run(0.1 if args.quick else 1.0))


if __name__ == "__main__":
    main()
