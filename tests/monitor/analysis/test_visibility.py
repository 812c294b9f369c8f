from __future__ import annotations

import cv2
import numpy as np
from analysis_media import frame, image

from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import LandmarkStage
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.visibility import VisibilityResult, assess, head_pose
from policies.events import Visibility

S = AnalysisSettings()


def _assess(
    detector: FaceDetector, mesh: LandmarkStage, f: Frame, settings: AnalysisSettings = S
) -> VisibilityResult:
    (d,) = detector.detect(f)
    return assess(d.box, mesh.landmarks(f, d.box), f.width, f.height, settings)


def test_frontal_portraits_are_fully_visible(detector: FaceDetector, mesh: LandmarkStage) -> None:
    for name in ("obama.jpg", "single_face.jpg", "grace_hopper_512x512.jpg", "astronaut.png"):
        r = _assess(detector, mesh, frame(name))
        assert r.visibility is Visibility.FULL, name
        assert r.pose is not None and abs(r.pose.yaw) < 0.2 and abs(r.pose.pitch) < 0.2, name
        assert r.landmarks_outside == 0.0 and r.inside_fraction > 0.99


def test_face_cropped_through_is_partial(detector: FaceDetector, mesh: LandmarkStage) -> None:
    r = _assess(detector, mesh, frame("obama_partial_face.jpg"))
    assert r.visibility is Visibility.PARTIAL
    assert r.inside_fraction < S.partial_inside_fraction and r.landmarks_outside > 0.05


def test_face_slid_out_of_the_frame_becomes_partial(detector: FaceDetector, mesh: LandmarkStage) -> None:
    """The portrait moved left in steps: full while inside, partial once the edge cuts the face."""
    photo = image("single_face.jpg")
    seen = []
    for shift in (0, 100, 150, 200, 240):
        moved = np.ascontiguousarray(photo[:, shift:])
        r = _assess(detector, mesh, Frame(moved))
        seen.append(r.visibility)
    assert seen[0] is Visibility.FULL and seen[-1] is Visibility.PARTIAL
    assert seen.index(Visibility.PARTIAL) > 0 and all(
        v is Visibility.PARTIAL for v in seen[seen.index(Visibility.PARTIAL) :]
    )


def test_a_lost_mesh_on_a_known_face_is_partial(detector: FaceDetector) -> None:
    f = frame("obama.jpg")
    (d,) = detector.detect(f)
    assert assess(d.box, None, f.width, f.height, S).visibility is Visibility.PARTIAL


def test_yaw_changes_sign_in_the_mirror(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("obama2.jpg")  # a three-quarter portrait
    mirror = Frame(np.ascontiguousarray(cv2.flip(f.bgr, 1)))
    poses = []
    for g in (f, mirror):
        (d,) = detector.detect(g)
        lm = mesh.landmarks(g, d.box)
        assert lm is not None
        poses.append(head_pose(lm))
    assert abs(poses[0].yaw) > 0.3
    assert abs(poses[0].yaw + poses[1].yaw) < 0.1


def test_turned_head_beyond_the_limit_is_turned_away(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("obama2.jpg")  # yaw about -0.43
    assert _assess(detector, mesh, f).visibility is Visibility.FULL
    strict = AnalysisSettings(turned_away_yaw=0.3)
    assert _assess(detector, mesh, f, strict).visibility is Visibility.TURNED_AWAY
