"""Lighting on a real portrait, with dark/bright/uneven/backlit versions made by scaling pixel values."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_media import image

from monitor.analysis.box import Box
from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import NOSE_TIP, LandmarkStage
from monitor.analysis.lighting import LightingResult, assess_face, assess_frame
from monitor.analysis.settings import AnalysisSettings
from policies.events import Lighting

S = AnalysisSettings()


def _scaled(bgr: np.ndarray, gain: np.ndarray | float) -> np.ndarray:
    return np.clip(bgr.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _judge(
    detector: FaceDetector, mesh: LandmarkStage, bgr: np.ndarray, box: Box | None = None
) -> LightingResult:
    f = Frame(bgr)
    (d,) = detector.detect(f) if box is None else (None,)
    face_box = box if d is None else d.box
    assert face_box is not None
    lm = mesh.landmarks(f, face_box)
    assert lm is not None
    return assess_face(f.gray, lm.box, lm.xy(NOSE_TIP)[0], S, lm)


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return image("grace_hopper_512x512.jpg")


@pytest.fixture(scope="module")
def face_box(detector: FaceDetector, portrait: np.ndarray) -> Box:
    (d,) = detector.detect(Frame(portrait))
    return d.box


def test_original_portraits_are_ok(detector: FaceDetector, mesh: LandmarkStage) -> None:
    for name in ("grace_hopper_512x512.jpg", "obama.jpg", "single_face.jpg", "astronaut.png"):
        assert _judge(detector, mesh, image(name)).lighting is Lighting.OK, name


def test_darkened_is_dark(
    detector: FaceDetector, mesh: LandmarkStage, portrait: np.ndarray, face_box: Box
) -> None:
    r = _judge(detector, mesh, _scaled(portrait, 0.3), face_box)
    assert r.lighting is Lighting.DARK and r.face_mean < S.dark_mean


def test_brightened_is_overexposed(
    detector: FaceDetector, mesh: LandmarkStage, portrait: np.ndarray, face_box: Box
) -> None:
    r = _judge(detector, mesh, _scaled(portrait, 2.6), face_box)
    assert r.lighting is Lighting.OVEREXPOSED


def test_one_side_shaded_is_uneven(
    detector: FaceDetector, mesh: LandmarkStage, portrait: np.ndarray, face_box: Box
) -> None:
    gain = np.ones(portrait.shape[:2], np.float32)
    gain[:, : int(face_box.cx)] = 0.3  # the light comes from the right
    r = _judge(detector, mesh, _scaled(portrait, gain[..., None]), face_box)
    assert r.lighting is Lighting.UNEVEN and r.side_ratio < S.uneven_ratio


def test_bright_window_behind_a_dim_face_is_backlit(
    detector: FaceDetector, mesh: LandmarkStage, portrait: np.ndarray, face_box: Box
) -> None:
    """The camera exposes for a bright window: the room goes bright, the face dim."""
    gain = np.full(portrait.shape[:2], 2.6, np.float32)
    rows, cols = face_box.square(1.2).pixel_slices(portrait.shape[1], portrait.shape[0])
    gain[rows, cols] = 0.45
    r = _judge(detector, mesh, _scaled(portrait, gain[..., None]), face_box)
    assert r.lighting is Lighting.BACKLIT
    assert r.background_mean is not None and r.background_mean > S.backlit_ratio * r.face_mean


def test_darker_skin_in_a_bright_room_is_not_backlit(detector: FaceDetector, mesh: LandmarkStage) -> None:
    r = _judge(detector, mesh, image("obama3.jpg"))
    assert r.background_mean is not None and r.background_mean > r.face_mean + 90  # a bright room
    assert r.lighting is Lighting.OK


def test_whole_frame_without_faces(portrait: np.ndarray) -> None:
    gray = Frame(portrait).gray
    assert assess_frame(gray, S) is Lighting.OK
    assert assess_frame((gray * 0.1).astype(np.uint8), S) is Lighting.DARK
    assert assess_frame(np.full_like(gray, 255), S) is Lighting.OVEREXPOSED


def test_side_light_on_the_recorded_call_is_uneven_and_even_light_is_not(
    detector: FaceDetector, mesh: LandmarkStage
) -> None:
    """The uneven-light fixture (strong side light from 4-5 s on): cheek patches tell the two
    apart by a wide margin, where the face box's halves hovered around the cut (0.43-0.48)."""
    from pathlib import Path

    from monitor.analysis.media import video_frames

    clip = Path(__file__).resolve().parents[3] / "fixtures" / "clips" / "uneven_light.webm"
    ratios: dict[str, list[float]] = {"even": [], "side": []}
    for i, t, bgr in video_frames(clip):
        if i % 10 or 3.5 < t < 5.5:
            continue
        f = Frame(bgr)
        (d,) = detector.detect(f)
        lm = mesh.landmarks(f, d.box)
        assert lm is not None
        r = assess_face(f.gray, lm.box, lm.xy(NOSE_TIP)[0], S, lm)
        ratios["even" if t <= 3.5 else "side"].append(r.side_ratio)
        assert r.lighting is (Lighting.OK if t <= 3.5 else Lighting.UNEVEN), (t, r)
    assert min(ratios["even"]) > 0.7 and max(ratios["side"]) < 0.3, ratios
