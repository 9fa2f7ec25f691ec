"""Blind index: formatting-independent, key-dependent, and the 11-test."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.blind_index import BlindIndex, blind_index, new_group_key, normalise_bsn
from schemas.errors import SchemaInvalid

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def is_valid(bsn: str) -> bool:
    return int(bsn) != 0 and sum(int(d) * w for d, w in zip(bsn, WEIGHTS)) % 11 == 0


def _check_digit(head: str) -> int:
    """The ninth digit d with sum(weights * digits) - d ≡ 0 (mod 11); 10 means no valid BSN."""
    return sum(int(d) * w for d, w in zip(head, WEIGHTS[:8])) % 11


bsns = (
    st.integers(min_value=1_000_000, max_value=99_999_999)
    .map(lambda n: f"{n:08d}")
    .filter(lambda head: _check_digit(head) < 10)
    .map(lambda head: head + str(_check_digit(head)))
)


def formatted(bsn: str, style: int) -> str:
    return [
        bsn,
        f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}",
        f" {bsn[:3]} {bsn[3:6]} {bsn[6:]} ",
        f"{bsn[:3]}-{bsn[3:6]}-{bsn[6:]}",
        bsn.lstrip("0") or "0",
        f"\t{bsn}\n",
    ][style]


@given(bsns, st.integers(0, 5), st.integers(0, 5), st.binary(min_size=32, max_size=32))
def test_same_bsn_any_formatting_same_index(bsn, a, b, key):
    assert is_valid(bsn)
    assert blind_index(formatted(bsn, a), key, "k1") == blind_index(formatted(bsn, b), key, "k1")
    assert normalise_bsn(formatted(bsn, a)) == bsn


@given(bsns, st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_different_key_different_index(bsn, k1, k2):
    if k1 != k2:
        assert blind_index(bsn, k1, "a").value_hex != blind_index(bsn, k2, "b").value_hex


@given(bsns, bsns, st.binary(min_size=32, max_size=32))
def test_different_bsn_different_index(b1, b2, key):
    if b1 != b2:
        assert blind_index(b1, key, "k").value_hex != blind_index(b2, key, "k").value_hex


def test_is_hmac_sha256_over_the_normalised_bsn():
    key = bytes(range(32))
    expected = hmac.new(key, b"111222333", hashlib.sha256).hexdigest()
    assert blind_index("1112.22.333", key, "kid") == BlindIndex("kid", expected)


@pytest.mark.parametrize("bad", ["111222334", "000000000", "12345678a", "1234567890", "", "١١١٢٢٢٣٣٣"])
def test_invalid_bsn_is_refused_without_echo(bad):
    with pytest.raises(SchemaInvalid) as exc:
        normalise_bsn(bad)
    assert not bad or bad not in str(exc.value)


def test_new_group_key():
    (id1, k1), (id2, k2) = new_group_key(), new_group_key()
    assert len(k1) == 32 and k1 != k2 and id1 != id2 and len(id1) == 43
    with pytest.raises(ValueError):
        blind_index("111222333", b"short", "k")
