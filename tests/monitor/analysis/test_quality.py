from __future__ import annotations

import cv2
import numpy as np
from analysis_media import frame

from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.quality import assess, sharpness
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.visibility import Pose
from policies.events import Lighting, Visibility

S = AnalysisSettings()
FRONTAL = Pose(0.0, 0.0)


def test_a_good_portrait_passes(detector: FaceDetector) -> None:
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    q = assess(f.gray, d.box, Visibility.FULL, FRONTAL, Lighting.OK, S)
    assert q.problem is None and q.size_px > 200 and q.sharpness > S.min_sharpness


def test_blurred_face_fails(detector: FaceDetector) -> None:
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    blurred = Frame(np.ascontiguousarray(cv2.GaussianBlur(f.bgr, (0, 0), 6)))
    assert sharpness(blurred.gray, d.box) < S.min_sharpness
    q = assess(blurred.gray, d.box, Visibility.FULL, FRONTAL, Lighting.OK, S)
    assert q.problem is not None and "blurred" in q.problem


def test_small_turned_badly_lit_or_partial_faces_fail(detector: FaceDetector) -> None:
    f = frame("multi_face.jpg")
    d = detector.detect(f)[0]
    assert "too small" in str(
        assess(
            f.gray, d.box, Visibility.FULL, FRONTAL, Lighting.OK, AnalysisSettings(min_face_px=200)
        ).problem
    )
    big = frame("obama.jpg")
    (d,) = detector.detect(big)
    assert "not frontal" in str(
        assess(big.gray, d.box, Visibility.FULL, Pose(0.6, 0.0), Lighting.OK, S).problem
    )
    assert "dark" in str(assess(big.gray, d.box, Visibility.FULL, FRONTAL, Lighting.DARK, S).problem)
    assert "partial" in str(assess(big.gray, d.box, Visibility.PARTIAL, FRONTAL, Lighting.OK, S).problem)
