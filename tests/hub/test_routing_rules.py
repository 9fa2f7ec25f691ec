"""Who may send what to whom: the routing rules (`hub.routing`) as a table, without a broker or
a database.

The table follows DESIGN.md section 2 ("Who may send what"): for every event type in the
catalogue, which tenant kinds may send it (section 1's kinds: municipality, regional bureau,
association, and the hub, which is no tenant) and how its recipients may be addressed. Each
case is one event type x one sender kind x one recipient shape, and asserts either the
tenants the event goes to or the refusal's reason, field and wording.

What the routing layer cannot know is left to the workflows and tested there (with a store):
that a `transfer.accepted` comes from the receiver of that offer (tests/hub/test_transfers.py),
that a `notice.pupil_found` comes from a tenant the notice asked and a `notice.closed` goes to
the notice's recipients (tests/hub/test_notices.py), that a template reaches its publisher's
subscribers (tests/e2e/test_templates.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from hub import routing
from hub.registry import RegistryError, validate_tenant
from hub.routing import RULES, SUBSCRIBERS, check_source, resolve_recipients
from hub.tenants import PUPIL_KINDS, TENANT_KINDS, TenantInfo
from schemas.envelope import CloudEvent, parse_event, source_urn
from schemas.errors import InbeeldError, UnknownType
from schemas.events import EVENTS

# --- the world the senders live in ---------------------------------------------------------


def _tenant(code: str, kind: str, *, active: bool = True, oin: str | None = None) -> TenantInfo:
    return TenantInfo(code, f"tenant {code}", kind, oin, active, f"user.{code}")


TENANTS: dict[str, TenantInfo] = {
    t.code: t
    for t in (
        _tenant("GM0518", "municipality"),  # the municipality that sends
        _tenant("rblwest", "regional_bureau"),  # the regional bureau that sends
        _tenant("ingrado", "association"),  # the association that sends
        _tenant("GM0599", "municipality"),
        _tenant("GM0307", "municipality"),
        _tenant("vng", "association"),  # an association as a recipient
        _tenant("GM0957", "municipality"),  # shares no group with any sender
        _tenant("GM0935", "municipality"),
        _tenant("GM0363", "municipality", active=False),  # suspended
    )
}
SUSPENDED = {code for code, t in TENANTS.items() if not t.active}
GROUPS: dict[str, list[str]] = {
    "buren": ["GM0307", "GM0518", "GM0599", "ingrado", "rblwest", "vng"],  # every sender is in it
    "limburg": ["GM0935", "GM0957"],  # no sender is in it
    "met-geschorste": ["GM0363", "GM0518", "GM0599", "ingrado", "rblwest"],  # a suspended member
}
# The hub is no tenant (DESIGN section 1: the operator onboards tenants, never sends as one);
# a record claiming its kind stands for anything that would try to route as the hub.
HUB = TenantInfo("hub", "the hub", "hub", None, True, "user.hub")
SENDERS: dict[str, TenantInfo] = {
    "municipality": TENANTS["GM0518"],
    "regional_bureau": TENANTS["rblwest"],
    "association": TENANTS["ingrado"],
    "hub": HUB,
}


class Directory:
    """`hub.routing.Directory` over the dictionaries above."""

    async def tenant(self, code: str) -> TenantInfo | None:
        return TENANTS.get(code)

    async def group_members(self, name: str) -> list[str] | None:
        return GROUPS.get(name)

    async def groups_of(self, code: str) -> list[str]:
        return sorted(name for name, members in GROUPS.items() if code in members)


# --- recipient shapes ------------------------------------------------------------------------

SELF = "<the sender>"
SHAPES: dict[str, list[str]] = {
    "nobody": [],
    "one_tenant": ["GM0599"],
    "several_tenants": ["GM0599", "GM0307"],
    "self": [SELF],
    "an_association": ["vng"],
    "unknown_code": ["GM9999"],
    "tenant_sharing_no_group": ["GM0957"],
    "suspended_tenant": ["GM0363"],
    "own_group": ["group:buren"],
    "group_without_sender": ["group:limburg"],
    "unknown_group": ["group:nergens"],
    "group_with_suspended_member": ["group:met-geschorste"],
    "subscribers": [SUBSCRIBERS],
}

# --- outcomes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    reason: str
    field: str
    says: str  # a fragment of the message


HUB_ONLY = Refused("not_authorised", "type", "only the hub sends")
WRONG_SENDER = Refused("not_authorised", "type", "may not send")
ONE_ONLY = Refused("not_authorised", "recipients", "goes to exactly one tenant")
WRONG_RECIPIENT_KIND = Refused("not_authorised", "recipients", "does not receive")
NOT_IN_A_GROUP_WITH = Refused("not_authorised", "recipients", "is not in a group with")
NOT_A_MEMBER = Refused("not_authorised", "recipients", "is not a member of group")
ONLY_ITSELF = Refused("unknown_recipient", "recipients", "nobody but its sender")
NO_TENANT = Refused("unknown_recipient", "recipients", "no active tenant")
NO_GROUP = Refused("unknown_recipient", "recipients", "there is no group")
NO_ENVELOPE = Refused("envelope_invalid", "recipients", "at least 1 item")
ROUTED = "routed"  # to the tenants the shape names (groups expanded, never the sender)
ROUTED_TO_NOBODY_YET = "routed, subscribers added by the workflow"

Outcome = Refused | str

# --- how each kind of event may be addressed (DESIGN section 2) -------------------------------

# `ping`: any tenant to any tenant, tenants or groups.
TO_ANYONE: Mapping[str, Outcome] = {
    "nobody": NO_ENVELOPE,
    "one_tenant": ROUTED,
    "several_tenants": ROUTED,
    "self": ONLY_ITSELF,
    "an_association": ROUTED,
    "unknown_code": NO_TENANT,
    "tenant_sharing_no_group": ROUTED,
    "suspended_tenant": NO_TENANT,
    "own_group": ROUTED,
    "group_without_sender": ROUTED,
    "unknown_group": NO_GROUP,
    # A suspended member is left out; the group's other members get the event.
    "group_with_suspended_member": ROUTED,
    "subscribers": NO_GROUP,  # reserved for template.*: no such group for anything else
}
# `template.*`: to the publisher's subscribers, which the hub expands. DESIGN names only the
# subscribers; the code also routes explicit tenants and groups beside them
# (hub.workflows.templates) - a difference reported, asserted here as the code has it.
TO_SUBSCRIBERS: Mapping[str, Outcome] = {**TO_ANYONE, "subscribers": ROUTED_TO_NOBODY_YET}
# `transfer.*` and `notice.pupil_found`: exactly one municipality or bureau, never a group.
TO_ONE_PUPIL_HOLDER: Mapping[str, Outcome] = {
    "nobody": NO_ENVELOPE,
    "one_tenant": ROUTED,
    "several_tenants": ONE_ONLY,
    "self": ONLY_ITSELF,
    "an_association": WRONG_RECIPIENT_KIND,
    "unknown_code": NO_TENANT,
    "tenant_sharing_no_group": ROUTED,
    "suspended_tenant": NO_TENANT,
    "own_group": ONE_ONLY,
    "group_without_sender": ONE_ONLY,
    "unknown_group": ONE_ONLY,
    "group_with_suspended_member": ONE_ONLY,
    "subscribers": ONE_ONLY,
}
# `receipt`, `delivery.failed`: the protocol's answers to one event's sender (not in section 2's
# table; section 3 describes the receipt). Exactly one tenant of any kind, never a group.
TO_ONE_TENANT: Mapping[str, Outcome] = {**TO_ONE_PUPIL_HOLDER, "an_association": ROUTED}
# `notice.pupil_missing`, `notice.closed`, `group.key_shared`: a group the sender belongs to,
# or members of such a group. (The notice workflow then leaves out associations, which hold
# no pupils: tests/hub/test_notices.py.)
WITHIN_OWN_GROUPS: Mapping[str, Outcome] = {
    "nobody": NO_ENVELOPE,
    "one_tenant": ROUTED,
    "several_tenants": ROUTED,
    "self": ONLY_ITSELF,
    "an_association": ROUTED,
    "unknown_code": NOT_IN_A_GROUP_WITH,  # not a member of the sender's groups, so not_authorised
    "tenant_sharing_no_group": NOT_IN_A_GROUP_WITH,
    "suspended_tenant": NO_TENANT,
    "own_group": ROUTED,
    "group_without_sender": NOT_A_MEMBER,
    "unknown_group": NO_GROUP,
    "group_with_suspended_member": ROUTED,  # to the active members
    "subscribers": NO_GROUP,
}
FROM_THE_HUB: Mapping[str, Outcome] = {shape: HUB_ONLY for shape in SHAPES} | {"nobody": NO_ENVELOPE}

ANY_TENANT = frozenset(TENANT_KINDS)
PUPIL_HOLDERS = frozenset({"municipality", "regional_bureau"})
NOBODY = frozenset[str]()  # no tenant: the hub publishes these itself

# DESIGN section 2, "Who may send what": event type -> (sender kinds, addressing).
TABLE: dict[str, tuple[frozenset[str], Mapping[str, Outcome]]] = {
    "template.published": (ANY_TENANT, TO_SUBSCRIBERS),
    "template.withdrawn": (ANY_TENANT, TO_SUBSCRIBERS),
    "transfer.offered": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),
    "transfer.accepted": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),  # the offerer only: workflow
    "transfer.rejected": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),
    "transfer.completed": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),  # the receiver only: workflow
    "transfer.cancelled": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),
    "notice.pupil_missing": (PUPIL_HOLDERS, WITHIN_OWN_GROUPS),
    "notice.pupil_found": (PUPIL_HOLDERS, TO_ONE_PUPIL_HOLDER),  # the asker only: workflow
    "notice.closed": (PUPIL_HOLDERS, WITHIN_OWN_GROUPS),  # the notice's recipients: workflow
    # "a member of the group": the code lets an association share a group key too, although
    # section 2 also says an association "publishes templates and nothing else" (reported).
    "group.key_shared": (ANY_TENANT, WITHIN_OWN_GROUPS),
    "ping": (ANY_TENANT, TO_ANYONE),
    "receipt": (ANY_TENANT, TO_ONE_TENANT),
    "delivery.failed": (ANY_TENANT, TO_ONE_TENANT),
    # `hub.*`, `key.rotated`, `transfer.expired`: the hub only. `transfer.reminder` is the
    # reminders section 2 mentions; DESIGN's list does not name it (reported).
    "hub.rejected": (NOBODY, FROM_THE_HUB),
    "hub.receipt": (NOBODY, FROM_THE_HUB),
    "hub.key_replacement_refused": (NOBODY, FROM_THE_HUB),
    "hub.alert": (NOBODY, FROM_THE_HUB),
    "key.rotated": (NOBODY, FROM_THE_HUB),
    "transfer.expired": (NOBODY, FROM_THE_HUB),
    "transfer.reminder": (NOBODY, FROM_THE_HUB),
}


def expected(short_type: str, kind: str, shape: str) -> Outcome:
    senders, addressing = TABLE[short_type]
    outcome = addressing[shape]
    if outcome in (NO_ENVELOPE, HUB_ONLY) or kind in senders:
        return outcome  # refused before the sender is looked at, or the sender may send it
    return WRONG_SENDER


def _cases() -> list[pytest.ParameterSet]:
    return [
        pytest.param(short_type, kind, shape, id=f"{short_type}-from-{kind}-to-{shape}")
        for short_type in TABLE
        for kind in SENDERS
        for shape in SHAPES
    ]


def _addresses(sender: TenantInfo, shape: str) -> list[str]:
    return [sender.code if a == SELF else a for a in SHAPES[shape]]


def _routed_to(sender: TenantInfo, shape: str) -> list[str]:
    """Where an allowed event goes: each address's tenants, groups expanded, less the sender."""
    codes: set[str] = set()
    for address in _addresses(sender, shape):
        if address == SUBSCRIBERS:
            continue
        if address.startswith("group:"):  # a group's suspended members are left out
            codes.update(c for c in GROUPS[address.removeprefix("group:")] if c not in SUSPENDED)
        else:
            codes.add(address)
    return sorted(codes - {sender.code})


