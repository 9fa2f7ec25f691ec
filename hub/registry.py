"""The tenant registry: tenants and named groups of tenants (service layer over the store)."""

from __future__ import annotations

import re

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import ApiToken, Group, GroupMember, Subscription, Tenant, TenantKey, utcnow
from hub.tenants import CODE_EXAMPLES, CODE_PATTERNS, TENANT_KINDS, TenantInfo
from schemas.errors import Conflict, InbeeldError, NotFound

# Also the API's JSON Schema patterns: ASCII classes, as ECMA-262 reads them (Python's \d is Unicode).
TENANT_CODE_PATTERN = r"^(?:GM[0-9]{4}|[a-z][a-z0-9-]{1,31})$"
GROUP_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
OIN_PATTERN = r"^[0-9]{20}$"
# Free text the store keeps: no NUL (PostgreSQL text cannot hold one). A name also needs one
# character that is not white space, by Python's and ECMA-262's reckoning alike.
TEXT_PATTERN = r"^[^\x00]*$"
NAME_PATTERN = r"^[^\x00]*[^\x00\s\x1c-\x1f\x85\ufeff][^\x00]*$"
_CODE = re.compile(TENANT_CODE_PATTERN)
_GROUP = re.compile(GROUP_NAME_PATTERN)
_OIN = re.compile(OIN_PATTERN)
_NAME = re.compile(NAME_PATTERN)
_TEXT = re.compile(TEXT_PATTERN)


class RegistryError(InbeeldError):
    reason = "registry_error"


class AlreadyExists(RegistryError, Conflict):
    reason = "already_exists"


class UnknownTenants(RegistryError, NotFound):
    """A request names tenants the registry does not hold (a reference to nothing: 404)."""

    reason = "unknown_tenant"


class TenantRemoved(RegistryError, Conflict):
    """The tenant was removed (`inbeeld tenant remove`): it cannot be provisioned or reinstated."""

    reason = "tenant_removed"


