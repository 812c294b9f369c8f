"""Undecided faces, staff identity verdicts, faults of the server, pauses carried over a restart
and capture-attempt episodes, at exact media times (default policy unless stated)."""

from __future__ import annotations

import copy
import re

import pytest
from policy_helpers import (
    config,
    feed,
    frames,
    live_session,
    match,
    obs,
    pending,
    session,
    timeline,
    verifying_session,
)

from policies.config import PolicyError, parse_policy
from policies.decisions import Alert, State
from policies.events import (
    CaptureAttempt,
    Face,
    FaultCleared,
    FaultRaised,
    ParticipantJoined,
    ParticipantLeft,
    PauseCarriedOver,
    Role,
    StaffConfirmIdentity,
    StaffEnd,
    StaffRejectIdentity,
    StaffResume,
    Tick,
    Verdict,
)
from policies.reasons import Reason
from policies.session import InvalidEvent

# ---- identity_unconfirmed -----------------------------------------------------------------------


def test_an_undecided_face_warns_and_alerts_after_the_window_and_never_goes_live() -> None:
    s = verifying_session()  # dev1's face (track 5) pending since 0.5
    out = feed(s, frames(1.5, 6.0, Face(5, Verdict.PENDING, "v2", 0.54, samples=3)))
    assert [x for x in timeline(out) if x[1] != "identity"] == [
        (4.5, "warning", "identity_unconfirmed", "dev1"),
        (4.5, "state", "paused", ("identity_unconfirmed",)),
        (4.5, "alert", "identity_unconfirmed", "dev1", 5, False),
    ]
    alert = next(d for d in out if isinstance(d, Alert))
    assert alert.participant == "v2"  # the closest booked person, for staff to compare
    assert "neither confirmed" in alert.detail and "4.0 s" in alert.detail


def test_a_live_call_pauses_when_a_face_stays_undecided_and_resumes_once_it_is_confirmed() -> None:
    s = live_session()
    out = feed(s, frames(1.5, 6.0, pending()))
    assert (5.5, "state", "paused", ("identity_unconfirmed",)) in timeline(out)
    out = feed(s, frames(6.0, 9.0, match(5)))
    assert [x for x in timeline(out) if x[1] in ("state", "cleared")] == [
        (6.5, "cleared", "identity_unconfirmed", "dev1"),
        (8.0, "state", "live", ()),
    ]