def _envelope(sender: TenantInfo, short_type: str, recipients: list[str]) -> CloudEvent:
    """The event as the router has it: parsed from the wire."""
    body = {
        "specversion": "1.0",
        "id": "a8a2b7a4-0d3c-4b83-9f0e-1c2d3e4f5a6b",
        "source": source_urn(system="test", cbs=sender.code),
        "type": EVENTS["nl.leerplicht." + short_type].type,
        "recipients": recipients,
    }
    return parse_event(json.dumps(body).encode())


async def _route(sender: TenantInfo, short_type: str, shape: str) -> list[str]:
    event = _envelope(sender, short_type, _addresses(sender, shape))
    return await resolve_recipients(sender, event, Directory())


@pytest.mark.parametrize(("short_type", "kind", "shape"), _cases())
async def test_who_may_send_what_to_whom(short_type: str, kind: str, shape: str) -> None:
    sender = SENDERS[kind]
    want = expected(short_type, kind, shape)
    if isinstance(want, Refused):
        with pytest.raises(InbeeldError) as refused:
            await _route(sender, short_type, shape)
        assert (refused.value.reason, refused.value.field) == (want.reason, want.field)
        assert want.says in refused.value.message
    else:
        assert await _route(sender, short_type, shape) == _routed_to(sender, shape)


