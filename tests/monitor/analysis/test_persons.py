from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from analysis_media import frame

from monitor.analysis.box import Box
from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.media import video_frames
from monitor.analysis.persons import FacelessPersonCounter

BACK_OF_HEAD = Path(__file__).resolve().parents[3] / "fixtures" / "clips" / "back_of_head.webm"


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
