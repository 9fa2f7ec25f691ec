"""The operators' console logins: a name and an Argon2id password hash, with throttling.

After `MAX_FAILURES` wrong passwords in a row a login is locked for `LOCK_SECONDS`; while it is
locked even the right password is refused, so guessing costs time. An unknown name costs the
same hash computation as a known one, so the answer's timing does not tell which names exist."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import OperatorLogin, utcnow
from schemas.errors import Conflict, ContractError

NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,39}$"
_NAME = re.compile(NAME_PATTERN)
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 hashes anything, but a megabyte "password" is a denial of service
MAX_FAILURES = 5
LOCK_SECONDS = 300
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class LoginExists(Conflict):
    reason = "login_exists"


class BadLogin(ContractError):
    reason = "invalid_login"


Outcome = Literal["ok", "refused", "locked"]


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    locked_until: datetime | None = None


def validate(name: str, password: str) -> None:
    if not _NAME.fullmatch(name):
        raise BadLogin(
            "a login name is 2-40 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter",
            field="name",
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadLogin(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long", field="password")


async def add(s: AsyncSession, name: str, password: str) -> None:
    validate(name, password)
    if await s.get(OperatorLogin, name) is not None:
        raise LoginExists(f"there is already a login named {name}")
    s.add(OperatorLogin(name=name, password_hash=_hasher.hash(password)))
    await s.flush()


async def names(s: AsyncSession) -> list[str]:
    return list(await s.scalars(select(OperatorLogin.name).order_by(OperatorLogin.name)))


async def attempt(s: AsyncSession, name: str, password: str) -> Attempt:
    """Check a login; counts failures and locks the login after too many (see module doc)."""
    row = await s.get(OperatorLogin, name, with_for_update=True) if _NAME.fullmatch(name) else None
    candidate = password[:MAX_PASSWORD]
    if row is None:
        _verify(_DUMMY_HASH, candidate)
        return Attempt("refused")
    now = utcnow()
    if row.locked_until is not None and row.locked_until > now:
        return Attempt("locked", row.locked_until)
    if len(password) <= MAX_PASSWORD and _verify(row.password_hash, candidate):
        row.failed_attempts = 0
        row.locked_until = None
        row.last_login_at = now
        if _hasher.check_needs_rehash(row.password_hash):
            row.password_hash = _hasher.hash(password)
        return Attempt("ok")
    row.failed_attempts += 1
    if row.failed_attempts >= MAX_FAILURES:
        row.failed_attempts = 0
        row.locked_until = now + timedelta(seconds=LOCK_SECONDS)
        return Attempt("locked", row.locked_until)
    return Attempt("refused")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
