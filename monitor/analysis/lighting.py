"""Is a face lit well enough to check? Too dark, overexposed, uneven (one side dark), or backlit.

Measured on 8-bit luma. The face region is the central part of the mesh box (forehead to chin,
cheek to cheek, so hair and background stay out). Uneven compares the two sides of the face on
small patches at four pairs of mirrored mesh points (cheek centres, under the eyes, mid-cheeks,
jaw): skin only, so the nose's own shadow and the background beside a narrow face do not dilute
it. Box halves would (measured on the uneven-light fixture: halves 0.43-0.48 for a face lit from one
side, flickering around the 0.45 cut; cheek patches 0.22-0.24, against 0.74-0.88 for the same face
evenly lit). Without a mesh (a covered face) the halves of the face region, split at the nose,
are the fallback.
Backlit compares the face with what surrounds the head: the ring between 1.5x and 2.6x the face
box, above the chin line (a window or lamp behind the person; clothes below the chin do not count).
When no face can be judged the whole frame is assessed for dark/overexposed only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.landmarks import Landmarks
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


# mirrored mesh points (image-left side, image-right side): cheek centres, under the eyes,
# mid-cheeks, jaw
SIDE_POINTS = ((50, 280), (118, 347), (205, 425), (172, 397))


def side_means(gray: np.ndarray, lm: Landmarks) -> tuple[float, float] | None:
    """Mean luma of the patches on each side of the face (``SIDE_POINTS``), or None when a patch
    falls outside the frame."""
    height, width = gray.shape
    r = max(2, int(0.08 * lm.box.w))
    sides: list[float] = []
    for side in (0, 1):
        total = 0.0
        for pair in SIDE_POINTS:
            x, y = (round(v) for v in lm.xy(pair[side]))
            if x - r < 0 or y - r < 0 or x + r >= width or y + r >= height:
                return None
            total += float(gray[y - r : y + r + 1, x - r : x + r + 1].mean())
        sides.append(total / len(SIDE_POINTS))
    return sides[0], sides[1]


def assess_face(
    gray: np.ndarray,
    face_box: Box,
    split_x: float | None,
    settings: AnalysisSettings,
    landmarks: Landmarks | None = None,
) -> LightingResult:
    """``landmarks`` (the face mesh) gives the side-to-side ratio on cheek patches; without it
    the face region's halves, split at ``split_x``, are compared."""
    height, width = gray.shape
    rows, cols = _inner(face_box).pixel_slices(width, height)
    face = gray[rows, cols]
    if face.size < 16:
        return LightingResult(Lighting.OK, float("nan"), 0.0, 1.0, None)
    mean = float(face.mean())
    clipped = float(np.mean(face >= 250))
    sides = side_means(gray, landmarks) if landmarks is not None else None
    if sides is None:
        split = round((split_x if split_x is not None else face_box.cx) - cols.start)
        split = min(max(split, 1), face.shape[1] - 1)
        sides = float(face[:, :split].mean()), float(face[:, split:].mean())
    left, right = sides
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