async def mark_removed(s: AsyncSession, code: str) -> None:
    """Keep the row, marked removed: inactive, without broker user and inbox, out of every
    group and subscription, its API tokens revoked and its keys withdrawn. The audit chain and
    the ledger, which name it, are untouched."""
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    now = utcnow()
    tenant.removed_at = now
    tenant.active = False
    tenant.broker_username = None
    tenant.inbox = None
    await s.execute(delete(GroupMember).where(GroupMember.tenant_code == code))
    await s.execute(
        delete(Subscription).where((Subscription.tenant_code == code) | (Subscription.publisher == code))
    )
    await s.execute(
        update(ApiToken)
        .where(ApiToken.tenant_code == code, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await s.execute(
        update(TenantKey).where(TenantKey.tenant_code == code).values(status="withdrawn", updated_at=now)
    )
    await s.flush()


def _info(t: Tenant) -> TenantInfo:
    return TenantInfo(
        t.code, t.name, t.kind, t.oin, t.active, t.broker_username, t.inbox, t.removed_at is not None
    )


def validate_tenant(code: str, name: str, kind: str, oin: str | None) -> None:
    if not _CODE.fullmatch(code):
        raise RegistryError(
            f"tenant code {code!r} must be a CBS code like GM0518 or a lowercase slug like ingrado",
            field="code",
        )
    if kind not in TENANT_KINDS:
        raise RegistryError(f"kind must be one of {', '.join(TENANT_KINDS)}", field="kind")
    if not re.fullmatch(CODE_PATTERNS[kind], code):
        raise RegistryError(
            f"tenant code {code!r} does not fit kind {kind}: its code is {CODE_EXAMPLES[kind]}", field="code"
        )
    if not _NAME.fullmatch(name) or len(name) > 200:
        raise RegistryError("name must be 1 to 200 characters, not only white space, no NUL", field="name")
    if oin is not None and not _OIN.fullmatch(oin):
        raise RegistryError("an OIN is 20 digits", field="oin")


async def add_tenant(s: AsyncSession, code: str, name: str, kind: str, oin: str | None = None) -> TenantInfo:
    validate_tenant(code, name, kind, oin)
    known = await s.get(Tenant, code)
    if known is not None and known.removed_at is not None:
        raise AlreadyExists(f"tenant {code} was removed; a code is never given again", field="code")
    if known is not None:
        raise AlreadyExists(f"tenant {code} already exists", field="code")
    if oin is not None and await s.scalar(select(Tenant.code).where(Tenant.oin == oin)) is not None:
        raise AlreadyExists(f"another tenant has OIN {oin}", field="oin")
    tenant = Tenant(code=code, name=name, kind=kind, oin=oin, active=True)
    s.add(tenant)
    try:
        await s.flush()
    except IntegrityError:  # registered by a concurrent request since the checks above
        raise AlreadyExists(f"tenant {code} or OIN {oin} was registered meanwhile", field="code") from None
    return _info(tenant)


async def get_tenant(s: AsyncSession, code: str) -> TenantInfo:
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    return _info(tenant)


async def list_tenants(s: AsyncSession) -> list[TenantInfo]:
    rows = await s.scalars(select(Tenant).order_by(Tenant.code))
    return [_info(t) for t in rows]


async def tenant_by_broker_user(s: AsyncSession, username: str) -> TenantInfo | None:
    tenant = await s.scalar(select(Tenant).where(Tenant.broker_username == username))
    return _info(tenant) if tenant else None


async def set_active(s: AsyncSession, code: str, active: bool) -> TenantInfo:
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    if tenant.removed_at is not None:
        raise TenantRemoved(f"tenant {code} was removed", field="code")
    tenant.active = active
    await s.flush()
    return _info(tenant)


async def set_broker_username(s: AsyncSession, code: str, username: str) -> None:
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    tenant.broker_username = username
    await s.flush()


async def set_inbox(s: AsyncSession, code: str, inbox: str) -> None:
    tenant = await s.get(Tenant, code)
    if tenant is None:
        raise NotFound(f"no tenant {code}")
    tenant.inbox = inbox
    await s.flush()


async def add_group(s: AsyncSession, name: str, members: list[str], description: str = "") -> list[str]:
    if not _GROUP.fullmatch(name):
        raise RegistryError(f"group name {name!r} must be a lowercase slug", field="name")
    if not _TEXT.fullmatch(description) or len(description) > 300:
        raise RegistryError("a description is at most 300 characters, no NUL", field="description")
    if await s.get(Group, name) is not None:
        raise AlreadyExists(f"group {name} already exists", field="name")
    unknown = [m for m in members if await s.get(Tenant, m) is None]
    if unknown:
        raise UnknownTenants(f"unknown tenant(s): {', '.join(unknown)}", field="members")
    group = Group(name=name, description=description)
    group.members = [GroupMember(tenant_code=m) for m in dict.fromkeys(members)]
    s.add(group)
    try:
        await s.flush()
    except IntegrityError:  # created by a concurrent request since the check above
        raise AlreadyExists(f"group {name} already exists", field="name") from None
    return sorted(dict.fromkeys(members))


async def list_groups(s: AsyncSession) -> dict[str, list[str]]:
    """Every group with its sorted members: two queries, however many groups there are."""
    names = await s.scalars(select(Group.name).order_by(Group.name))
    groups: dict[str, list[str]] = {name: [] for name in names}
    members = await s.execute(
        select(GroupMember.group_name, GroupMember.tenant_code).order_by(GroupMember.tenant_code)
    )
    for name, code in members:
        groups.setdefault(name, []).append(code)
    return groups


async def group_members(s: AsyncSession, name: str) -> list[str] | None:
    group = await s.get(Group, name)
    return None if group is None else sorted(m.tenant_code for m in group.members)


async def add_member(s: AsyncSession, name: str, code: str) -> bool:
    """Put tenant `code` in group `name`; False if it was a member already."""
    if await s.get(Group, name) is None:
        raise NotFound(f"no group {name}")
    if await s.get(Tenant, code) is None:
        raise UnknownTenants(f"unknown tenant(s): {code}", field="tenant")
    if await s.get(GroupMember, (name, code)) is not None:
        return False
    s.add(GroupMember(group_name=name, tenant_code=code))
    try:
        await s.flush()
    except IntegrityError:  # added by a concurrent request since the check above
        return False
    return True


async def remove_member(s: AsyncSession, name: str, code: str) -> bool:
    """Take tenant `code` out of group `name`; False if it was not a member."""
    if await s.get(Group, name) is None:
        raise NotFound(f"no group {name}")
    member = await s.get(GroupMember, (name, code))
    if member is None:
        return False
    await s.delete(member)
    await s.flush()
    return True
