"""Who may send what to whom (DESIGN section 2), and how addresses expand to tenants.

Plain domain logic: the store is reached only through the `Directory` protocol, so the
rules are testable without a database and the router stays a thin AMQP edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.tenants import PUPIL_KINDS, TENANT_KINDS, TenantInfo
from schemas.envelope import CloudEvent
from schemas.errors import NotAuthorised, SourceMismatch, UnknownRecipient
from schemas.events import spec_for
from schemas.names import GROUP_PREFIX

ALL_KINDS = frozenset(TENANT_KINDS)
# Reserved for template.*: the sender's current subscribers, expanded by hub.workflows.templates.
SUBSCRIBERS = GROUP_PREFIX + "subscribers"


class Directory(Protocol):
    async def tenant(self, code: str) -> TenantInfo | None: ...
    async def group_members(self, name: str) -> list[str] | None: ...
    async def groups_of(self, code: str) -> list[str]: ...


@dataclass(frozen=True)
class Rule:
    sender_kinds: frozenset[str]
    recipient_kinds: frozenset[str] = ALL_KINDS
    single_recipient: bool = False
    groups_allowed: bool = True
    within_own_groups: bool = False
    to_subscribers: bool = False  # SUBSCRIBERS may be addressed


_TRANSFER = Rule(PUPIL_KINDS, PUPIL_KINDS, single_recipient=True, groups_allowed=False)
_REPLY = Rule(PUPIL_KINDS, PUPIL_KINDS, single_recipient=True, groups_allowed=False)

RULES: dict[str, Rule] = {
    "ping": Rule(ALL_KINDS),
    "template.published": Rule(ALL_KINDS, to_subscribers=True),
    "template.withdrawn": Rule(ALL_KINDS, to_subscribers=True),
    "transfer.offered": _TRANSFER,
    "transfer.accepted": _REPLY,
    "transfer.rejected": _REPLY,
    "transfer.completed": _REPLY,
    "transfer.cancelled": _REPLY,
    "notice.pupil_missing": Rule(PUPIL_KINDS, within_own_groups=True),
    "notice.pupil_found": _REPLY,
    "notice.closed": Rule(PUPIL_KINDS, within_own_groups=True),
    "group.key_shared": Rule(ALL_KINDS, within_own_groups=True),
    "receipt": Rule(ALL_KINDS, single_recipient=True, groups_allowed=False),
    # A recipient reports that it could not open an event, to that event's sender only
    # (hub.workflows.delivery_failures checks it received the event).
    "delivery.failed": Rule(ALL_KINDS, single_recipient=True, groups_allowed=False),
}


def uses_groups(event: CloudEvent) -> bool:
    """Whether routing `event` reads group membership (a group address or a group rule)."""
    if any(r.startswith(GROUP_PREFIX) for r in event.recipients):
        return True
    rule = RULES.get(event.short_type)
    return rule is not None and rule.within_own_groups


def check_source(sender: TenantInfo, event: CloudEvent) -> None:
    if not sender.owns_source(event.source):
        raise SourceMismatch(
            f"source {event.source} does not belong to tenant {sender.code}; "
            f"it must start with {sender.source_prefix}",
            field="source",
        )


async def resolve_recipients(sender: TenantInfo, event: CloudEvent, directory: Directory) -> list[str]:
    """Authorise `event` from `sender` and return the tenant codes it goes to (sorted, unique,
    never the sender itself). Raises NotAuthorised / UnknownRecipient with a reason."""
    spec = spec_for(event.type)
    rule = RULES.get(spec.short_type)
    if spec.hub_only or rule is None:
        raise NotAuthorised(f"only the hub sends {event.type}", field="type")
    if sender.kind not in rule.sender_kinds:
        raise NotAuthorised(f"a {sender.kind} may not send {event.type}", field="type")
    if rule.single_recipient and (len(event.recipients) != 1 or event.recipients[0].startswith(GROUP_PREFIX)):
        raise NotAuthorised(f"{event.type} goes to exactly one tenant", field="recipients")

    own_groups = set(await directory.groups_of(sender.code)) if rule.within_own_groups else set()
    allowed_members: set[str] = set()
    for g in own_groups:
        allowed_members.update(await directory.group_members(g) or [])

    result: dict[str, None] = {}
    for address in event.recipients:
        if address == SUBSCRIBERS and rule.to_subscribers:
            continue  # the workflow adds them
        if address.startswith(GROUP_PREFIX):
            name = address.removeprefix(GROUP_PREFIX)
            if not rule.groups_allowed:
                raise NotAuthorised(f"{event.type} may not be sent to a group", field="recipients")
            members = await directory.group_members(name)
            if members is None:
                raise UnknownRecipient(f"there is no group {name}", field="recipients")
            if rule.within_own_groups and name not in own_groups:
                raise NotAuthorised(f"{sender.code} is not a member of group {name}", field="recipients")
            codes: Sequence[str] = members
        else:
            if rule.within_own_groups and address not in allowed_members:
                raise NotAuthorised(f"{address} is not in a group with {sender.code}", field="recipients")
            codes = [address]
        for code in codes:
            if code == sender.code:
                continue
            tenant = await directory.tenant(code)
            if tenant is None or not tenant.active:
                if address != code:
                    continue  # a suspended member of a group: the group's others still get it
                raise UnknownRecipient(f"there is no active tenant {code}", field="recipients")
            if address == code and tenant.kind not in rule.recipient_kinds:
                raise NotAuthorised(f"a {tenant.kind} does not receive {event.type}", field="recipients")
            result[code] = None
    if not result and not (rule.to_subscribers and SUBSCRIBERS in event.recipients):
        raise UnknownRecipient("the event addresses nobody but its sender", field="recipients")
    return sorted(result)
