"""Every (state, event kind) pair of the transition table, driven through a real session."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import pytest
from policy_helpers import (
    ended_session,
    kinds,
    live_session,
    match,
    obs,
    paused_session,
    pending,
    session,
    unbooked,
    verifying_session,
    waiting_session,
)

from policies.decisions import State
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    FaultCleared,
    FaultRaised,
    Observation,
    ParticipantJoined,
    ParticipantLeft,
    PauseCarriedOver,
    Role,
    StaffConfirmIdentity,
    StaffEnd,
    StaffPause,
    StaffRejectIdentity,
    StaffResume,
    Tick,
)
from policies.reasons import Reason
from policies.session import IGNORE, ILLEGAL, TRANSITIONS, IllegalTransition, Session

W, V, L, P, E = State.WAITING, State.VERIFYING, State.LIVE, State.PAUSED, State.ENDED

SETUP: dict[State, Callable[[], Session]] = {
    W: waiting_session,
    V: verifying_session,
    L: live_session,
    P: paused_session,
    E: ended_session,
}
# Waiting sessions get their event before the start; the others at 1.5 (nothing due until 3.2).
WHEN = {W: -9.0, V: 1.5, L: 1.5, P: 1.5, E: 1.5}


def event_of(kind: type, state: State) -> Event:
    t = WHEN[state]
    face = pending() if state is V else match()
    events: dict[type, Event] = {
        Tick: Tick(t),
        Observation: obs(t, face),
        AnalysisFailed: AnalysisFailed(t, "dev1", "worker crashed"),
        CaptureAttempt: CaptureAttempt(t, "dev1", "screen recorder"),
        StaffPause: StaffPause(t, "shouting", "officer 7"),
        StaffResume: StaffResume(t, "officer 7"),
        StaffEnd: StaffEnd(t, "", "officer 7"),
        ParticipantJoined: ParticipantJoined(t, "dev2", Role.VISITOR, "v2"),
        ParticipantLeft: ParticipantLeft(t, "dev1"),
        StaffConfirmIdentity: StaffConfirmIdentity(t, "dev1", face.track, "v1", "officer 7"),
        StaffRejectIdentity: StaffRejectIdentity(t, "dev1", face.track, "officer 7"),
        FaultRaised: FaultRaised(t, Reason.STORE_ERROR, "disk full"),
        FaultCleared: FaultCleared(t, Reason.STORE_ERROR),
        PauseCarriedOver: PauseCarriedOver(t, (Reason.CAPTURE_ATTEMPT, Reason.UNBOOKED_FACE), "restart"),
    }
    return events[kind]


# (state, event kind) -> (state after, decision kinds, reasons after) or ILLEGAL
EXPECTED: dict[tuple[State, type], tuple[State, list[str], tuple[Reason, ...]] | object] = {
    (W, Tick): (W, [], ()),
    (W, Observation): (W, ["IdentityNoted"], ()),
    (W, AnalysisFailed): (W, [], ()),
    (W, CaptureAttempt): ILLEGAL,
    (W, StaffPause): ILLEGAL,
    (W, StaffResume): ILLEGAL,
    (W, StaffEnd): (E, ["StateChanged"], (Reason.STAFF_END,)),
    (W, ParticipantJoined): (W, [], ()),
    (W, ParticipantLeft): (W, [], ()),
    (V, Tick): (V, [], ()),
    (V, Observation): (V, [], ()),
    (V, AnalysisFailed): (V, [], ()),
    (V, CaptureAttempt): (P, ["StateChanged", "Alert"], (Reason.CAPTURE_ATTEMPT,)),
    (V, StaffPause): (P, ["StateChanged", "Alert"], (Reason.STAFF_PAUSE,)),
    (V, StaffResume): ILLEGAL,
    (V, StaffEnd): (E, ["StateChanged"], (Reason.STAFF_END,)),
    (V, ParticipantJoined): (V, [], ()),
    (V, ParticipantLeft): (V, [], ()),
    (L, Tick): (L, [], ()),
    (L, Observation): (L, [], ()),
    (L, AnalysisFailed): (L, [], ()),
    (L, CaptureAttempt): (P, ["StateChanged", "Alert"], (Reason.CAPTURE_ATTEMPT,)),
    (L, StaffPause): (P, ["StateChanged", "Alert"], (Reason.STAFF_PAUSE,)),
    (L, StaffResume): ILLEGAL,
    (L, StaffEnd): (E, ["StateChanged"], (Reason.STAFF_END,)),
    (L, ParticipantJoined): (L, [], ()),
    (L, ParticipantLeft): (L, [], ()),
    (P, Tick): (P, [], (Reason.STAFF_PAUSE,)),
    (P, Observation): (P, [], (Reason.STAFF_PAUSE,)),
    (P, AnalysisFailed): (P, [], (Reason.STAFF_PAUSE,)),
    (P, CaptureAttempt): (P, ["Alert"], (Reason.STAFF_PAUSE, Reason.CAPTURE_ATTEMPT)),
    (P, StaffPause): (P, ["Alert"], (Reason.STAFF_PAUSE,)),
    (P, StaffResume): (P, [], (Reason.STAFF_PAUSE,)),  # approval noted; the recheck is not done yet
    (P, StaffEnd): (E, ["StateChanged"], (Reason.STAFF_END,)),
    (P, ParticipantJoined): (P, [], (Reason.STAFF_PAUSE,)),
    (P, ParticipantLeft): (P, [], (Reason.STAFF_PAUSE,)),
    (E, Tick): (E, [], (Reason.STAFF_END,)),
    (E, Observation): (E, [], (Reason.STAFF_END,)),
    (E, AnalysisFailed): (E, [], (Reason.STAFF_END,)),
    (E, CaptureAttempt): (E, [], (Reason.STAFF_END,)),
    (E, StaffPause): ILLEGAL,
    (E, StaffResume): ILLEGAL,
    (E, StaffEnd): ILLEGAL,
    (E, ParticipantJoined): (E, [], (Reason.STAFF_END,)),
    (E, ParticipantLeft): (E, [], (Reason.STAFF_END,)),
    (W, StaffConfirmIdentity): ILLEGAL,
    (W, StaffRejectIdentity): ILLEGAL,
    (W, FaultRaised): (W, ["Alert"], ()),  # nothing to pause yet; the check cannot pass while it lasts
    (W, FaultCleared): (W, [], ()),
    (W, PauseCarriedOver): ILLEGAL,
    (V, StaffConfirmIdentity): (V, ["IdentityNoted"], ()),
    (V, StaffRejectIdentity): (V, ["IdentityNoted"], ()),  # unbooked_face pauses 0.5 s later
    (V, FaultRaised): (P, ["StateChanged", "Alert"], (Reason.STORE_ERROR,)),
    (V, FaultCleared): (V, [], ()),
    (V, PauseCarriedOver): (
        P,
        ["StateChanged", "Alert"],
        (Reason.CAPTURE_ATTEMPT,),
    ),  # only what needs staff is held
    (L, StaffConfirmIdentity): (L, [], ()),  # already that person
    (L, StaffRejectIdentity): (L, ["IdentityNoted"], ()),
    (L, FaultRaised): (P, ["StateChanged", "Alert"], (Reason.STORE_ERROR,)),
    (L, FaultCleared): (L, [], ()),
    (L, PauseCarriedOver): (P, ["StateChanged", "Alert"], (Reason.CAPTURE_ATTEMPT,)),
    (P, StaffConfirmIdentity): (P, [], (Reason.STAFF_PAUSE,)),
    (P, StaffRejectIdentity): (P, ["IdentityNoted"], (Reason.STAFF_PAUSE,)),
    (P, FaultRaised): (P, ["Alert"], (Reason.STAFF_PAUSE, Reason.STORE_ERROR)),
    (P, FaultCleared): (P, [], (Reason.STAFF_PAUSE,)),
    (P, PauseCarriedOver): (P, ["Alert"], (Reason.STAFF_PAUSE, Reason.CAPTURE_ATTEMPT)),
    (E, StaffConfirmIdentity): ILLEGAL,
    (E, StaffRejectIdentity): ILLEGAL,
    (E, FaultRaised): (E, [], (Reason.STAFF_END,)),
    (E, FaultCleared): (E, [], (Reason.STAFF_END,)),
    (E, PauseCarriedOver): (E, [], (Reason.STAFF_END,)),
}


def test_the_table_lists_every_pair_and_the_tests_cover_it() -> None:
    kinds_ = {kind for _, kind in TRANSITIONS}
    assert len(kinds_) == 14
    assert set(TRANSITIONS) == {(state, kind) for state in State for kind in kinds_}
    assert set(EXPECTED) == set(TRANSITIONS)
    for pair, rule in TRANSITIONS.items():
        assert (rule is ILLEGAL) == (EXPECTED[pair] is ILLEGAL), pair
    # Ended ignores or refuses everything; a Tick never has a handler (time passing is the advance).
    assert all(TRANSITIONS[(E, kind)] in (IGNORE, ILLEGAL) for kind in kinds_)
    assert all(TRANSITIONS[(state, Tick)] is IGNORE for state in State)


@pytest.mark.parametrize(("state", "kind"), list(EXPECTED), ids=lambda x: getattr(x, "__name__", str(x)))
def test_pair(state: State, kind: type) -> None:
    s = SETUP[state]()
    event = event_of(kind, state)
    expected = EXPECTED[(state, kind)]
    if expected is ILLEGAL:
        before = copy.deepcopy(vars(s))
        with pytest.raises(IllegalTransition, match=f"{kind.__name__} at t=.* while the call is {state}"):
            s.handle(event)
        assert vars(s) == before
        return
    assert isinstance(expected, tuple)
    after, decision_kinds, reasons = expected
    decisions = s.handle(event)
    assert kinds(decisions) == decision_kinds
    assert all(d.t == event.t for d in decisions)
    assert s.state is after
    assert s.reasons == reasons
    assert s.now == event.t


def test_legality_is_judged_after_the_clock_advance_and_an_illegal_event_is_rolled_back() -> None:
    s = session()
    s.handle(obs(-3.0, unbooked()))
    before = copy.deepcopy(vars(s))
    message = re.escape("StaffResume at t=-0.5 is not allowed while the call is waiting")
    with pytest.raises(IllegalTransition, match=message):
        s.handle(StaffResume(-0.5))
    assert vars(s) == before
    # At 0.5 the call has started and the unbooked face (seen since -3) paused it at 0: legal now.
    decisions = s.handle(StaffResume(0.5))
    assert [(type(d).__name__, d.t) for d in decisions] == [
        ("StateChanged", 0.0),
        ("StateChanged", 0.0),
        ("Alert", 0.0),
    ]
    assert s.state is P and s.reasons == (Reason.UNBOOKED_FACE,)


def test_illegal_after_an_advance_keeps_the_decisions_for_the_next_event() -> None:
    s = session()
    s.handle(ParticipantJoined(-10.0, "dev1", Role.VISITOR, "v1"))
    before = copy.deepcopy(vars(s))
    # By t=7 the call has started (verifying) and dev1 timed out (analysis_error pause at 5.0):
    # a StaffResume is then legal; at t=3 it is not (verifying), and nothing may be lost.
    with pytest.raises(IllegalTransition, match="while the call is verifying"):
        s.handle(StaffResume(3.0))
    assert vars(s) == before and s.state is W and s.now == -10.0
    decisions = s.handle(Tick(7.0))
    assert [(type(d).__name__, d.t) for d in decisions] == [
        ("StateChanged", 0.0),
        ("StateChanged", 5.0),
        ("Alert", 5.0),
    ]
    assert s.reasons == (Reason.ANALYSIS_ERROR,)
