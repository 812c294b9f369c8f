from __future__ import annotations

import cv2
import numpy as np
from analysis_media import face_over, image

from monitor.analysis.box import Box
from monitor.analysis.detect import Detection, FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.pipeline import _face_look
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.track import Tracker, look_change


def test_one_face_keeps_one_track_over_the_clip(detector: FaceDetector, man_clip: list) -> None:
    tracker = Tracker()
    ids = set()
    for _i, t, bgr in man_clip:
        tracked = tracker.update(detector.detect(Frame(bgr)), t)
        assert len(tracked) == 1
        ids.add(tracked[0].track)
    assert ids == {1}
    assert tracked[0].hits == len(man_clip) and tracked[0].first_seen == man_clip[0][1]


def test_sampled_frames_keep_the_track(detector: FaceDetector, man_clip: list) -> None:
    tracker = Tracker()
    ids = {tracker.update(detector.detect(Frame(bgr)), t)[0].track for _i, t, bgr in man_clip[::6]}
    assert ids == {1}  # 5 fps analysis: the face moved further between frames but is the same track


def test_five_people_panning_keep_their_ids(detector: FaceDetector) -> None:
    """A camera pan over the group photo: every face moves 8 px a frame and keeps its id."""
    group = image("multi_face.jpg")
    canvas = cv2.copyMakeBorder(group, 0, 0, 100, 100, cv2.BORDER_REFLECT)  # no face near the edges
    tracker = Tracker()
    first = None
    for step in range(10):
        view = np.ascontiguousarray(canvas[:, 100 - step * 8 : 1100 - step * 8])
        tracked = tracker.update(detector.detect(Frame(view)), step / 30)
        ids = [td.track for td in tracked]
        if first is None:
            first = ids
        assert ids == first and len(ids) == 5


def _det(x: float) -> Detection:
    return Detection(Box(x, 100, 80, 80), 0.9, ())


def test_a_face_that_left_for_longer_than_the_grace_gets_a_new_id() -> None:
    tracker = Tracker(max_missed_s=0.5)
    assert tracker.update((_det(100),), 0.0)[0].track == 1
    assert tracker.update((), 0.3) == ()
    assert tracker.update((_det(104),), 0.4)[0].track == 1  # back within the grace: same person
    assert tracker.update((_det(104),), 1.2)[0].track == 2  # gone 0.8 s: a new track
    assert tracker.live_ids == (2,)


def test_two_faces_far_apart_never_swap() -> None:
    tracker = Tracker()
    a, b = tracker.update((_det(100), _det(400)), 0.0)
    a2, b2 = tracker.update((_det(110), _det(390)), 0.1)
    assert (a.track, b.track) == (a2.track, b2.track) == (1, 2)
    (new,) = tracker.update((_det(250),), 0.2)  # between both, too far from either: not a jump
    assert new.track == 3


def test_continuity_needs_the_previous_update_and_an_overlap() -> None:
    tracker = Tracker()
    (first,) = tracker.update((_det(100),), 0.0)
    assert not first.continuous  # a new track
    (same,) = tracker.update((_det(104),), 0.2)
    assert same.track == 1 and same.continuous
    tracker.update((), 0.4)  # missed once
    (back,) = tracker.update((_det(104),), 0.6)
    assert back.track == 1 and not back.continuous  # same track, but there was a break
    nearby = Detection(Box(154, 130, 60, 60), 0.9, ())  # IoU 0.18, centre 0.56 box sizes away
    (jumped,) = tracker.update((nearby,), 0.8)  # too little overlap: followed by a jump
    assert jumped.track == 1 and not jumped.continuous


def _seen(tracker: Tracker, detector: FaceDetector, bgr: np.ndarray, t: float) -> list[int]:
    """Track the faces of one real frame, with their looks as the pipeline passes them."""
    image = Frame(bgr)
    detections = detector.detect(image)
    return [td.track for td in tracker.update(detections, t, [_face_look(image, d.box) for d in detections])]


def _memory() -> Tracker:
    s = AnalysisSettings()
    return Tracker(
        min_iou=s.track_min_iou,
        max_missed_s=s.track_max_missed_s,
        position_only_s=s.track_position_only_s,
        max_look_change=s.identity_look_change,
    )


