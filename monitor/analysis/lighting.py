"""Is a face lit well enough to check? Too dark, overexposed, uneven (one side dark), or backlit.

Measured on 8-bit luma. The face region is the central part of the mesh box (forehead to chin,
cheek to cheek, so hair and background stay out); left and right halves are split at the nose.
Backlit compares the face with what surrounds the head: the ring between 1.5x and 2.6x the face
box, above the chin line (a window or lamp behind the person; clothes below the chin do not count).
When no face can be judged the whole frame is assessed for dark/overexposed only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.settings import AnalysisSettings
from policies.events import Lighting


@dataclass(frozen=True, slots=True)
class LightingResult:
    lighting: Lighting
    face_mean: float
    clipped: float  # share of face pixels >= 250
    side_ratio: float  # darker half / brighter half, 1.0 = even
    background_mean: float | None


def _inner(box: Box) -> Box:
    return Box(box.x + 0.15 * box.w, box.y + 0.15 * box.h, 0.7 * box.w, 0.75 * box.h)


def _surround(gray: np.ndarray, face_box: Box) -> float | None:
    """Mean luma of the ring around the head (out to 2.6x the face box, above the chin line)."""
    height, width = gray.shape
    rows, cols = face_box.square(2.6).pixel_slices(width, height)
    rows = slice(rows.start, max(rows.start, min(rows.stop, int(face_box.y + face_box.h))))
    outer = gray[rows, cols]
    inner_box = face_box.square(1.5)
    irows, icols = inner_box.pixel_slices(width, height)
    irows = slice(max(irows.start, rows.start), max(max(irows.start, rows.start), min(irows.stop, rows.stop)))
    icols = slice(max(icols.start, cols.start), max(max(icols.start, cols.start), min(icols.stop, cols.stop)))
    inner = gray[irows, icols]
    count = outer.size - inner.size
    if count < max(64, outer.size // 10):
        return None
    return float(int(outer.sum(dtype=np.int64)) - int(inner.sum(dtype=np.int64))) / count


def assess_face(
    gray: np.ndarray, face_box: Box, split_x: float | None, settings: AnalysisSettings
) -> LightingResult:
    height, width = gray.shape
    rows, cols = _inner(face_box).pixel_slices(width, height)
    face = gray[rows, cols]
    if face.size < 16:
        return LightingResult(Lighting.OK, float("nan"), 0.0, 1.0, None)
    mean = float(face.mean())
    clipped = float(np.mean(face >= 250))
    split = round((split_x if split_x is not None else face_box.cx) - cols.start)
    split = min(max(split, 1), face.shape[1] - 1)
    left, right = float(face[:, :split].mean()), float(face[:, split:].mean())
    ratio = min(left, right) / max(left, right, 1.0)
    background = _surround(gray, face_box)
    if mean < settings.dark_mean:
        verdict = Lighting.DARK
    elif mean > settings.overexposed_mean or clipped > settings.overexposed_clipped:
        verdict = Lighting.OVEREXPOSED
    elif (
        background is not None
        and background >= settings.backlit_background
        and background >= settings.backlit_ratio * max(mean, 1.0)
    ):
        verdict = Lighting.BACKLIT
    elif ratio < settings.uneven_ratio:
        verdict = Lighting.UNEVEN
    else:
        verdict = Lighting.OK
    return LightingResult(verdict, mean, clipped, ratio, background)


def assess_frame(gray: np.ndarray, settings: AnalysisSettings) -> Lighting:
    small = gray[::4, ::4]
    mean = float(small.mean())
    if mean < settings.dark_mean * 0.6:  # a dim room is fine when no face is there to judge
        return Lighting.DARK
    if mean > settings.overexposed_mean or float(np.mean(small >= 250)) > 0.5:
        return Lighting.OVEREXPOSED
    return Lighting.OK
