"""What a call carries over a restart (``monitor.call.held``), checked against the policy core
itself: the records are what a real session decided, as the audit log holds them, and a new
session given what they carry over (``PauseCarriedOver``) must hold the call exactly as the old one
did: paused until staff approve, and then live once the security check passes."""

from __future__ import annotations

import math

from monitor.call.held import CarriedOver, HeldPause
from monitor.record.timeline import decision_record
from policies.config import load_policy
from policies.decisions import State
from policies.events import (
    CaptureAttempt,
    Event,
    Face,
    Observation,
    ParticipantJoined,
    PauseCarriedOver,
    StaffEnd,
    StaffPause,
    StaffResume,
    Verdict,
)
from policies.reasons import Reason
from policies.session import Session

MATCH = Face(1, Verdict.MATCH, "v1", 0.3)
UNBOOKED = Face(2, Verdict.UNBOOKED, None, 0.7)


def frames(start: float, stop: float, *faces: Face) -> list[Event]:
    count = math.ceil((stop - start) / 0.1 - 1e-9)
    return [Observation(round(start + i * 0.1, 3), "dev1", faces=faces) for i in range(count)]


class Call:
    """A session and the records it leaves (staff approvals and ends written first, as the
    console does), read by a :class:`HeldPause` as they are written."""

    def __init__(self) -> None:
        self.session = Session(load_policy(), 1800.0, ("v1",), None)
        self.held = HeldPause()

    def feed(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, StaffResume):
                self.held.see("staff_action", {"action": "approve_resume"})
            if isinstance(event, StaffEnd):
                self.held.see("staff_action", {"action": "end"})
            for decision in self.session.handle(event):
                record = decision_record(decision)
                self.held.see(record.pop("kind"), record)


def rebuilt(carried: CarriedOver, t: float) -> Session:
    """The session a restarted server makes for the call, given what was carried over."""
    session = Session(load_policy(), 1800.0, ("v1",), None)
    session.handle(ParticipantJoined(t, "dev1", participant="v1"))
    if carried.reasons:
        session.handle(PauseCarriedOver(t, carried.reasons, carried.detail))
    return session


def test_a_pause_that_needs_staff_is_carried_and_holds_the_new_session_until_staff_approve() -> None:
    call = Call()
    call.feed([*frames(0.0, 3.0, MATCH), CaptureAttempt(3.0, "dev1", "screen recorder")])
    call.feed(frames(3.1, 6.0, MATCH))  # the check passed: only staff can release it
    assert call.session.awaiting_staff and call.held.route == "awaiting_staff"
    carried = call.held.carried("the server restarted")
    assert carried.reasons == (Reason.CAPTURE_ATTEMPT,) and not carried.ended

    session = rebuilt(carried, 100.0)
    assert session.state is State.PAUSED and session.awaiting_staff
    for event in frames(100.1, 110.0, MATCH):  # the devices rejoined: the check passes, still held
        session.handle(event)
    assert session.state is State.PAUSED and session.awaiting_staff
    session.handle(StaffResume(110.0, "alice"))
    assert session.state is State.LIVE


def test_a_staff_pause_and_a_capture_attempt_are_both_carried() -> None:
    call = Call()
    call.feed([*frames(0.0, 3.0, MATCH), StaffPause(3.0, "shouting", "alice"), CaptureAttempt(3.5, "dev1")])
    carried = call.held.carried("the server restarted")
    assert carried.reasons == (Reason.STAFF_PAUSE, Reason.CAPTURE_ATTEMPT)
    session = rebuilt(carried, 50.0)
    assert session.state is State.PAUSED and set(session.reasons) == set(carried.reasons)


def test_what_needs_no_staff_or_was_approved_is_not_carried() -> None:
    call = Call()
    call.feed([*frames(0.0, 3.0, MATCH), *frames(3.0, 4.5, MATCH, UNBOOKED)])
    assert call.session.state is State.PAUSED and call.held.route == "automatic"
    assert not call.held.carried("restart")  # the security check alone resumes it: nothing carried
    call.feed([StaffPause(5.0, "check", "alice"), StaffResume(5.5, "alice")])  # approved, check pending
    assert call.session.state is State.PAUSED and not call.session.awaiting_staff
    assert call.held.carried("restart").reasons == ()
    call.feed([*frames(5.6, 9.0, MATCH)])
    assert call.session.state is State.LIVE and call.held.route is None
    assert not call.held.carried("restart")


def test_a_call_staff_ended_stays_ended_even_if_its_end_was_not_recorded() -> None:
    call = Call()
    call.feed(frames(0.0, 3.0, MATCH))
    call.held.see("staff_action", {"action": "end"})  # written; the server died before acting on it
    carried = call.held.carried("the server restarted")
    assert carried.ended and carried
    ended = Call()
    ended.feed([*frames(0.0, 3.0, MATCH), StaffEnd(3.0, "over", "alice")])
    assert ended.session.state is State.ENDED and ended.held.carried("x").ended


def test_the_pause_state_record_alone_carries_what_needs_staff() -> None:
    """A server killed between committing the pause's state record and its alert: the state's
    reasons, read with the policy's staff_approval_reasons, still hold the rebuilt call."""
    call = Call()
    call.feed(frames(0.0, 3.0, MATCH))
    paused = decision_record(call.session.handle(CaptureAttempt(3.0, "dev1", "screen recorder"))[0])
    assert paused["kind"] == "state"  # the alert that follows it was never written
    staff = [r.value for r in load_policy().staff_approval_reasons]
    held = HeldPause(staff)
    held.see("state", paused)
    assert held.carried("restart").reasons == (Reason.CAPTURE_ATTEMPT,)
    without = HeldPause()  # without the policy's list only the alert would say it
    without.see("state", paused)
    assert without.route == "automatic"
