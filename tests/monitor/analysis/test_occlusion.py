"""Covered faces: a patch of a real photo (the iceblock landscape) held over part of the man's face."""

from __future__ import annotations

import numpy as np
from analysis_media import MEDIA, image

from monitor.analysis.box import Box
from monitor.analysis.detect import FaceDetector
from monitor.analysis.enrol import enrol_photos
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import LandmarkStage
from monitor.analysis.occlusion import CoverWatch, signature
from monitor.analysis.pipeline import FramePipeline
from policies.events import Visibility


def cover(bgr: np.ndarray, box: Box, part: str, share: float) -> np.ndarray:
    """``bgr`` with the ``part`` (lower/left) ``share`` of the face box covered by landscape."""
    out = bgr.copy()
    x0, y0, w, h = int(box.x), int(box.y), int(box.w), int(box.h)
    if part == "lower":
        rows, cols = slice(y0 + int(h * (1 - share)), y0 + h + 10), slice(x0 - 5, x0 + w + 5)
    else:
        rows, cols = slice(y0 - 10, y0 + h + 10), slice(x0 - 5, x0 + int(w * share))
    hh, ww = rows.stop - rows.start, cols.stop - cols.start
    out[rows, cols] = image("640px-IceBlockNearJoekullsarlon.jpg")[100 : 100 + hh, 200 : 200 + ww]
    return out


def _sig(detector: FaceDetector, mesh: LandmarkStage, bgr: np.ndarray) -> np.ndarray:
    f = Frame(bgr)
    (d,) = detector.detect(f)
    lm = mesh.landmarks(f, d.box)
    assert lm is not None  # the mesh sees a whole face even under the cover: hence this stage
    sig = signature(bgr, lm)
    assert sig is not None
    return sig


def test_talking_face_is_never_covered_and_covers_are_seen(
    detector: FaceDetector, mesh: LandmarkStage, man_clip: list
) -> None:
    watch = CoverWatch()
    verdicts = [watch.update(1, _sig(detector, mesh, bgr), True) for _i, _t, bgr in man_clip[::3]]
    assert verdicts == [False] * len(verdicts)
    bgr = man_clip[40][2]
    (d,) = detector.detect(Frame(bgr))
    for part in ("lower", "left"):
        for share in (0.3, 0.45):
            assert watch.update(1, _sig(detector, mesh, cover(bgr, d.box, part, share)), True), (part, share)
    assert not watch.update(1, _sig(detector, mesh, bgr), True)  # uncovered again


def test_whole_face_getting_darker_is_not_a_cover(
    detector: FaceDetector, mesh: LandmarkStage, man_clip: list
) -> None:
    watch = CoverWatch()
    for _i, _t, bgr in man_clip[:9:3]:
        watch.update(1, _sig(detector, mesh, bgr), True)
    dimmer = (man_clip[20][2] * 0.6).astype(np.uint8)
    assert not watch.update(1, _sig(detector, mesh, dimmer), True)


def test_no_baseline_no_verdict(detector: FaceDetector, mesh: LandmarkStage, man_clip: list) -> None:
    watch = CoverWatch()
    bgr = man_clip[0][2]
    (d,) = detector.detect(Frame(bgr))
    covered = _sig(detector, mesh, cover(bgr, d.box, "lower", 0.45))
    assert [watch.update(1, covered, True) for _ in range(4)] == [False] * 4  # covered from the start
    watch.forget_except(())
    assert not watch.update(1, covered, False)


def test_pipeline_reports_a_covered_face_as_covered_and_stops_identifying_it(
    detector: FaceDetector, man_clip: list
) -> None:
    frames = [(t, bgr) for _i, t, bgr in man_clip[:30]]
    for _i, t, bgr in man_clip[30:60]:
        (d,) = detector.detect(Frame(bgr))
        frames.append((t, cover(bgr, d.box, "lower", 0.45)))
    pipeline = FramePipeline(enrol_photos({"man": [MEDIA / "single_face.jpg"]}), source="cam1")
    try:
        results = [pipeline.process(bgr, t) for t, bgr in frames]
    finally:
        pipeline.close()
    assert all(r.observation.faces[0].visibility is Visibility.FULL for r in results[:30])
    covered = [r.observation.faces[0].visibility for r in results[30:]]
    assert covered[8:] == [Visibility.COVERED] * 22  # seen within 0.27 s (mesh refresh 0.2 s)
    assert all(r.faces[0].quality_problem == "face covered" for r in results[38:])  # never embedded
    assert {r.observation.faces[0].track for r in results} == {1}
