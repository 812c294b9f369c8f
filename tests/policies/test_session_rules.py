"""Start, security check, staff approval, analysis time-outs, devices leaving, identity, the end."""

from __future__ import annotations

import math
from datetime import UTC

import pytest
from policy_helpers import (
    CONFIG,
    DURATION,
    config,
    feed,
    frames,
    kinds,
    live_session,
    match,
    obs,
    partial,
    pending,
    session,
    ticks,
    timeline,
    unbooked,
)

from policies.booking import Booking, Prisoner, Visitor
from policies.decisions import Alert, IdentityNoted, State
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    Face,
    ParticipantJoined,
    ParticipantLeft,
    Role,
    StaffEnd,
    StaffPause,
    StaffResume,
    Tick,
    Verdict,
)
from policies.reasons import Reason
from policies.session import Session, side_source


def states(decisions: list) -> list[tuple]:
    return [x for x in timeline(decisions) if x[1] in ("state", "recheck")]


# -- start and the first security check ----------------------------------------------------------


def test_the_call_starts_verifying_at_exactly_zero() -> None:
    s = session()
    assert s.state is State.WAITING and s.now == -math.inf and s.reasons == ()
    assert states(feed(s, [Tick(-2.0)])) == []
    assert states(feed(s, [Tick(0.7)])) == [(0.0, "state", "verifying", ())]


def test_verifying_goes_live_after_two_seconds_clean() -> None:
    s = session()
    out = feed(s, frames(0.0, 2.5, match()))
    assert states(out) == [(0.0, "state", "verifying", ()), (2.0, "state", "live", ())]


def test_an_unidentified_frame_restarts_the_clean_window() -> None:
    s = session()
    events = [*frames(0.0, 1.5, match()), obs(1.5, match(), pending()), *frames(1.6, 4.0, match())]
    assert states(feed(s, events)) == [(0.0, "state", "verifying", ()), (3.6, "state", "live", ())]


def test_the_check_never_passes_on_stale_frames() -> None:
    s = session()
    # clean at 0.0-0.5, then analysis lags: the last frame is 1 s old at 1.5, so the check breaks
    assert states(feed(s, [*frames(0.0, 0.6, match()), Tick(4.9)])) == [(0.0, "state", "verifying", ())]
    # frames again from 4.9: clean from 4.9, live 2 s later
    assert states(feed(s, frames(4.9, 7.0, match()))) == [(6.9, "state", "live", ())]
    s = session(config(recheck_fresh_within_s=10.0))
    assert states(feed(s, [*frames(0.0, 0.6, match()), Tick(4.9)]))[-1] == (2.0, "state", "live", ())


def test_a_paused_call_does_not_resume_on_stale_frames() -> None:
    s = live_session()
    feed(s, [StaffPause(1.2), StaffResume(1.3)])
    assert states(feed(s, [Tick(4.5)])) == []  # the last frame (1.0) went stale at 2.0
    assert states(feed(s, frames(4.5, 6.6, match()))) == [(6.5, "recheck", False), (6.5, "state", "live", ())]


@pytest.mark.parametrize(
    "faces",
    [
        (match(1, "v1"), match(2, "v1"), match(3, "v2")),  # more faces than booked
        (match(1, "stranger"),),  # "matched" someone not booked on this call
        (Face(1, Verdict.MATCH, None),),  # a match with no participant
        (partial(),),
        (),
    ],
    ids=["too-many", "not-booked", "no-participant", "partial", "nobody"],
)
def test_the_check_is_not_clean(faces: tuple[Face, ...]) -> None:
    s = session()
    feed(s, frames(0.0, 3.0, *faces))
    assert s.state is not State.LIVE


