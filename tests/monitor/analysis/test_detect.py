from __future__ import annotations

from analysis_media import frame

from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame


def test_group_photo_has_five_faces(detector: FaceDetector) -> None:
    found = detector.detect(frame("multi_face.jpg"))
    assert len(found) == 5
    assert all(d.score >= 0.5 and len(d.keypoints) == 6 for d in found)
    xs = [d.box.x for d in found]
    assert xs == sorted(xs)  # left to right, deterministic order


def test_one_face_in_a_portrait_and_its_box_is_on_it(detector: FaceDetector) -> None:
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    assert 0.25 * f.width < d.box.w < 0.6 * f.width
    nose = d.keypoints[2]
    assert d.box.x < nose[0] < d.box.x + d.box.w and d.box.y < nose[1] < d.box.y + d.box.h


def test_landscape_has_no_face(detector: FaceDetector) -> None:
    assert detector.detect(frame("640px-IceBlockNearJoekullsarlon.jpg")) == ()


def test_face_cut_by_the_edge_has_a_box_past_the_edge(detector: FaceDetector) -> None:
    f = frame("obama_partial_face.jpg")
    (d,) = detector.detect(f)
    assert d.box.x < 0  # the box keeps the face's geometry outside the picture


def test_cartoon_fools_the_detector_on_some_frames(detector: FaceDetector, cartoon_clip: list) -> None:
    hits = [i for i, _t, bgr in cartoon_clip if detector.detect(Frame(bgr))]
    assert hits, "the known BlazeFace blips on no_face.mp4 are gone; the blip test below proves nothing"
    assert all(70 <= i <= 95 for i in hits)
