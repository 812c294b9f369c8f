from __future__ import annotations

import cv2
import numpy as np
from analysis_media import image

from monitor.analysis.box import Box
from monitor.analysis.detect import Detection, FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.track import Tracker


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
