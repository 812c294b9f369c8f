from __future__ import annotations

import numpy as np
from analysis_media import frame

from monitor.analysis.box import Box
from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import NOSE_TIP, LandmarkStage


def test_mesh_of_a_portrait_lies_on_the_face(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    lm = mesh.landmarks(f, d.box)
    assert lm is not None and lm.count == 478
    assert lm.box.iou(d.box) > 0.4
    nx, ny = lm.xy(NOSE_TIP)
    assert abs(nx - d.keypoints[2][0]) < 0.1 * d.box.w and abs(ny - d.keypoints[2][1]) < 0.1 * d.box.h


def test_every_face_of_the_group_is_meshed(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("multi_face.jpg")
    boxes = [mesh.landmarks(f, d.box) for d in detector.detect(f)]
    assert len(boxes) == 5 and all(b is not None for b in boxes)


def test_cartoon_blips_have_no_mesh(detector: FaceDetector, mesh: LandmarkStage, cartoon_clip: list) -> None:
    blips = [(Frame(bgr), d.box) for _i, _t, bgr in cartoon_clip for d in detector.detect(Frame(bgr))]
    assert blips
    assert [mesh.landmarks(f, box) for f, box in blips] == [None] * len(blips)


def test_mesh_of_a_cut_face_runs_past_the_edge(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("obama_partial_face.jpg")
    (d,) = detector.detect(f)
    lm = mesh.landmarks(f, d.box)
    assert lm is not None and lm.points[:, 0].min() < 0


def test_no_mesh_on_a_landscape(mesh: LandmarkStage) -> None:
    f = frame("640px-IceBlockNearJoekullsarlon.jpg")
    assert mesh.landmarks(f, Box(200, 100, 150, 150)) is None


def test_moved_mesh_follows_the_box(detector: FaceDetector, mesh: LandmarkStage) -> None:
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    lm = mesh.landmarks(f, d.box)
    assert lm is not None
    moved = lm.moved(d.box, Box(d.box.x + 10, d.box.y - 5, d.box.w * 2, d.box.h * 2))
    assert abs(moved.box.w - 2 * lm.box.w) < 1.0
    assert abs(moved.box.cx - (lm.box.cx - d.box.cx) * 2 - d.box.cx - d.box.w / 2 - 10) < 1.0


def test_crop_inside_the_frame_equals_the_padded_crop(detector: FaceDetector, mesh: LandmarkStage) -> None:
    """The no-copy crop for a face well inside the frame is the same pixels as the padded one."""
    f = frame("single_face.jpg")
    (d,) = detector.detect(f)
    inside = Box(d.box.cx - 60, d.box.cy - 60, 120, 120)  # square x1.8 = 216 px: inside 572x562
    crop, x0, y0, scale = mesh._crop(f, inside)
    side = round(inside.square(mesh.crop_scale).w)
    assert crop.shape == (side, side, 3) and crop.flags.c_contiguous and scale == 1.0
    assert np.array_equal(crop, f.rgb[round(y0) : round(y0) + side, round(x0) : round(x0) + side])
    edge = Box(-20, 40, 200, 200)  # past the left edge: padded with black
    padded, px0, _py0, _s = mesh._crop(f, edge)
    assert px0 < 0 and padded.flags.c_contiguous and not padded[:, 0].any()
