"""Debounced findings: each rule and window at exact media times (default policy unless stated)."""

from __future__ import annotations

import pytest
from policy_helpers import (
    config,
    dark,
    feed,
    frames,
    kinds,
    live_session,
    match,
    obs,
    partial,
    session,
    timeline,
    unbooked,
)

from policies.decisions import Alert, State, WarningIssued
from policies.events import Lighting, ParticipantJoined, Role, Tick, Visibility
from policies.reasons import Reason


def test_unbooked_face_pauses_exactly_one_second_after_it_is_confirmed() -> None:
    s = live_session()
    out = feed(s, frames(1.5, 2.0, match()) + frames(2.0, 4.0, match(), unbooked()))
    assert timeline(out) == [
        (2.0, "identity", "dev1", 9, None),
        (3.0, "state", "paused", ("unbooked_face",)),
        (3.0, "alert", "unbooked_face", "dev1", 9, False),
    ]
    alert = next(d for d in out if isinstance(d, Alert))
    assert alert.participant == "v1"  # the device's owner: the unbooked face has no participant
    assert "matches nobody booked" in alert.detail and "for 1.0 s" in alert.detail


def test_a_one_frame_unbooked_blink_neither_alerts_nor_pauses() -> None:
    s = live_session()
    out = feed(s, [obs(2.0, match(), unbooked()), *frames(2.1, 5.0, match())])
    assert timeline(out) == [(2.0, "identity", "dev1", 9, None)]
    assert s.state is State.LIVE


def test_hysteresis_keeps_a_finding_through_a_short_gap() -> None:
    s = live_session()
    events = frames(2.0, 2.4, match(), unbooked()) + frames(2.4, 2.8, match())
    events += frames(2.8, 3.5, match(), unbooked())
    out = feed(s, events)
    # gap 2.4-2.8 is shorter than clear_after_s (0.5): the finding seen since 2.0 pauses at 3.0
    assert (3.0, "state", "paused", ("unbooked_face",)) in timeline(out)


def test_a_gap_longer_than_the_clear_window_restarts_the_finding() -> None:
    s = live_session()
    events = frames(2.0, 2.5, match(), unbooked()) + frames(2.5, 3.2, match())
    events += frames(3.2, 4.5, match(), unbooked())
    out = feed(s, events)
    # absent from 2.5, cleared at 3.0; seen again at 3.2 -> pause at 4.2
    assert [x for x in timeline(out) if x[1] == "state"] == [(4.2, "state", "paused", ("unbooked_face",))]


def test_too_many_faces_on_the_visitor_side() -> None:
    s = live_session()
    three = (match(1, "v1"), match(2, "v2"), match(3, "v2"))
    out = feed(s, frames(2.0, 3.1, *three))
    assert [x for x in timeline(out) if x[1] in ("state", "alert")] == [
        (3.0, "state", "paused", ("too_many_faces",)),
        (3.0, "alert", "too_many_faces", "dev1", None, False),
    ]
    alert = next(d for d in out if isinstance(d, Alert))
    assert "(3 faces, 2 booked)" in alert.detail


def test_two_faces_on_the_prisoner_side_are_too_many() -> None:
    s = session()
    two = (match(1, "P1"), match(2, "P1"))
    pris = [obs(t, *two, source="cell", role=Role.PRISONER) for t in (0.0, 0.5, 1.0)]
    out = feed(s, pris)
    assert (1.0, "state", "paused", ("too_many_faces",)) in timeline(out)


def test_partial_face_warns_at_once_pauses_after_five_seconds() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 7.1, partial()))
    assert [x for x in timeline(out) if x[1] != "identity"] == [
        (2.0, "warning", "face_not_visible", "dev1"),
        (7.0, "state", "paused", ("face_not_visible",)),
        (7.0, "alert", "face_not_visible", "dev1", 1, False),
    ]
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert warning.guidance.startswith("your face is partly out of the picture")
    alert = next(d for d in out if isinstance(d, Alert))
    assert alert.participant == "v1" and "(partial)" in alert.detail


def test_partial_face_fixed_in_time_clears_its_warning_without_pausing() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 4.0, partial()) + frames(4.0, 9.0, match()))
    assert timeline(out) == [
        (2.0, "warning", "face_not_visible", "dev1"),
        (4.5, "cleared", "face_not_visible", "dev1"),
    ]
    assert s.state is State.LIVE


@pytest.mark.parametrize(
    ("face_kw", "persons", "start"),
    [
        ({"visibility": Visibility.TURNED_AWAY}, 0, "your face is turned away"),
        ({}, 1, "someone in view has their back to the camera"),
    ],
)
def test_face_not_visible_guidance(face_kw: dict, persons: int, start: str) -> None:
    s = live_session()
    out = feed(s, [obs(2.0, match(**face_kw), persons_without_face=persons)])
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert warning.reason is Reason.FACE_NOT_VISIBLE and warning.guidance.startswith(start)


def test_no_face_warns_after_three_seconds_and_pauses_after_fifteen() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 17.05, step=0.5))
    assert [x for x in timeline(out)] == [
        (5.0, "warning", "no_face", "dev1"),
        (17.0, "state", "paused", ("no_face",)),
        (17.0, "alert", "no_face", "dev1", None, False),
    ]
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert warning.guidance.startswith("nobody can be seen")


