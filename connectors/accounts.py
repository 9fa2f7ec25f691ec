"""The workspace's local accounts: a name, a role, an Argon2id password hash (hashing and the
throttling of wrong passwords are webui.passwords'), kept in the local store.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Roles, and what they may do in the workspace:

    officer         leerplichtambtenaar: open dossiers, accept, reject, complete, cancel
    bureau_officer  a regional bureau's officer acting for this municipality: as officer
    viewer          sees the werkbak's list (states and dates), opens no dossier, acts on none
    admin           manages the workspace; sees the list, opens no dossier, acts on none;
                    may use the template studio
    editor          writes and publishes this tenant's letter templates in the template studio;
                    sees the list, opens no dossier, acts on none
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from connectors.roles import ACTING_ROLES, EDITING_ROLES, ROLES, Role
from connectors.schema import workspace_users
from connectors.store import LocalStore
from schemas.errors import Conflict, ContractError
from webui import passwords
from webui.passwords import Attempt

__all__ = [
    "ACTING_ROLES",
    "EDITING_ROLES",
    "ROLES",
    "Account",
    "AccountExists",
    "BadAccount",
    "Role",
    "add",
    "attempt",
    "get",
    "names",
]


class AccountExists(Conflict):
    reason = "account_exists"


class BadAccount(ContractError):
    reason = "invalid_account"


@dataclass(frozen=True)
class Account:
    name: str
    role: str

    @property
    def may_act(self) -> bool:
        """May open dossiers and answer or close transfers."""
        return self.role in ACTING_ROLES

    @property
    def may_act_for_members(self) -> bool:
        """In a regional bureau's workspace: may answer and close its members' transfers."""
        return self.role == "bureau_officer"

    @property
    def may_edit_templates(self) -> bool:
        """May use the template studio: edit, publish and withdraw this tenant's templates."""
        return self.role in EDITING_ROLES


@dataclass
class _Login:
    password_hash: str
    failed_attempts: int
    locked_until: datetime | None
    last_login_at: datetime | None


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


async def add(store: LocalStore, name: str, role: str, password: str) -> Account:
    """A new account; `BadAccount` for a bad name, role or password, `AccountExists`."""
    if role not in ROLES:
        raise BadAccount(f"a role is one of {', '.join(ROLES)}", field="role")
    found = passwords.problem(name, password)
    if found is not None:
        raise BadAccount(found[1], field=found[0])
    hashed = passwords.hash_password(password)
    async with store.engine.begin() as conn:
        if await conn.scalar(select(workspace_users.c.name).where(workspace_users.c.name == name)):
            raise AccountExists(f"there is already an account named {name}")
        await conn.execute(
            insert(workspace_users).values(
                name=name, role=role, password_hash=hashed, failed_attempts=0, created_at=time.time()
            )
        )
    return Account(name, role)


async def get(store: LocalStore, name: str) -> Account | None:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(select(workspace_users.c.role).where(workspace_users.c.name == name))
        ).first()
    return None if row is None else Account(name, row.role)


async def names(store: LocalStore) -> list[Account]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(workspace_users.c.name, workspace_users.c.role).order_by("name"))
        return [Account(r.name, r.role) for r in rows]


async def attempt(store: LocalStore, name: str, password: str) -> Attempt:
    """Check a login (see webui.passwords: failures counted, a lock after too many)."""
    c = workspace_users.c
    async with store.engine.begin() as conn:
        row = (
            (await conn.execute(select(workspace_users).where(c.name == name))).first()
            if passwords.valid_name(name)
            else None
        )
        if row is None:
            return passwords.refuse_unknown(password)
        login = _Login(
            row.password_hash, row.failed_attempts, _moment(row.locked_until), _moment(row.last_login_at)
        )
        result = passwords.check(login, password, datetime.now(UTC))
        await conn.execute(
            update(workspace_users)
            .where(c.name == name)
            .values(
                password_hash=login.password_hash,
                failed_attempts=login.failed_attempts,
                locked_until=_epoch(login.locked_until),
                last_login_at=_epoch(login.last_login_at),
            )
        )
    return result