def test_the_check_cannot_pass_without_an_analysed_source() -> None:
    s = session()
    feed(s, [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1", analysed=False), *ticks(0.0, 30.0)])
    assert s.state is State.VERIFYING
    assert states(feed(s, [Tick(DURATION + 5)])) == [(DURATION, "state", "ended", ("time_up",))]


def test_every_analysed_source_must_be_clean() -> None:
    s = session()
    feed(s, [ParticipantJoined(-1.0, "cell", Role.PRISONER, "P1")])
    feed(s, frames(0.0, 3.0, match()))
    assert s.state is State.VERIFYING  # the prison terminal has sent nothing yet
    cell = frames(3.0, 5.1, match(1, "P1"), source="cell", role=Role.PRISONER)
    out = feed(s, [e for pair in zip(frames(3.0, 5.1, match()), cell, strict=True) for e in pair])
    assert states(out) == [(5.0, "state", "live", ())]


def test_prisoner_side_without_a_known_prisoner_accepts_any_match() -> None:
    s = Session(CONFIG, DURATION, ("v1",), None)
    feed(s, frames(0.0, 2.1, match(1, "someone"), step=0.5, source="cell", role=Role.PRISONER))
    assert s.state is State.LIVE


def test_a_non_analysed_source_that_sends_observations_becomes_analysed() -> None:
    s = session()
    feed(s, [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1", analysed=False), obs(0.0, match())])
    out = feed(s, [Tick(5.5)])
    assert (5.0, "state", "paused", ("analysis_error",)) in states(out)


# -- pauses that need staff ----------------------------------------------------------------------


def test_capture_attempt_pauses_at_once_and_needs_staff() -> None:
    s = live_session()
    out = feed(s, [CaptureAttempt(1.5, "dev1", "screen recorder started")])
    assert timeline(out) == [
        (1.5, "state", "paused", ("capture_attempt",)),
        (1.5, "alert", "capture_attempt", "dev1", None, True),
    ]
    alert = out[1]
    assert (
        isinstance(alert, Alert) and alert.participant == "v1" and alert.detail == "screen recorder started"
    )
    out = feed(s, frames(1.5, 5.0, match()))
    assert states(out) == [(3.5, "recheck", True)]
    assert s.awaiting_staff and s.state is State.PAUSED
    out = feed(s, [StaffResume(5.0, "officer 7")])
    assert states(out) == [(5.0, "state", "live", ())]
    assert not s.awaiting_staff and s.reasons == ()


def test_capture_attempt_default_detail_and_unknown_source() -> None:
    s = live_session()
    out = feed(s, [CaptureAttempt(1.5)])
    alert = out[1]
    assert isinstance(alert, Alert)
    assert (alert.source, alert.participant, alert.detail) == ("", None, "recording or screenshot attempt")


def test_staff_resume_before_the_recheck_is_remembered() -> None:
    s = live_session()
    feed(s, [StaffPause(1.5, "shouting", "officer 7")])
    out = feed(s, [StaffResume(1.6), *frames(1.5, 4.0, match())])
    assert states(out) == [(3.5, "recheck", False), (3.5, "state", "live", ())]


def test_a_staff_reason_after_the_approval_needs_a_new_approval() -> None:
    s = live_session()
    feed(s, [StaffPause(1.5), StaffResume(1.6), CaptureAttempt(1.7, "dev1")])
    out = feed(s, frames(1.5, 4.0, match()))
    assert states(out) == [(3.7, "recheck", True)]
    assert s.reasons == (Reason.STAFF_PAUSE, Reason.CAPTURE_ATTEMPT)


def test_staff_pause_note_goes_in_the_alert() -> None:
    s = live_session()
    out = feed(s, [StaffPause(1.5, "inappropriate language", "officer 7"), StaffPause(1.6, "again")])
    alerts = [d for d in out if isinstance(d, Alert)]
    assert [(a.detail, a.needs_staff) for a in alerts] == [
        ("inappropriate language (by officer 7)", True),
        ("again", True),
    ]


def test_a_finding_pause_resumes_without_staff() -> None:
    s = live_session()
    out = feed(s, frames(1.5, 2.5, match(), unbooked()) + frames(2.5, 6.0, match()))
    # unbooked from 1.5 -> pause 2.5; clean from 2.5 -> recheck 4.5 -> live
    assert states(out) == [
        (2.5, "state", "paused", ("unbooked_face",)),
        (4.5, "recheck", False),
        (4.5, "state", "live", ()),
    ]


def test_staff_approval_reasons_come_from_the_policy() -> None:
    s = live_session(config(staff_approval_reasons=(Reason.UNBOOKED_FACE,)))
    out = feed(s, frames(1.5, 2.5, match(), unbooked()) + frames(2.5, 6.0, match()))
    assert states(out)[-1] == (4.5, "recheck", True)
    assert next(d for d in out if isinstance(d, Alert)).needs_staff


def test_the_clean_window_breaking_after_a_passed_recheck_needs_a_new_recheck() -> None:
    s = live_session()
    feed(s, [CaptureAttempt(1.5), *frames(1.5, 3.6, match())])  # recheck passed at 3.5, awaiting staff
    out = feed(s, [obs(3.6, match(), pending()), StaffResume(3.7), *frames(3.8, 6.0, match())])
    assert states(out) == [(5.8, "recheck", False), (5.8, "state", "live", ())]


# -- analysis time-outs --------------------------------------------------------------------------


def test_analysis_error_when_a_joined_source_never_delivers() -> None:
    s = session()
    out = feed(s, [ParticipantJoined(-30.0, "dev1", Role.VISITOR, "v1"), Tick(10.0)])
    # counted from the start, not from the join before it
    assert timeline(out) == [
        (0.0, "state", "verifying", ()),
        (5.0, "state", "paused", ("analysis_error",)),
        (5.0, "alert", "analysis_error", "dev1", None, False),
    ]
    alert = out[2]
    assert isinstance(alert, Alert) and alert.detail == "no analysis results, for 5.0 s"


def test_analysis_timeout_counts_from_the_last_observation() -> None:
    s = live_session()
    feed(s, frames(1.5, 7.4, match()))
    out = feed(s, [AnalysisFailed(8.0, "dev1", "worker died"), Tick(20.0)])
    assert timeline(out) == [
        (12.3, "state", "paused", ("analysis_error",)),
        (12.3, "alert", "analysis_error", "dev1", None, False),
    ]
    alert = out[1]
    assert isinstance(alert, Alert) and "(worker died)" in alert.detail


def test_a_one_off_analysis_failure_does_not_pause() -> None:
    s = live_session()
    out = feed(s, [AnalysisFailed(1.5, "dev1", "decode error"), *frames(1.6, 12.0, match())])
    assert out == []


def test_analysis_recovers_after_an_error() -> None:
    s = live_session()
    out = feed(s, [Tick(8.0), *frames(8.0, 10.5, match())])
    assert states(out) == [
        (6.0, "state", "paused", ("analysis_error",)),
        (10.0, "recheck", False),
        (10.0, "state", "live", ()),
    ]


def test_analysis_failed_from_an_unknown_source_makes_it_expected() -> None:
    s = live_session()
    feed(s, frames(1.5, 3.0, match()))
    out = feed(s, [AnalysisFailed(3.0, "dev9", "cannot decode"), *frames(3.0, 8.5, match())])
    assert timeline(out) == [
        (8.0, "state", "paused", ("analysis_error",)),
        (8.0, "alert", "analysis_error", "dev9", None, False),
    ]


def test_reports_about_a_device_that_left_are_ignored() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.2, "dev2", Role.VISITOR, "v2"), obs(1.3, match(2, "v2"), source="dev2")])
    feed(s, [ParticipantLeft(1.4, "dev2")])
    out = feed(
        s, [AnalysisFailed(1.5, "dev2"), obs(1.6, unbooked(), source="dev2"), *frames(1.5, 12.0, match())]
    )
    assert out == []


def test_a_repeated_join_updates_the_device() -> None:
    s = live_session()
    feed(s, frames(1.5, 3.0, match()))
    out = feed(s, [ParticipantJoined(3.0, "dev1", Role.VISITOR, "v1", analysed=False), *ticks(3.0, 30.0)])
    assert out == []  # no longer analysed: no time-out


# -- devices leaving -----------------------------------------------------------------------------


def test_a_side_with_no_device_left_pauses_fifteen_seconds_after_the_leave() -> None:
    s = live_session()
    out = feed(s, [ParticipantLeft(1.5, "dev1"), Tick(40.0)])
    side = side_source(Role.VISITOR)
    assert timeline(out) == [
        (16.5, "state", "paused", ("no_face",)),
        (16.5, "alert", "no_face", side, None, False),
    ]
    alert = out[1]
    assert isinstance(alert, Alert) and "no device connected" in alert.detail


def test_a_grace_longer_than_the_no_face_window_pauses_when_the_grace_ends() -> None:
    s = live_session(config(reconnect_grace_s=20.0))
    out = feed(s, [ParticipantLeft(1.5, "dev1"), Tick(40.0)])
    assert states(out) == [(21.5, "state", "paused", ("no_face",))]


def test_a_rejoin_within_the_grace_changes_nothing() -> None:
    s = live_session()
    events: list[Event] = [ParticipantLeft(1.5, "dev1"), ParticipantJoined(9.0, "dev1", Role.VISITOR, "v1")]
    out = feed(s, [*events, *frames(9.0, 40.0, match())])
    assert kinds(out) == ["IdentityNoted"]  # a rejoined device's tracks are new
    assert s.state is State.LIVE


def test_a_rejoin_after_the_grace_clears_the_side_before_it_pauses() -> None:
    s = live_session()
    events: list[Event] = [
        ParticipantLeft(1.5, "dev1"),
        Tick(12.0),
        ParticipantJoined(14.0, "dev1", Role.VISITOR, "v1"),
    ]
    out = feed(s, [*events, *frames(14.0, 40.0, match())])
    assert kinds(out) == ["IdentityNoted"]
    assert s.state is State.LIVE


def test_one_of_two_devices_leaving_is_no_finding() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.2, "tablet", Role.VISITOR, "v2", analysed=False)])
    out = feed(s, [ParticipantLeft(1.5, "tablet"), *frames(1.5, 40.0, match(), step=0.5)])
    assert out == []