@pytest.mark.parametrize(
    ("lighting", "words"),
    [
        (Lighting.DARK, "too dark"),
        (Lighting.OVEREXPOSED, "too bright"),
        (Lighting.UNEVEN, "unevenly lit"),
        (Lighting.BACKLIT, "the light is behind you"),
    ],
)
def test_poor_lighting_is_guidance_first(lighting: Lighting, words: str) -> None:
    s = live_session()
    out = feed(s, frames(2.0, 4.0, match(lighting=lighting)) + frames(4.0, 5.0, match()))
    assert timeline(out) == [
        (3.0, "warning", "poor_lighting", "dev1"),
        (4.5, "cleared", "poor_lighting", "dev1"),
    ]
    warning = next(d for d in out if isinstance(d, WarningIssued))
    assert words in warning.guidance


def test_poor_lighting_that_lasts_thirty_seconds_pauses() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 32.5, dark(), step=0.5))
    assert [x for x in timeline(out) if x[1] == "state"] == [(32.0, "state", "paused", ("poor_lighting",))]
    alert = next(d for d in out if isinstance(d, Alert))
    assert "(dark)" in alert.detail


def test_frame_lighting_counts_when_no_face_is_seen() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 3.1, lighting=Lighting.BACKLIT))
    assert (3.0, "warning", "poor_lighting", "dev1") in timeline(out)


def test_a_finding_that_already_paused_does_not_pause_again_after_the_recheck() -> None:
    s = live_session(config(poor_lighting_pause_after_s=2.0))
    # dark but identified: the security check stays clean, so the call resumes after the recheck
    out = feed(s, frames(2.0, 10.0, dark()))
    assert [x for x in timeline(out) if x[1] in ("state", "recheck")] == [
        (4.0, "state", "paused", ("poor_lighting",)),
        (6.0, "recheck", False),
        (6.0, "state", "live", ()),
    ]


def test_findings_are_per_source() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.5, "dev2", Role.VISITOR, "v2")])
    events = []
    for t in [round(2.0 + i * 0.1, 3) for i in range(30)]:
        events += [obs(t, match()), obs(t, partial(1, "v2"), source="dev2")]
    out = feed(s, events)
    assert [x for x in timeline(out) if x[1] == "warning"] == [(2.0, "warning", "face_not_visible", "dev2")]


def test_a_finding_seen_before_the_start_pauses_at_the_start() -> None:
    s = session()
    out = feed(s, frames(-5.0, 0.31, unbooked()))
    assert [x for x in timeline(out) if x[1] != "identity"] == [
        (0.0, "state", "verifying", ()),
        (0.0, "state", "paused", ("unbooked_face",)),
        (0.0, "alert", "unbooked_face", "dev1", 9, False),
    ]


def test_warnings_are_given_while_waiting() -> None:
    s = session()
    assert kinds(feed(s, frames(-10.0, -5.0, match()))) == ["IdentityNoted"]
    out = feed(s, frames(-5.0, -3.0, partial()))
    assert (-5.0, "warning", "face_not_visible", "dev1") in timeline(out)
    assert s.state is State.WAITING


def test_new_finding_while_paused_adds_its_reason_and_restarts_the_recheck_window() -> None:
    s = live_session()
    out = feed(s, frames(2.0, 3.1, match(), unbooked()))  # paused at 3.0
    out = feed(s, frames(3.1, 8.2, partial()))  # partial from 3.1: pauses (adds) at 8.1
    assert [x for x in timeline(out) if x[1] in ("state", "alert")] == [
        (8.1, "alert", "face_not_visible", "dev1", 1, False),
    ]
    assert s.reasons == (Reason.UNBOOKED_FACE, Reason.FACE_NOT_VISIBLE)
    out = feed(s, frames(8.2, 11.0, match()))
    assert [x for x in timeline(out) if x[1] in ("state", "recheck")] == [
        (10.2, "recheck", False),
        (10.2, "state", "live", ()),
    ]
    assert s.reasons == ()


def test_the_same_reason_from_a_second_source_alerts_without_repeating_the_reason() -> None:
    s = live_session()
    feed(s, [ParticipantJoined(1.5, "dev2", Role.VISITOR, "v2")])
    events = []
    for i in range(30):
        t = round(2.0 + i * 0.1, 3)
        events += [obs(t, match(), unbooked()), obs(t, match(2, "v2"), unbooked(3), source="dev2")]
    out = feed(s, events)
    assert [x for x in timeline(out) if x[1] in ("state", "alert")] == [
        (3.0, "state", "paused", ("unbooked_face",)),
        (3.0, "alert", "unbooked_face", "dev1", 9, False),
        (3.0, "alert", "unbooked_face", "dev2", 3, False),
    ]
    assert s.reasons == (Reason.UNBOOKED_FACE,)


def test_decisions_are_stamped_at_their_due_time_not_at_the_late_event() -> None:
    s = live_session()
    feed(s, [obs(2.0, partial())])
    out = feed(s, [Tick(40.0)])
    # 7.0 pause (partial since 2.0, no absence evidence); analysis of dev1 stops after 2.0 -> 7.0 too
    assert [(d.t, type(d).__name__, getattr(d, "reason", None)) for d in out] == [
        (7.0, "StateChanged", None),
        (7.0, "Alert", Reason.ANALYSIS_ERROR),
        (7.0, "Alert", Reason.FACE_NOT_VISIBLE),
    ]
    assert s.reasons == (Reason.ANALYSIS_ERROR, Reason.FACE_NOT_VISIBLE)
