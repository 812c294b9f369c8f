from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from analysis_media import frame

from monitor.analysis.box import Box
from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.media import video_frames
from monitor.analysis.persons import FacelessPersonCounter

CLIPS = Path(__file__).resolve().parents[3] / "fixtures" / "clips"
BACK_OF_HEAD = CLIPS / "back_of_head.webm"
# the booked man on the left, another man with his back to the camera beside him 4-13 s (in 4-5 s,
# out 12-13 s; real footage, pose2sim's cam04: see fixtures/SOURCES.md)
BACK_BESIDE = CLIPS / "back_beside.webm"


@pytest.fixture(scope="module")
def counter() -> Iterator[FacelessPersonCounter]:
    c = FacelessPersonCounter(period_s=0.0)
    yield c
    c.close()


def test_a_person_whose_face_is_seen_is_not_faceless(
    counter: FacelessPersonCounter, detector: FaceDetector, man_clip: list
) -> None:
    for _i, t, bgr in man_clip[::12]:
        f = Frame(bgr)
        faces = tuple(d.box for d in detector.detect(f))
        assert counter.count(f, t, faces) == 0


def test_a_person_with_no_checkable_face_is_counted(counter: FacelessPersonCounter, man_clip: list) -> None:
    """The same frames when the face stage has nothing: the body is a person without a face."""
    assert [counter.count(Frame(bgr), t, ()) for _i, t, bgr in man_clip[::12]] == [1] * 6


def test_a_man_with_his_back_to_the_camera_is_counted(
    counter: FacelessPersonCounter, detector: FaceDetector
) -> None:
    """Real footage of a man turned fully away (back_of_head.webm 4-12 s, pose2sim's cam04; see
    fixtures/SOURCES.md): there is no face to detect, and pose finds a person without one."""
    frames = list(video_frames(BACK_OF_HEAD, start=120, stop=360, step=20))
    assert len(frames) == 12
    for _i, t, bgr in frames:
        f = Frame(bgr)
        assert detector.detect(f) == ()
        assert counter.count(f, t, ()) == 1, t


def test_no_person_in_a_landscape_or_a_cartoon(counter: FacelessPersonCounter, cartoon_clip: list) -> None:
    assert counter.count(frame("640px-IceBlockNearJoekullsarlon.jpg"), 0.0, ()) == 0
    assert [counter.count(Frame(bgr), t, ()) for _i, t, bgr in cartoon_clip[::8]] == [0] * 12


def test_answer_is_reused_within_the_period(man_clip: list) -> None:
    counter = FacelessPersonCounter(period_s=1.0)
    try:
        _i, _t, bgr = man_clip[0]
        f = Frame(bgr)
        assert counter.count(f, 0.0, ()) == 1
        assert counter.count(f, 0.5, (Box(0, 0, f.width, f.height),)) == 1  # not re-measured yet
        assert counter.count(f, 1.0, (Box(0, 0, f.width, f.height),)) == 0
    finally:
        counter.close()


def test_a_longer_period_can_be_asked_for_one_call(man_clip: list) -> None:
    counter = FacelessPersonCounter(period_s=1.0)
    try:
        f = Frame(man_clip[0][2])
        assert counter.count(f, 0.0, ()) == 1
        whole = (Box(0, 0, f.width, f.height),)
        assert counter.count(f, 1.5, whole, period_s=10.0) == 1  # steady: the answer is reused
        assert counter.count(f, 1.5, whole) == 0  # the default period has passed: measured again
    finally:
        counter.close()


def _faces(detector: FaceDetector, bgr: np.ndarray) -> tuple[Frame, tuple[Box, ...]]:
    f = Frame(bgr)
    return f, tuple(d.box for d in detector.detect(f))


def test_a_man_with_his_back_turned_beside_the_caller_is_counted(detector: FaceDetector) -> None:
    """Pose alone finds the booked man (his face is seen) on every frame; the search beside him finds
    the turned-away man on most samples (12 of 14 measured), with no help from the hold."""
    counter = FacelessPersonCounter(period_s=0.0, hold_checks=0)
    try:
        counts = []
        for _i, t, bgr in video_frames(BACK_BESIDE, start=150, stop=360, step=15):
            f, faces = _faces(detector, bgr)
            assert len(faces) == 1  # only the booked man has a face to detect
            whole = counter._search(f.rgb, 0, f.width, faces)
            assert whole is not None and whole.has_face  # pose on the whole frame: the booked man
            counts.append(counter.count(f, t, faces))
        assert len(counts) == 14 and set(counts) <= {0, 1}
        assert sum(counts) >= 10, counts
    finally:
        counter.close()


def test_the_man_beside_is_held_between_misses_and_dropped_after_hold_checks(detector: FaceDetector) -> None:
    """Sampled once a second (the pipeline's busy pace), the turned-away man counts on every check
    while he is there; when he has gone (the same clip before 4 s: the booked man alone, off-centre,
    so the strip beside him is searched and is empty) he is held for ``hold_checks`` checks, then
    dropped."""
    counter = FacelessPersonCounter(period_s=1.0, hold_checks=2)
    try:
        there = [
            _faces(detector, bgr) for _i, _t, bgr in video_frames(BACK_BESIDE, start=150, stop=360, step=30)
        ]
        assert [counter.count(f, 5.0 + k, faces) for k, (f, faces) in enumerate(there)] == [1] * 7
        gone = [_faces(detector, bgr) for _i, _t, bgr in video_frames(BACK_BESIDE, start=0, stop=90, step=30)]
        runs = counter.runs
        # a steady caller asks for a long period; while the man is held the counter's own applies
        counts = [counter.count(f, 12.0 + k, faces, period_s=30.0) for k, (f, faces) in enumerate(gone)]
        assert counts == [1, 1, 0]
        assert counter.runs - runs == 6  # three checks, each the whole frame and the strip beside
        f, faces = gone[0]
        assert counter.count(f, 16.0, faces, period_s=30.0) == 0  # no longer held: 30 s applies
        assert counter.runs - runs == 6
    finally:
        counter.close()


def test_a_caller_in_the_middle_leaves_no_strip_to_search(detector: FaceDetector) -> None:
    """The clean clip (the booked man centred): one pose run per check, as before the beside search."""
    counter = FacelessPersonCounter(period_s=0.0)
    try:
        for _i, t, bgr in video_frames(CLIPS / "clean.webm", start=0, stop=300, step=30):
            f, faces = _faces(detector, bgr)
            before = counter.runs
            assert counter.count(f, t, faces) == 0
            assert counter.runs - before == 1, t
    finally:
        counter.close()


def test_a_strip_holding_a_face_is_not_searched(detector: FaceDetector) -> None:
    """unbooked_walk_in 6-9 s: the booked man on the left, the unbooked woman's face in the wide strip
    beside him. Pose there would find her, a person with a face, who does not count, so the strip is
    not searched: an intruder's first frames, already paying for identity, pay for one pose run only."""
    counter = FacelessPersonCounter(period_s=0.0)
    try:
        for _i, t, bgr in video_frames(CLIPS / "unbooked_walk_in.webm", start=180, stop=270, step=30):
            f, faces = _faces(detector, bgr)
            assert len(faces) == 2, t
            whole = counter._search(f.rgb, 0, f.width, faces)
            assert whole is not None and whole.has_face and f.width - whole.x1 >= 0.3 * f.width, t
            before = counter.runs
            assert counter.count(f, t, faces) == 0
            assert counter.runs - before == 1, t
    finally:
        counter.close()