def test_a_departing_device_takes_its_findings_and_warnings_with_it() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.2, "tablet", Role.VISITOR, "v2")])
    out = feed(s, [obs(1.5, partial(2, "v2"), source="tablet"), obs(1.5, match())])
    assert timeline(out) == [
        (1.5, "identity", "tablet", 2, "v2"),
        (1.5, "warning", "face_not_visible", "tablet"),
    ]
    out = feed(s, [ParticipantLeft(2.0, "tablet"), *frames(2.0, 10.0, match())])
    assert timeline(out) == [(2.0, "cleared", "face_not_visible", "tablet")]


def test_leaving_twice_or_leaving_unknown_is_harmless() -> None:
    s = live_session()
    assert (
        feed(s, [ParticipantLeft(1.5, "nobody"), ParticipantLeft(1.6, "dev1"), ParticipantLeft(1.7, "dev1")])
        == []
    )


def test_a_device_may_rejoin_on_the_other_side() -> None:
    s = live_session()
    out = feed(s, [ParticipantJoined(1.5, "dev1", Role.PRISONER, "P1"), Tick(30.0)])
    # dev1 is now the prison terminal: its visitor-side frames stop (analysis_error at 6.0) and the
    # visitor side has no device left (no_face pause 15 s after the re-join moved it, at 16.5)
    assert [x for x in timeline(out) if x[1] in ("state", "alert")] == [
        (6.0, "state", "paused", ("analysis_error",)),
        (6.0, "alert", "analysis_error", "dev1", None, False),
        (16.5, "alert", "no_face", "side:visitor", None, False),
    ]
    assert s.reasons == (Reason.ANALYSIS_ERROR, Reason.NO_FACE)


