"""The case life cycle as a pure state machine (complaint-rules §1, ISO 10002 stages).

received → acknowledged → assigned → investigating → replied → feedback → return visit
→ closed; with answered on the spot, not upheld (answered and closed), escalated, on hold
(clocks pause; resuming returns to where the case was) and reopened (a new handling
round, linked to the earlier one, until the customer is satisfied).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from shared.contracts.intake import CaseStatus as S


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RECORD_ASSIGNMENT = "record_assignment"
    START_INVESTIGATION = "start_investigation"
    ADD_NOTE = "add_note"
    ESCALATE = "escalate"
    HOLD = "hold"
    RESUME = "resume"
    COMMUNICATE_DECISION = "communicate_decision"
    ANSWER_ON_SPOT = "answer_on_spot"
    MARK_NOT_UPHELD = "mark_not_upheld"
    RESOLVE = "resolve"
    RECORD_FEEDBACK = "record_feedback"
    RECORD_RETURN_VISIT = "record_return_visit"
    RECORD_COMPENSATION = "record_compensation"
    REASSIGN = "reassign"
    RECORD_DELIVERY = "record_delivery"
    RECORD_PROJECT_DELIVERY = "record_project_delivery"
    CLOSE = "close"
    REOPEN = "reopen"


# The customer has been answered in these states: what follows is evaluation and closing.
ANSWERED = frozenset(
    {S.REPLIED, S.ANSWERED_ON_SPOT, S.FEEDBACK_RECEIVED, S.RESOLVED, S.RETURN_VISITED}
)
# Finished cases; they only ever move again by being reopened.
FINISHED = frozenset({S.CLOSED, S.NOT_UPHELD})
OPEN_BEFORE_ANSWER = frozenset(
    {S.RECEIVED, S.ACKNOWLEDGED, S.ASSIGNED, S.INVESTIGATING, S.ESCALATED, S.REOPENED}
)
EVERY = frozenset(S)

# Action → the states it may be taken in → the state it leads to (None: stays where it is).
_MOVES: dict[Action, tuple[frozenset[S], S | None]] = {
    Action.ACKNOWLEDGE: (frozenset({S.RECEIVED}), S.ACKNOWLEDGED),
    Action.START_INVESTIGATION: (
        frozenset({S.RECEIVED, S.ACKNOWLEDGED, S.ASSIGNED, S.ESCALATED, S.REOPENED}),
        S.INVESTIGATING,
    ),
    Action.ADD_NOTE: (EVERY, None),
    Action.ESCALATE: (OPEN_BEFORE_ANSWER - {S.ESCALATED} | {S.ON_HOLD}, S.ESCALATED),
    Action.HOLD: (OPEN_BEFORE_ANSWER - {S.RECEIVED}, S.ON_HOLD),
    Action.COMMUNICATE_DECISION: (frozenset({S.INVESTIGATING, S.ESCALATED}), S.REPLIED),
    Action.ANSWER_ON_SPOT: (frozenset({S.RECEIVED, S.ACKNOWLEDGED}), S.ANSWERED_ON_SPOT),
    Action.MARK_NOT_UPHELD: (OPEN_BEFORE_ANSWER - {S.REOPENED}, S.NOT_UPHELD),
    Action.RESOLVE: (frozenset({S.REPLIED, S.FEEDBACK_RECEIVED}), S.RESOLVED),
    Action.RECORD_COMPENSATION: (EVERY, None),
    Action.REASSIGN: (OPEN_BEFORE_ANSWER | {S.ON_HOLD}, None),
    # The repaired or replaced product reached the customer (004 篇二 5.4: the return
    # visit follows on the 2nd day); it can happen while handling or after the reply.
    Action.RECORD_DELIVERY: (OPEN_BEFORE_ANSWER | ANSWERED | {S.ON_HOLD}, None),
    # A delivered project starts its return visits (000 第四篇 五), whatever the case's state.
    Action.RECORD_PROJECT_DELIVERY: (EVERY, None),
    Action.CLOSE: (ANSWERED, S.CLOSED),
    Action.REOPEN: (ANSWERED | FINISHED, S.REOPENED),
}


class ActionNotAllowedError(Exception):
    def __init__(self, action: Action, status: S, allowed: list[Action]) -> None:
        self.action = action
        self.status = status
        self.allowed = allowed
        super().__init__(
            f"{action.value} is not allowed while the case is {status.value}; allowed: "
            + ", ".join(a.value for a in allowed)
        )


@dataclass(frozen=True)
class CaseState:
    status: S = S.RECEIVED
    held_from: S | None = None
    round: int = 1


def allowed_actions(state: CaseState) -> list[Action]:
    """Staff and customer actions possible now (the system's own assignment record aside)."""
    allowed = [action for action, (sources, _) in _MOVES.items() if state.status in sources]
    if state.status is S.ON_HOLD:
        allowed.append(Action.RESUME)
    if state.status in ANSWERED | FINISHED:
        allowed += [Action.RECORD_FEEDBACK, Action.RECORD_RETURN_VISIT]
    return sorted(allowed, key=list(Action).index)


def apply(state: CaseState, action: Action, *, satisfied: bool | None = None) -> CaseState:
    """The state after ``action``; ``satisfied`` qualifies feedback and return visits.

    An unsatisfied customer reopens the case: the result is then ``REOPENED`` in a new round.
    """
    if action is Action.RECORD_ASSIGNMENT:
        # Routing may (re)assign at any time; only a case still waiting for a handler moves.
        waiting = state.status in (S.RECEIVED, S.ACKNOWLEDGED, S.REOPENED)
        return replace(state, status=S.ASSIGNED) if waiting else state
    if action not in allowed_actions(state):
        raise ActionNotAllowedError(action, state.status, allowed_actions(state))
    if action is Action.HOLD:
        return CaseState(S.ON_HOLD, held_from=state.status, round=state.round)
    if action is Action.RESUME:
        assert state.held_from is not None
        return CaseState(state.held_from, held_from=None, round=state.round)
    if action in (Action.RECORD_FEEDBACK, Action.RECORD_RETURN_VISIT):
        if satisfied is None:
            raise ValueError(f"{action.value} needs to know whether the customer is satisfied")
        if not satisfied:
            return CaseState(S.REOPENED, round=state.round + 1)
        if state.status in FINISHED:
            return state
        target = S.FEEDBACK_RECEIVED if action is Action.RECORD_FEEDBACK else S.RETURN_VISITED
        return replace(state, status=target)
    _, target_status = _MOVES[action]
    if target_status is None:
        return state
    if action is Action.REOPEN:
        return CaseState(S.REOPENED, round=state.round + 1)
    return CaseState(target_status, held_from=None, round=state.round)