def test_the_window_is_a_policy_key() -> None:
    s = session(config(identity_unconfirmed_after_s=2.0))
    feed(s, [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1")])
    out = feed(s, frames(0.0, 3.0, pending()))
    assert (2.0, "state", "paused", ("identity_unconfirmed",)) in timeline(out)
    assert parse_policy("[findings]\nidentity_unconfirmed_after_s = 3").identity_unconfirmed_after_s == 3.0


# ---- staff confirm / reject ---------------------------------------------------------------------


def test_staff_confirm_a_face_and_it_counts_as_that_person_for_the_rest_of_the_call() -> None:
    s = verifying_session()
    feed(s, frames(1.5, 5.0, pending()))
    assert s.state is State.PAUSED and s.reasons == (Reason.IDENTITY_UNCONFIRMED,)
    out = feed(s, [StaffConfirmIdentity(5.0, "dev1", 5, "v2", "officer 7")])
    assert timeline(out) == [(5.0, "identity", "dev1", 5, "v2")]
    out = feed(s, frames(5.1, 8.0, pending()))  # analysis still cannot decide: staff's verdict holds
    assert (7.0, "state", "live", ()) in timeline(out)  # clean since the confirmation


def test_staff_reject_a_face_and_it_pauses_as_unbooked() -> None:
    s = live_session()
    out = feed(s, [StaffRejectIdentity(1.5, "dev1", 1, "officer 7"), *frames(1.6, 3.0, match())])
    assert [x for x in timeline(out) if x[1] in ("identity", "state")] == [
        (1.5, "identity", "dev1", 1, None),
        (2.5, "state", "paused", ("unbooked_face",)),
    ]


def test_a_verdict_for_another_track_leaves_this_one_to_analysis() -> None:
    s = live_session()
    feed(s, [StaffRejectIdentity(1.5, "dev1", 7, "officer 7")])
    out = feed(s, frames(1.6, 4.0, match(1), match(7, "v2")))
    assert s.state is State.PAUSED and s.reasons == (Reason.UNBOOKED_FACE,)
    assert (1.6, "identity", "dev1", 7, None) in timeline(out)


def test_a_verdict_before_the_first_frame_waits_for_it() -> None:
    s = session()
    feed(s, [ParticipantJoined(0.5, "dev1", Role.VISITOR, "v1")])
    assert feed(s, [StaffConfirmIdentity(1.0, "dev1", 5, "v1")]) == []
    out = feed(s, frames(1.0, 3.5, pending(5)))
    assert (1.0, "identity", "dev1", 5, "v1") in timeline(out) and s.state is State.LIVE


def test_a_verdict_does_not_outlive_its_device() -> None:
    """A rejoined device's analysis numbers its faces afresh: track 1 may be someone else."""
    s = live_session()
    feed(s, [StaffConfirmIdentity(1.5, "dev1", 7, "v2"), ParticipantLeft(2.0, "dev1")])
    with pytest.raises(InvalidEvent, match="device 'dev1' has left the call"):
        s.handle(StaffRejectIdentity(2.5, "dev1", 1, "officer 7"))
    feed(s, [ParticipantJoined(3.0, "dev1", Role.VISITOR, "v1")])
    out = feed(s, frames(3.0, 5.0, match(1), pending(7)))
    assert (3.0, "identity", "dev1", 1, "v1") in timeline(out)  # analysis's verdicts, not staff's
    assert not any(x[1] == "identity" and x[3] == 7 for x in timeline(out))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (StaffConfirmIdentity(1.5, "dev9", 1, "v1"), "no device 'dev9' on this call"),
        (StaffRejectIdentity(1.5, "dev9", 1), "no device 'dev9' on this call"),
        (StaffConfirmIdentity(1.5, "dev1", 1, "P1"), "'P1' is not booked on 'dev1''s side"),
        (FaultRaised(1.5, Reason.UNBOOKED_FACE), "unbooked_face is not a fault"),
        (FaultCleared(1.5, Reason.TIME_UP), "time_up is not a fault"),
    ],
)
def test_an_event_naming_what_the_call_does_not_have_is_refused_and_changes_nothing(
    event: object, message: str
) -> None:
    s = live_session()
    before = copy.deepcopy(vars(s))
    with pytest.raises(InvalidEvent, match=message):
        s.handle(event)  # type: ignore[arg-type]
    assert vars(s) == before


# ---- faults of the server -----------------------------------------------------------------------


def test_a_store_fault_pauses_the_call_until_it_clears_and_the_check_passes_again() -> None:
    s = live_session()
    out = feed(s, [FaultRaised(1.5, Reason.STORE_ERROR, "database or disk is full")])
    assert timeline(out) == [
        (1.5, "state", "paused", ("store_error",)),
        (1.5, "alert", "store_error", "", None, False),
    ]
    assert next(d for d in out if isinstance(d, Alert)).detail == "database or disk is full"
    out = feed(s, [FaultRaised(2.0, Reason.STORE_ERROR, "still full"), *frames(1.6, 5.0, match())])
    assert [x for x in timeline(out) if x[1] in ("alert", "state")] == []  # no repeat, no resume
    out = feed(s, [FaultCleared(5.0, Reason.STORE_ERROR), *frames(5.0, 8.0, match())])
    assert (7.0, "state", "live", ()) in timeline(out)


def test_a_recording_fault_only_alerts_when_the_policy_says_calls_may_go_on_unrecorded() -> None:
    s = live_session(config(recording_error_pauses=False))
    out = feed(s, [FaultRaised(1.5, Reason.RECORDING_ERROR, "disk full"), *frames(1.5, 3.0, match())])
    assert [x for x in timeline(out) if x[1] in ("alert", "state")] == [
        (1.5, "alert", "recording_error", "", None, False),
    ]
    assert s.state is State.LIVE
    s = live_session()
    out = feed(s, [FaultRaised(1.5, Reason.RECORDING_ERROR, "disk full")])
    assert s.state is State.PAUSED and s.reasons == (Reason.RECORDING_ERROR,)


