"""Guidance-only findings (a moving camera, a busy background) and a covered face, through the session."""

from __future__ import annotations

from policy_helpers import config, feed, frames, live_session, match, pending, session, timeline

from policies.decisions import State, WarningIssued
from policies.events import Event, ParticipantJoined, Role, Visibility
from policies.reasons import Reason


def test_a_moving_camera_warns_after_its_window_never_pauses_and_clears_when_still() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 900.0, match(), step=0.5, camera_moving=True) + frames(900.0, 902.0, match()))
    assert timeline(out) == [
        (4.0, "warning", "camera_moving", "dev1"),
        (900.5, "cleared", "camera_moving", "dev1"),
    ]
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert "rest your phone or tablet against something" in warning.guidance
    assert s.state is State.LIVE


def test_a_busy_background_warns_after_its_window_and_never_pauses() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 600.0, match(), step=0.5, busy_background=True))
    assert timeline(out) == [(5.0, "warning", "busy_background", "dev1")]
    assert "plain wall" in next(d for d in out if isinstance(d, WarningIssued)).guidance
    assert s.state is State.LIVE


def test_a_call_goes_live_while_the_camera_moves_in_front_of_a_busy_background() -> None:
    s = session()
    events: list[Event] = [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1")]
    events += frames(0.0, 1.0, pending(), step=0.5, camera_moving=True, busy_background=True)
    events += frames(1.0, 6.0, match(), step=0.5, camera_moving=True, busy_background=True)
    out = feed(s, events)
    assert [x for x in timeline(out) if x[1] != "identity"] == [
        (0.0, "state", "verifying", ()),
        (2.0, "warning", "camera_moving", "dev1"),
        (3.0, "warning", "busy_background", "dev1"),
        (3.0, "state", "live", ()),
    ]


def test_a_policy_file_sets_the_guidance_windows() -> None:
    s = live_session(config(camera_moving_warn_after_s=0.0, busy_background_warn_after_s=10.0))
    out = feed(s, frames(2.0, 12.5, match(), step=0.5, camera_moving=True, busy_background=True))
    assert timeline(out) == [
        (2.0, "warning", "camera_moving", "dev1"),
        (12.0, "warning", "busy_background", "dev1"),
    ]


def test_a_covered_face_warns_with_its_own_guidance_and_pauses_as_not_visible() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 7.1, match(visibility=Visibility.COVERED)))
    assert [x for x in timeline(out) if x[1] != "identity"] == [
        (2.0, "warning", "face_not_visible", "dev1"),
        (7.0, "state", "paused", ("face_not_visible",)),
        (7.0, "alert", "face_not_visible", "dev1", 1, False),
    ]
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert warning.reason is Reason.FACE_NOT_VISIBLE
    assert warning.guidance.startswith("something is in front of your face: take your hand")
    assert s.state is State.PAUSED
    # the hand goes away: the face is whole again and the recheck resumes the call
    out = feed(s, frames(7.1, 10.0, match()))
    assert (9.1, "state", "live", ()) in timeline(out)
