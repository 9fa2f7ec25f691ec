"""The pupil-transfer state machine (DESIGN section 2, "Transfers"): shared domain knowledge,
pure Python, no I/O. The hub enforces it on metadata; a connector may use it to know what it
can still send.

    (none) --offered[offerer]--> offered --accepted[receiver]--> accepted --completed[offerer]--> completed
                                 offered --rejected[receiver]--> rejected
                                 offered --cancelled[offerer]--> cancelled
                                 offered --expired[hub]-------->  expired   (no answer by the deadline)

Every state but `offered` and `accepted` is final. A step by the wrong party raises
`NotAuthorised`; a step its current state forbids raises `InvalidTransition`. Messages name
the step, the state and what would be allowed — never anything about the pupil.

Timing (`Deadlines`) takes the clock as an argument: the receiver gets one reminder
`reminder_days` before the answer deadline, `deadline_days` after the offer; at the deadline
an unanswered offer expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from schemas.errors import InvalidTransition, NotAuthorised

__all__ = [
    "ANSWER_STEPS",
    "FINAL",
    "OPEN",
    "ROLES",
    "STATES",
    "STEPS",
    "TRANSITIONS",
    "Deadlines",
    "Role",
    "State",
    "Step",
    "next_state",
    "party_for",
    "step_of",
]

State = Literal["offered", "accepted", "rejected", "completed", "cancelled", "expired"]
Step = Literal["offered", "accepted", "rejected", "completed", "cancelled", "expired"]
Role = Literal["offerer", "receiver", "hub"]

STATES: tuple[State, ...] = get_args(State)
STEPS: tuple[Step, ...] = get_args(Step)
ROLES: tuple[Role, ...] = get_args(Role)
OPEN: frozenset[State] = frozenset({"offered", "accepted"})
FINAL: frozenset[State] = frozenset(STATES) - OPEN
ANSWER_STEPS: frozenset[Step] = frozenset({"accepted", "rejected"})

# (state before, step) -> state after; `None` is "no transfer yet".
TRANSITIONS: dict[tuple[State | None, Step], State] = {
    (None, "offered"): "offered",
    ("offered", "accepted"): "accepted",
    ("offered", "rejected"): "rejected",
    ("offered", "cancelled"): "cancelled",
    ("offered", "expired"): "expired",
    ("accepted", "completed"): "completed",
}

_WHO: dict[Step, Role] = {
    "offered": "offerer",
    "accepted": "receiver",
    "rejected": "receiver",
    "completed": "offerer",
    "cancelled": "offerer",
    "expired": "hub",
}

_PREFIXES = ("nl.leerplicht.transfer.", "transfer.")


def step_of(event_type: str) -> Step:
    """`accepted` for `transfer.accepted` or `nl.leerplicht.transfer.accepted` (or `accepted`)."""
    name = event_type
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    if name not in STEPS:
        raise InvalidTransition(f"{event_type} is not a transfer step", field="type")
    return name


def party_for(step: Step) -> Role:
    """The one party that may take `step`."""
    return _WHO[step]


def next_state(current: State | None, event_short_type: str, actor_role: Role) -> State:
    """The state after `event_short_type` (e.g. `transfer.accepted`) taken by `actor_role` in
    `current` (None before the offer). Raises `NotAuthorised` when another party must take
    that step, `InvalidTransition` when the current state forbids it."""
    step = step_of(event_short_type)
    who = _WHO[step]
    if actor_role != who:
        raise NotAuthorised(f"only the {who} of a transfer may send transfer.{step}", field="type")
    after = TRANSITIONS.get((current, step))
    if after is None:
        if current is None:
            raise InvalidTransition(f"there is no transfer yet; transfer.{step} needs an offer first")
        if step == "offered":
            raise InvalidTransition("this transfer already exists; a new offer needs a new transfer id")
        allowed = sorted(s for (before, s) in TRANSITIONS if before == current)
        if allowed:
            hint = f"from {current} only {', '.join('transfer.' + a for a in allowed)} can follow"
        else:
            hint = f"{current} is final"
        raise InvalidTransition(f"the transfer is {current}: transfer.{step} is not possible ({hint})")
    return after


@dataclass(frozen=True)
class Deadlines:
    """When the receiver must answer an offer and when it is reminded (whole days)."""

    deadline_days: int = 14
    reminder_days: int = 3

    def __post_init__(self) -> None:
        if self.deadline_days < 1:
            raise ValueError("deadline_days must be at least 1")
        if not 0 <= self.reminder_days < self.deadline_days:
            raise ValueError("reminder_days must be at least 0 and less than deadline_days")

    def deadline(self, offered_at: datetime) -> datetime:
        _aware(offered_at)
        return offered_at + timedelta(days=self.deadline_days)

    def remind_at(self, offered_at: datetime) -> datetime | None:
        """When to remind the receiver; None when reminders are off (`reminder_days` 0)."""
        if self.reminder_days == 0:
            return None
        return self.deadline(offered_at) - timedelta(days=self.reminder_days)

    def due(
        self, state: State, offered_at: datetime, reminded: bool, now: datetime
    ) -> Literal["remind", "expire"] | None:
        """What time has made due for a transfer at `now`: an expiry, a reminder, or nothing."""
        _aware(now)
        if state != "offered":
            return None
        if now >= self.deadline(offered_at):
            return "expire"
        remind = self.remind_at(offered_at)
        if not reminded and remind is not None and now >= remind:
            return "remind"
        return None


def _aware(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("transfer times must be timezone-aware")