def test_a_fault_before_the_start_alerts_and_keeps_the_call_from_going_live() -> None:
    s = session()
    feed(s, [ParticipantJoined(-5.0, "dev1", Role.VISITOR, "v1")])
    out = feed(s, [FaultRaised(-4.0, Reason.STORE_ERROR, "read-only file system")])
    assert timeline(out) == [(-4.0, "alert", "store_error", "", None, False)]
    feed(s, frames(-4.0, 4.0, match()))
    assert s.state is State.VERIFYING
    feed(s, [FaultCleared(4.0, Reason.STORE_ERROR), *frames(4.0, 7.0, match())])
    assert s.state is State.LIVE


def test_clearing_a_fault_that_is_not_in_force_changes_nothing() -> None:
    s = live_session()
    assert feed(s, [FaultCleared(1.5, Reason.RECORDING_ERROR)]) == []
    assert s.state is State.LIVE


def test_faults_are_a_policy_section() -> None:
    assert parse_policy("[faults]\nrecording_error_pauses = false").recording_error_pauses is False
    with pytest.raises(
        PolicyError, match=re.escape("faults.recording_error_pauses: must be true or false, got 1")
    ):
        parse_policy("[faults]\nrecording_error_pauses = 1")


# ---- a pause carried over a restart -------------------------------------------------------------


def test_a_pause_that_needed_staff_still_needs_staff_after_a_restart() -> None:
    s = verifying_session()
    out = feed(s, [PauseCarriedOver(1.5, (Reason.CAPTURE_ATTEMPT, Reason.NO_FACE), "server restarted")])
    assert timeline(out) == [
        (1.5, "state", "paused", ("capture_attempt",)),
        (1.5, "alert", "capture_attempt", "", None, True),
    ]
    assert "held over from before a restart: server restarted" in out[1].detail  # type: ignore[union-attr]
    out = feed(s, frames(1.5, 5.0, match(5)))
    assert (3.5, "recheck", True) in timeline(out) and s.state is State.PAUSED
    out = feed(s, [StaffResume(5.0, "officer 7")])
    assert timeline(out) == [(5.0, "state", "live", ())]


def test_a_carried_pause_needing_no_staff_is_left_to_the_security_check() -> None:
    s = verifying_session()
    assert feed(s, [PauseCarriedOver(1.5, (Reason.UNBOOKED_FACE,))]) == []
    out = feed(s, [PauseCarriedOver(1.6, (Reason.STAFF_PAUSE,))])
    assert out[1].detail == "held over a restart"  # type: ignore[union-attr]


# ---- capture-attempt episodes -------------------------------------------------------------------


def test_repeated_capture_attempts_are_counted_on_one_alert() -> None:
    s = live_session()
    attempts = [CaptureAttempt(round(1.5 + i * 0.01, 3), "dev1", "screen recorder") for i in range(10)]
    out = feed(s, attempts)
    assert [x for x in timeline(out)] == [
        (1.5, "state", "paused", ("capture_attempt",)),
        (1.5, "alert", "capture_attempt", "dev1", None, True),
        (1.51, "repeated", "capture_attempt", "dev1", 2),
        (1.53, "repeated", "capture_attempt", "dev1", 4),
        (1.57, "repeated", "capture_attempt", "dev1", 8),
    ]
    out = feed(s, [*frames(1.6, 4.0, match()), StaffResume(4.0)])
    assert [x for x in timeline(out) if x[1] in ("repeated", "state")] == [
        (4.0, "repeated", "capture_attempt", "dev1", 10),
        (4.0, "state", "live", ()),
    ]
    out = feed(s, [CaptureAttempt(5.0, "dev1")])  # a new episode: a new alert
    assert (5.0, "alert", "capture_attempt", "dev1", None, True) in timeline(out)


def test_an_episode_whose_last_count_was_sent_ends_without_repeating_it() -> None:
    s = live_session()
    feed(s, [CaptureAttempt(1.5, "dev1"), CaptureAttempt(1.6, "dev1"), CaptureAttempt(1.7, "dev1")])
    feed(s, [CaptureAttempt(1.8, "dev1")])  # 4: sent
    out = feed(s, [StaffEnd(2.0)])
    assert [x[1] for x in timeline(out)] == ["state"]
    s = live_session()
    feed(s, [CaptureAttempt(1.5, "dev1")])
    assert [x[1] for x in timeline(feed(s, [Tick(2.0), StaffEnd(2.0)]))] == ["state"]
    assert obs(0.0).faces == ()
