from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.lifecycle import (
    FINISHED,
    Action,
    ActionNotAllowedError,
    CaseState,
    allowed_actions,
    apply,
)
from shared.contracts.intake import CaseStatus as S

NEEDS_SATISFACTION = (Action.RECORD_FEEDBACK, Action.RECORD_RETURN_VISIT)


def run(*steps: Action | tuple[Action, bool]) -> CaseState:
    state = CaseState()
    for step in steps:
        action, satisfied = step if isinstance(step, tuple) else (step, None)
        state = apply(state, action, satisfied=satisfied)
    return state


def test_the_seeds_main_flow() -> None:
    state = run(
        Action.ACKNOWLEDGE,
        Action.RECORD_ASSIGNMENT,
        Action.START_INVESTIGATION,
        Action.COMMUNICATE_DECISION,
        (Action.RECORD_FEEDBACK, True),
        Action.RESOLVE,
        (Action.RECORD_RETURN_VISIT, True),
        Action.CLOSE,
    )
    assert state == CaseState(S.CLOSED, None, 1)


def test_a_grievance_answered_on_the_spot_is_still_closed_properly() -> None:
    assert run(Action.ANSWER_ON_SPOT, Action.CLOSE).status is S.CLOSED


def test_not_upheld_is_answered_and_finished_but_can_be_reopened() -> None:
    state = run(Action.ACKNOWLEDGE, Action.MARK_NOT_UPHELD)
    assert state.status is S.NOT_UPHELD
    assert Action.CLOSE not in allowed_actions(state)
    assert apply(state, Action.REOPEN) == CaseState(S.REOPENED, None, 2)


def test_an_unsatisfied_customer_reopens_the_case_in_a_new_round() -> None:
    state = run(
        Action.START_INVESTIGATION, Action.COMMUNICATE_DECISION, (Action.RECORD_FEEDBACK, False)
    )
    assert state == CaseState(S.REOPENED, None, 2)
    state = apply(state, Action.RECORD_ASSIGNMENT)
    assert state.status is S.ASSIGNED


def test_a_return_visit_after_closing_keeps_it_closed_unless_unsatisfied() -> None:
    closed = run(Action.ANSWER_ON_SPOT, Action.CLOSE)
    assert apply(closed, Action.RECORD_RETURN_VISIT, satisfied=True) == closed
    assert apply(closed, Action.RECORD_RETURN_VISIT, satisfied=False).status is S.REOPENED


def test_hold_and_resume_return_to_where_the_case_was() -> None:
    held = run(Action.START_INVESTIGATION, Action.HOLD)
    assert held == CaseState(S.ON_HOLD, S.INVESTIGATING, 1)
    assert apply(held, Action.RESUME) == CaseState(S.INVESTIGATING, None, 1)
    assert apply(held, Action.ESCALATE) == CaseState(S.ESCALATED, None, 1)


def test_an_action_out_of_turn_names_the_allowed_ones() -> None:
    with pytest.raises(ActionNotAllowedError) as caught:
        run(Action.CLOSE)
    assert caught.value.status is S.RECEIVED
    assert Action.ACKNOWLEDGE in caught.value.allowed
    assert "acknowledge" in str(caught.value)


def test_reassignment_does_not_move_a_case_under_investigation() -> None:
    state = run(Action.START_INVESTIGATION)
    assert apply(state, Action.RECORD_ASSIGNMENT) == state


def test_feedback_must_say_whether_the_customer_is_satisfied() -> None:
    with pytest.raises(ValueError, match="satisfied"):
        apply(run(Action.ANSWER_ON_SPOT), Action.RECORD_FEEDBACK)


@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.booleans()), max_size=60))
def test_no_sequence_of_actions_reaches_an_invalid_state(steps: list[tuple[Action, bool]]) -> None:
    state = CaseState()
    for action, satisfied in steps:
        before = state
        allowed = allowed_actions(state)
        assert Action.ADD_NOTE in allowed  # a case can always be annotated: nothing is hidden
        try:
            state = apply(state, action, satisfied=satisfied)
        except ActionNotAllowedError as refused:
            assert action not in allowed
            assert refused.allowed == allowed
            assert state == before
            continue
        assert action in allowed or action is Action.RECORD_ASSIGNMENT
        assert isinstance(state.status, S)
        assert (state.status is S.ON_HOLD) == (state.held_from is not None)
        assert state.held_from is not S.ON_HOLD
        if state.round != before.round:
            assert state.round == before.round + 1
            assert state.status is S.REOPENED
        if state.status is S.CLOSED and before.status is not S.CLOSED:
            assert action is Action.CLOSE
        if before.status in FINISHED and state != before:
            assert state.status is S.REOPENED