# -- identity ------------------------------------------------------------------------------------


def test_identity_is_noted_when_known_and_when_it_changes() -> None:
    s = session()
    events: list[Event] = [
        obs(-5.0, pending(1)),
        obs(-4.9, match(1, "v1")),
        obs(-4.8, match(1, "v1")),
        obs(-4.7, pending(1)),
        obs(-4.6, match(1, "v2")),
        obs(-4.5, Face(1, Verdict.UNBOOKED, "v2", 0.61)),
        ParticipantLeft(-4.4, "dev1"),
        ParticipantJoined(-4.3, "dev1", Role.VISITOR, "v1"),
        obs(-4.2, Face(1, Verdict.UNBOOKED, "v2", 0.6)),
    ]
    notes = [d for d in feed(s, events) if isinstance(d, IdentityNoted)]
    assert [(n.t, n.track, n.participant, n.distance) for n in notes] == [
        (-4.9, 1, "v1", 0.3),
        (-4.6, 1, "v2", 0.3),
        (-4.5, 1, None, 0.61),
        (-4.2, 1, None, 0.6),
    ]


# -- the clock and the end -----------------------------------------------------------------------


def test_a_late_event_never_moves_time_back() -> None:
    s = live_session()
    feed(s, [Tick(3.0)])
    out = feed(s, [obs(2.5, match())])
    assert s.now == 3.0 and out == []