# --- the table itself -------------------------------------------------------------------------


def test_the_table_covers_the_whole_catalogue() -> None:
    """A new event type needs a row here (and a decision on who may send it)."""
    assert {spec.short_type for spec in EVENTS.values()} == set(TABLE)


def test_hub_only_types_are_exactly_those_no_tenant_sends() -> None:
    hub_only = {spec.short_type for spec in EVENTS.values() if spec.hub_only}
    assert hub_only == {t for t, (senders, _) in TABLE.items() if not senders}
    assert hub_only.isdisjoint(RULES)  # no rule could ever let a tenant send one
    assert set(RULES) == set(TABLE) - hub_only  # and every other type has one


def test_the_kinds_are_designs_kinds() -> None:
    """Section 1's tenant kinds; the hub is not among them, and no tenant can be one."""
    assert set(TENANT_KINDS) == {"municipality", "regional_bureau", "association"}
    assert PUPIL_KINDS == PUPIL_HOLDERS
    assert routing.ALL_KINDS == ANY_TENANT
    with pytest.raises(RegistryError, match="kind must be one of"):
        validate_tenant("hub", "the hub", "hub", None)


async def test_an_unknown_event_type_is_refused_as_such() -> None:
    event = CloudEvent(
        source=source_urn(system="test", cbs="GM0518"),
        type="nl.leerplicht.pupil.teleported",
        recipients=["GM0599"],
    )
    with pytest.raises(UnknownType):
        await resolve_recipients(SENDERS["municipality"], event, Directory())


