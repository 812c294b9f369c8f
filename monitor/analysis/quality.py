"""Quality gates: only faces large, frontal, sharp and well lit enough are embedded for identity.

A poor image makes dlib distances drift towards the decision thresholds in both directions, so a
face that fails a gate gets no identity sample (it stays PENDING) instead of a doubtful one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.visibility import Pose
from policies.events import Lighting, Visibility


@dataclass(frozen=True, slots=True)
class Quality:
    size_px: float
    sharpness: float
    problem: str | None  # None when the face may be embedded, else what failed


def sharpness(gray: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face resized to 128 px (comparable across face sizes)."""
    rows, cols = box.pixel_slices(gray.shape[1], gray.shape[0])
    face = gray[rows, cols]
    if face.shape[0] < 8 or face.shape[1] < 8:
        return 0.0
    face = cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


def assess(
    gray: np.ndarray,
    box: Box,
    visibility: Visibility,
    pose: Pose | None,
    lighting: Lighting,
    settings: AnalysisSettings,
    *,
    check_sharpness: bool = True,
) -> Quality:
    """The first gate the face fails. Sharpness, the one costly gate, is measured last and only
    when ``check_sharpness`` (the pipeline skips it for faces that are not due an identity sample)."""
    size = min(box.w, box.h)
    problem = None
    sharp = float("nan")
    if visibility is not Visibility.FULL or pose is None:
        problem = f"face {visibility.value}"
    elif size < settings.min_face_px:
        problem = f"face too small ({size:.0f} px < {settings.min_face_px:.0f})"
    elif abs(pose.yaw) > settings.max_embed_yaw:
        problem = f"face not frontal (yaw {pose.yaw:+.2f})"
    elif lighting is not Lighting.OK:
        problem = f"lighting {lighting.value}"
    elif check_sharpness and (sharp := sharpness(gray, box)) < settings.min_sharpness:
        problem = f"face blurred (sharpness {sharp:.0f} < {settings.min_sharpness:.0f})"
    return Quality(size, sharp, problem)
