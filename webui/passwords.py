"""Logins by name and password: Argon2id hashes, and the throttling of wrong passwords.

After `MAX_FAILURES` wrong passwords in a row a login is locked for `LOCK_SECONDS`; while it is
locked even the right password is refused, so guessing costs time. An unknown name costs the
same hash computation as a known one (`refuse_unknown`), so the answer's timing does not tell
which names exist. The store of the logins is the app's: `check` works on any record with the
fields of `Login` and changes them in place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Literal, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,39}$"
_NAME = re.compile(NAME_PATTERN)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 hashes anything, but a megabyte "password" is a denial of service
MAX_FAILURES = 5
LOCK_SECONDS = 300
_hasher = PasswordHasher()

Outcome = Literal["ok", "refused", "locked"]
Problem = Literal["name", "password"]


class Login(Protocol):
    password_hash: str
    failed_attempts: int
    locked_until: datetime | None
    last_login_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    locked_until: datetime | None = None


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def problem(name: str, password: str) -> tuple[Problem, str] | None:
    """What is wrong with a new login's name or password (field, message), or None."""
    if not valid_name(name):
        return (
            "name",
            "a login name is 2-40 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter",
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return "password", f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
    return None


@cache
def _dummy_hash() -> str:
    """The hash an unknown name is checked against: computed once, on first use (not at import,
    which would make every program that imports this module pay for an Argon2 hash)."""
    return _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def refuse_unknown(password: str) -> Attempt:
    """The answer for a name without a login, after the same work as for a known one."""
    _verify(_dummy_hash(), password[:MAX_PASSWORD])
    return Attempt("refused")


def check(login: Login, password: str, now: datetime) -> Attempt:
    """Check a password against a login; counts failures and locks it after too many."""
    if login.locked_until is not None and login.locked_until > now:
        return Attempt("locked", login.locked_until)
    if len(password) <= MAX_PASSWORD and _verify(login.password_hash, password):
        login.failed_attempts = 0
        login.locked_until = None
        login.last_login_at = now
        if _hasher.check_needs_rehash(login.password_hash):
            login.password_hash = _hasher.hash(password)
        return Attempt("ok")
    login.failed_attempts += 1
    if login.failed_attempts >= MAX_FAILURES:
        login.failed_attempts = 0
        login.locked_until = now + timedelta(seconds=LOCK_SECONDS)
        return Attempt("locked", login.locked_until)
    return Attempt("refused")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