# --- the source: a sender speaks only for itself ----------------------------------------------

OIN_TENANT = _tenant("GM0344", "municipality", oin="00000001001234567000")


@pytest.mark.parametrize(
    ("sender", "source", "allowed"),
    [
        pytest.param(TENANTS["GM0518"], "urn:nld:cbs:GM0518:systeem:leerplicht", True, id="own-cbs-code"),
        pytest.param(
            TENANTS["GM0518"], "urn:nld:cbs:GM0599:systeem:leerplicht", False, id="another-tenants-code"
        ),
        pytest.param(TENANTS["GM0518"], "urn:nld:cbs:GM05180:systeem:x", False, id="own-code-as-a-prefix"),
        pytest.param(OIN_TENANT, "urn:nld:oin:00000001001234567000:systeem:x", True, id="own-oin"),
        pytest.param(
            OIN_TENANT, "urn:nld:cbs:GM0344:systeem:x", False, id="code-of-a-tenant-that-has-an-oin"
        ),
        pytest.param(
            TENANTS["ingrado"], "urn:nld:cbs:ingrado:systeem:sjablonen", True, id="association-slug"
        ),
    ],
)
def test_the_source_belongs_to_the_sender(sender: TenantInfo, source: str, allowed: bool) -> None:
    event = CloudEvent(source=source, type="nl.leerplicht.ping", recipients=["GM0599"])
    if allowed:
        check_source(sender, event)
    else:
        with pytest.raises(InbeeldError) as refused:
            check_source(sender, event)
        assert (refused.value.reason, refused.value.field) == ("source_mismatch", "source")