def test_the_call_ends_at_its_duration_whatever_comes_next() -> None:
    s = live_session()
    out = feed(s, [Tick(DURATION + 100.0)])
    assert states(out)[-1] == (DURATION, "state", "ended", ("time_up",))
    assert s.reasons == (Reason.TIME_UP,)
    assert (
        feed(s, [Tick(DURATION + 200), obs(DURATION + 201, unbooked()), CaptureAttempt(DURATION + 202)]) == []
    )


def test_time_up_while_paused_and_staff_end_while_waiting() -> None:
    s = live_session()
    feed(s, [StaffPause(2.0)])
    assert states(feed(s, [Tick(DURATION)])) == [(DURATION, "state", "ended", ("time_up",))]
    w = session()
    out = feed(w, [StaffEnd(-100.0, "cancelled", "officer 7")])
    assert timeline(out) == [(-100.0, "state", "ended", ("staff_end",))]
    assert out[0].previous is State.WAITING  # type: ignore[union-attr]


def test_for_booking_and_constructor_checks() -> None:
    from datetime import date, datetime, timedelta

    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    booking = Booking(
        "call-1",
        "HMP Example",
        Prisoner("P1", "John"),
        start,
        start + timedelta(minutes=60),
        (Visitor("v1", "Jane", date(1980, 1, 1), True, ()),),
    )
    s = Session.for_booking(booking, CONFIG)
    assert s.duration_s == 3600.0
    assert kinds(feed(s, [Tick(3600.0)])) == ["StateChanged", "StateChanged"]
    with pytest.raises(ValueError, match="duration_s must be a positive"):
        Session(CONFIG, 0, ("v1",))
    with pytest.raises(ValueError, match="duration_s must be a positive"):
        Session(CONFIG, math.nan, ("v1",))
    with pytest.raises(ValueError, match="at least one booked visitor"):
        Session(CONFIG, 60, ())


def test_bad_events_are_refused() -> None:
    s = session()
    with pytest.raises(TypeError, match="not a session event"):
        s.handle("tick")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Tick.t must be a finite number"):
        s.handle(Tick(math.nan))
    with pytest.raises(ValueError, match=r"StaffEnd.t must be a finite number"):
        s.handle(StaffEnd(math.inf))
    assert s.now == -math.inf
