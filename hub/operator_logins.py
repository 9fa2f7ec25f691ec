"""The operators' console logins: a name and an Argon2id password hash, with throttling
(webui.passwords: the hashing, the lock after too many wrong passwords, the same cost for an
unknown name)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import OperatorLogin, utcnow
from schemas.errors import Conflict, ContractError
from webui import passwords
from webui.passwords import LOCK_SECONDS, MAX_FAILURES, MAX_PASSWORD, MIN_PASSWORD, NAME_PATTERN, Attempt

__all__ = [
    "LOCK_SECONDS",
    "MAX_FAILURES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "NAME_PATTERN",
    "Attempt",
    "BadLogin",
    "LoginExists",
    "add",
    "attempt",
    "names",
    "validate",
]


class LoginExists(Conflict):
    reason = "login_exists"


class BadLogin(ContractError):
    reason = "invalid_login"


def validate(name: str, password: str) -> None:
    found = passwords.problem(name, password)
    if found is not None:
        raise BadLogin(found[1], field=found[0])


async def add(s: AsyncSession, name: str, password: str) -> None:
    validate(name, password)
    if await s.get(OperatorLogin, name) is not None:
        raise LoginExists(f"there is already a login named {name}")
    s.add(OperatorLogin(name=name, password_hash=passwords.hash_password(password)))
    await s.flush()


async def names(s: AsyncSession) -> list[str]:
    return list(await s.scalars(select(OperatorLogin.name).order_by(OperatorLogin.name)))


async def attempt(s: AsyncSession, name: str, password: str) -> Attempt:
    """Check a login; counts failures and locks the login after too many (see webui.passwords)."""
    row = await s.get(OperatorLogin, name, with_for_update=True) if passwords.valid_name(name) else None
    if row is None:
        return passwords.refuse_unknown(password)
    return passwords.check(row, password, utcnow())