def test_the_memory_outlasts_sparse_analysis_and_short_absences() -> None:
    """A starved live worker or a 1 fps calm replay sees a face about once a second; the tracker
    must still know it (a new track costs new identity samples on every such frame)."""
    assert AnalysisSettings().track_max_missed_s >= 1.5


def test_a_face_unseen_for_1_5_s_keeps_its_track(detector: FaceDetector, man_clip: list) -> None:
    tracker = _memory()
    assert _seen(tracker, detector, man_clip[0][2], 0.0) == [1]
    blank = np.zeros_like(man_clip[0][2])
    for t in (0.5, 1.0, 1.5):
        assert _seen(tracker, detector, blank, t) == []  # gone from view (the camera covered)
    assert _seen(tracker, detector, man_clip[20][2], 2.0) == [1]  # back 1.5 s after last seen
    # ... and sparse analysis (1.5 s between analysed frames) keeps it too
    assert {
        _seen(tracker, detector, bgr, 2.0 + 1.5 * k)[0] for k, (_i, _t, bgr) in enumerate(man_clip[::10])
    } == {1}


def test_another_person_in_the_same_place_after_a_gap_gets_a_new_track(
    detector: FaceDetector, man_clip: list
) -> None:
    bgr = man_clip[30][2]
    other = face_over(bgr, image("biden.jpg"))  # another real face, same place, same size
    before, after = (_face_look(Frame(x), detector.detect(Frame(x))[0].box) for x in (bgr, other))
    assert look_change(before, after) > AnalysisSettings().identity_look_change
    tracker = _memory()
    assert _seen(tracker, detector, bgr, 0.0) == [1]
    assert _seen(tracker, detector, np.zeros_like(bgr), 0.5) == []
    assert _seen(tracker, detector, other, 1.5) == [2]  # not the man's track, so not his verdict
    assert tracker.live_ids == (1, 2)  # the man's track is still remembered, for a while
    assert _seen(tracker, detector, bgr, 2.0) == [1]  # ... and he is known again when he is back
    # a gap as short as the former memory is bridged by position alone, as it always was (the
    # pipeline then re-checks the identity: the track had a break, and its look drifted)
    tracker = _memory()
    assert _seen(tracker, detector, bgr, 0.0) == [1]
    assert _seen(tracker, detector, np.zeros_like(bgr), 0.3) == []
    assert _seen(tracker, detector, other, 0.6) == [1]
    # position alone (no looks) would have handed the man's track to the other person
    blind = Tracker(max_missed_s=2.0)
    blind.update(detector.detect(Frame(bgr)), 0.0)
    blind.update((), 0.5)
    assert [td.track for td in blind.update(detector.detect(Frame(other)), 1.5)] == [1]


def test_the_same_face_back_in_another_place_gets_a_new_track(detector: FaceDetector, man_clip: list) -> None:
    bgr = man_clip[30][2]
    h, w = bgr.shape[:2]

    def placed(x: int) -> np.ndarray:
        canvas = np.zeros((h, w + 400, 3), np.uint8)
        canvas[:, x : x + w] = bgr
        return canvas

    tracker = _memory()
    assert _seen(tracker, detector, placed(0), 0.0) == [1]
    assert _seen(tracker, detector, placed(0), 0.5) == [1]
    assert _seen(tracker, detector, np.zeros((h, w + 400, 3), np.uint8), 1.0) == []
    assert _seen(tracker, detector, placed(400), 1.5) == [2]  # 400 px (2 face widths) away: not followed
    # the same move within one analysed interval is not followed either: the bound is in space
    tracker = _memory()
    assert _seen(tracker, detector, placed(0), 0.0) == [1]
    assert _seen(tracker, detector, placed(400), 0.2) == [2]
    assert _seen(tracker, detector, placed(60), 0.4) == [1]  # a small move after a gap: followed


def test_looks_must_match_the_detections() -> None:
    import pytest

    with pytest.raises(ValueError, match="1 looks for 2 detections"):
        Tracker().update((_det(100), _det(400)), 0.0, [np.zeros((16, 16), np.int16)])
