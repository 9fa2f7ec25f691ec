"""The transfer state machine: every legal and illegal step, random walks, and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import InvalidTransition, NotAuthorised
from schemas.transfers import (
    FINAL,
    OPEN,
    ROLES,
    STATES,
    STEPS,
    TRANSITIONS,
    Deadlines,
    State,
    next_state,
    party_for,
    step_of,
)

LEGAL = [
    (None, "offered", "offerer", "offered"),
    ("offered", "accepted", "receiver", "accepted"),
    ("offered", "rejected", "receiver", "rejected"),
    ("offered", "cancelled", "offerer", "cancelled"),
    ("offered", "expired", "hub", "expired"),
    ("accepted", "completed", "offerer", "completed"),
]
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def test_the_table_is_the_legal_list() -> None:
    assert {(b, s): a for b, s, _, a in LEGAL} == TRANSITIONS
    assert set(STATES) == OPEN | FINAL and not OPEN & FINAL


@pytest.mark.parametrize(("before", "step", "role", "after"), LEGAL)
def test_legal_steps(before: State | None, step: str, role: str, after: State) -> None:
    assert next_state(before, f"transfer.{step}", role) == after  # type: ignore[arg-type]
    assert next_state(before, f"nl.leerplicht.transfer.{step}", role) == after  # type: ignore[arg-type]


ILLEGAL = [
    (before, step, party_for(step))
    for before, step in product((None, *STATES), STEPS)
    if (before, step) not in TRANSITIONS
]


@pytest.mark.parametrize(("before", "step", "role"), ILLEGAL)
def test_illegal_steps_by_the_right_party_are_invalid_transitions(
    before: State | None, step: str, role: str
) -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_state(before, f"transfer.{step}", role)  # type: ignore[arg-type]
    message = caught.value.message
    assert caught.value.reason == "invalid_transition"
    if before is None:
        assert "needs an offer first" in message
    elif step == "offered":
        assert "already exists" in message
    else:
        assert f"the transfer is {before}: transfer.{step} is not possible" in message
        assert ("is final" in message) == (before in FINAL)


@pytest.mark.parametrize(
    ("before", "step", "role"),
    [(b, s, r) for b, s in product((None, *STATES), STEPS) for r in ROLES if r != party_for(s)],
)
def test_a_step_by_the_wrong_party_is_not_authorised(before: State | None, step: str, role: str) -> None:
    with pytest.raises(NotAuthorised, match=f"only the {party_for(step)} of a transfer may send"):  # type: ignore[arg-type]
        next_state(before, f"transfer.{step}", role)  # type: ignore[arg-type]


def test_messages_name_what_may_follow() -> None:
    with pytest.raises(InvalidTransition, match=r"from accepted only transfer\.completed can follow"):
        next_state("accepted", "transfer.accepted", "receiver")
    with pytest.raises(InvalidTransition, match=r"transfer\.accepted is not possible"):
        next_state("rejected", "transfer.accepted", "receiver")


def test_unknown_steps() -> None:
    for name in ("transfer.reminder", "transfer.", "notice.closed", "offer"):
        with pytest.raises(InvalidTransition, match="is not a transfer step"):
            step_of(name)
    assert step_of("accepted") == "accepted"


@given(st.lists(st.tuples(st.sampled_from(STEPS), st.sampled_from(ROLES)), max_size=30))
def test_random_walks_never_leave_the_machine(walk: list[tuple[str, str]]) -> None:
    state: State | None = None
    history: list[State] = []
    for step, role in walk:
        try:
            after = next_state(state, f"transfer.{step}", role)  # type: ignore[arg-type]
        except (InvalidTransition, NotAuthorised):
            continue
        assert after in STATES
        assert (state, step) in TRANSITIONS and role == party_for(step)  # type: ignore[arg-type]
        assert state not in FINAL  # nothing leaves a final state
        state = after
        history.append(after)
    # a walk is a prefix of: offered, then at most one answer-or-cancel-or-expiry, then completed
    assert len(history) <= 3
    assert history[:1] in ([], ["offered"])
    if len(history) == 3:
        assert history[1:] == ["accepted", "completed"]


# -- the clock ---------------------------------------------------------------------------------


def test_deadline_and_reminder() -> None:
    d = Deadlines(14, 3)
    assert d.deadline(T0) == T0 + timedelta(days=14)
    assert d.remind_at(T0) == T0 + timedelta(days=11)
    assert d.due("offered", T0, False, T0) is None
    assert d.due("offered", T0, False, T0 + timedelta(days=11) - timedelta(seconds=1)) is None
    assert d.due("offered", T0, False, T0 + timedelta(days=11)) == "remind"
    assert d.due("offered", T0, True, T0 + timedelta(days=12)) is None
    assert d.due("offered", T0, True, T0 + timedelta(days=14)) == "expire"
    assert d.due("offered", T0, False, T0 + timedelta(days=30)) == "expire"
    for state in ("accepted", "rejected", "completed", "cancelled", "expired"):
        assert d.due(state, T0, False, T0 + timedelta(days=30)) is None  # type: ignore[arg-type]


def test_reminders_can_be_off_and_bad_settings_are_refused() -> None:
    d = Deadlines(5, 0)
    assert d.remind_at(T0) is None
    assert d.due("offered", T0, False, T0 + timedelta(days=4, hours=23)) is None
    for bad in ((0, 0), (5, 5), (5, -1)):
        with pytest.raises(ValueError):
            Deadlines(*bad)
    with pytest.raises(ValueError, match="timezone-aware"):
        d.deadline(datetime(2025, 1, 6))
    with pytest.raises(ValueError, match="timezone-aware"):
        d.due("offered", T0, False, datetime(2025, 1, 6))
