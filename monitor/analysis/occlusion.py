"""Is part of a face covered (a hand, a mask, a scarf, an object)? Per-track appearance change.

Theory of operation: the face mesh does not notice a cover; it predicts a complete face under a hand
or an object. So each track keeps a *baseline*: the colour (CIE Lab, median of a small patch) at ten
anatomical points of the mesh (forehead, nose, cheeks, under-eyes, upper lip, chin, jaw corners),
averaged over its first ``BASELINE_FRAMES`` well-lit, fully visible, frontal frames and then
followed slowly (exponential average) while the face stays uncovered. On every fresh mesh each
point's deviation from the baseline is measured after removing the median shift over all points
(so the whole face getting brighter or darker does not count). A cover changes some points and
not the others: the face is *covered* when at least ``min_regions`` points deviate by more than
``max_deviation``. Lightness counts half as much as colour, since shading moves it most.
Measured (second-largest point deviation): a talking, moving face stays below 11; shading
creeping across the face (the uneven-light fixture) reaches 33 before the lighting stage calls it
uneven; a real landscape patch over 30-45 % of the face scores 50-56. Hence the default 40.

Limits: a cover of about the colour and shading of skin (another face's skin pasted over the lower
half scored 20-33; a hand: ``hands.py`` looks for those) is not seen; a face covered from its first
frames has a covered baseline and is never flagged; the pipeline does not judge covering while the
lighting stage reports a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import Landmarks

# mesh indices: forehead, nose, right cheek, left cheek, upper lip, chin, right jaw, left jaw,
# under the right eye, under the left eye
POINTS = (151, 4, 50, 280, 164, 199, 172, 397, 118, 347)
BASELINE_FRAMES = 3
_WEIGHTS = np.array([0.5, 1.0, 1.0], np.float32)  # L, a, b


def signature(image: Frame | np.ndarray, lm: Landmarks) -> np.ndarray | None:
    """(len(POINTS), 3) median Lab around each point, or None when a point is outside the frame.
    ``image`` is a :class:`Frame` or a BGR array."""
    frame = image if isinstance(image, Frame) else Frame(image)
    height, width = frame.height, frame.width
    r = max(2, int(0.05 * lm.box.w))
    xy = np.round(lm.points[list(POINTS), :2]).astype(int)
    if (
        (xy[:, 0] < r).any()
        or (xy[:, 1] < r).any()
        or (xy[:, 0] >= width - r).any()
        or (xy[:, 1] >= height - r).any()
    ):
        return None
    x0, y0 = xy.min(axis=0) - r
    x1, y1 = xy.max(axis=0) + r + 1
    lab = frame.lab(slice(y0, y1), slice(x0, x1)).astype(np.float32)
    patches = np.stack([lab[y - r : y + r + 1, x - r : x + r + 1] for x, y in xy - (x0, y0)])
    return np.asarray(np.median(patches.reshape(len(POINTS), -1, 3), axis=1), np.float32)


def deviations(sig: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    diff = sig - baseline
    diff -= np.median(diff, axis=0)
    return np.asarray(np.linalg.norm(diff * _WEIGHTS, axis=1))


@dataclass(slots=True)
class _Baseline:
    samples: list[np.ndarray] = field(default_factory=list)
    mean: np.ndarray | None = None


class CoverWatch:
    """Per-track baselines of one source."""

    def __init__(self, *, max_deviation: float = 40.0, min_regions: int = 2, follow: float = 0.05) -> None:
        self.max_deviation = max_deviation
        self.min_regions = min_regions
        self.follow = follow
        self._tracks: dict[int, _Baseline] = {}

    def update(self, track: int, sig: np.ndarray, clean_view: bool) -> bool:
        """Whether ``track`` is covered now. ``clean_view``: well lit, fully visible and frontal,
        so this view may build or follow the baseline."""
        base = self._tracks.setdefault(track, _Baseline())
        if base.mean is None:
            if clean_view:
                base.samples.append(sig)
                if len(base.samples) >= BASELINE_FRAMES:
                    base.mean = np.mean(base.samples, axis=0)
                    base.samples.clear()
            return False
        covered = int((deviations(sig, base.mean) > self.max_deviation).sum()) >= self.min_regions
        if clean_view and not covered:
            base.mean = (1 - self.follow) * base.mean + self.follow * sig
        return covered

    def ready(self, track: int) -> bool:
        """Whether ``track`` has its baseline (covering can be judged)."""
        base = self._tracks.get(track)
        return base is not None and base.mean is not None

    def forget_except(self, live: tuple[int, ...]) -> None:
        for tid in set(self._tracks) - set(live):
            del self._tracks[tid]
