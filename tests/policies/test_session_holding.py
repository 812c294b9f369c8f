"""``Session.holding``: what holds a paused call now (each reason with the source it is about),
the query that what participants are told follows."""

from __future__ import annotations

from policy_helpers import feed, frames, live_session, match, paused_session, unbooked

from policies.events import (
    CaptureAttempt,
    FaultCleared,
    FaultRaised,
    ParticipantJoined,
    PauseCarriedOver,
    Role,
    StaffResume,
)
from policies.reasons import Reason


def test_nothing_holds_a_call_that_is_not_paused() -> None:
    assert live_session().holding() == ()


def test_a_finding_holds_the_call_while_it_lasts_and_the_check_is_all_that_is_left() -> None:
    s = live_session()
    feed(s, frames(1.1, 2.6, match(), unbooked()))  # an unbooked face: paused at 2.1
    assert s.state == "paused" and s.holding() == ((Reason.UNBOOKED_FACE, "dev1"),)
    # it goes away: once cleared only the security check is left (nothing holds it)
    feed(s, frames(2.6, 3.5, match()))
    assert s.state == "paused" and s.holding() == ()


def test_findings_of_both_sides_are_held_each_with_its_source() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.05, "cam-p", Role.PRISONER, "P1")])
    feed(s, frames(1.1, 2.6, match(), unbooked()))
    feed(s, frames(2.6, 4.0, match(), unbooked(), source="cam-p", role=Role.PRISONER))
    held = s.holding()
    assert (Reason.UNBOOKED_FACE, "dev1") in held and (Reason.UNBOOKED_FACE, "cam-p") in held


def test_reasons_that_need_staff_hold_the_call_until_staff_approve() -> None:
    s = live_session()
    feed(s, [CaptureAttempt(1.5, "dev1", "screen recorder")])
    assert s.holding() == ((Reason.CAPTURE_ATTEMPT, "dev1"),)
    feed(s, [StaffResume(1.6, "alice")])
    assert s.state == "paused" and s.holding() == ()
    staff = paused_session()  # a staff pause is about the whole call
    assert staff.holding() == ((Reason.STAFF_PAUSE, ""),)


def test_a_pause_carried_over_a_restart_holds_without_a_device() -> None:
    s = live_session()
    feed(s, [PauseCarriedOver(1.5, (Reason.CAPTURE_ATTEMPT,), "the server restarted")])
    assert s.holding() == ((Reason.CAPTURE_ATTEMPT, ""),)


def test_a_fault_of_the_server_holds_the_call_until_it_clears() -> None:
    s = live_session()
    feed(s, [FaultRaised(1.5, Reason.STORE_ERROR, "disk full")])
    assert s.holding() == ((Reason.STORE_ERROR, ""),)
    feed(s, [FaultCleared(1.6, Reason.STORE_ERROR)])
    assert s.state == "paused" and s.holding() == ()
