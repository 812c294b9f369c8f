"""Which frames of a recording replay analyses: a busy and a calm pace on one grid, plus a change gate.

Theory of operation
-------------------
Every frame is decoded, but analysis costs 10-100 times more than decoding, so replay analyses only
the frames the policy needs and skips the rest on purpose. Analysed frames sit on a grid of
``busy_fps`` slots per second of media time (every 5th frame of a 30 fps clip at 6 fps):

- *busy*, every slot: while the call is not live (verifying or paused: the security check wants
  fresh, dense observations) or the last analysed frame was not steady (``FrameResult.steady``:
  a face new, missing, partial, turned away, badly lit or not yet identified, a detector blip, a
  person without a face). 6 observations a second keep every policy finding continuous (it
  clears after 0.5 s unseen) and place every decision within 0.17 s of per-frame analysis.
- *calm*, every ``calm_slots``-th slot: while the call is live and the last analysed frame was
  steady. Observations stay well inside the security check's freshness window (1 s).
- *change gate*, while calm: each skipped frame's luma thumbnail (every 8th pixel of every 8th
  row of the Y plane, read without any colour conversion) is compared with the last analysed
  frame's; when some block of it (a sixth of the picture's height square) changed by more than
  ``change_threshold`` grey levels on average, the frame is analysed at once. A person walking
  in or out, a hand over the face is then seen within a frame or two instead of up to a calm
  interval late. A talking, nodding head changes blocks by up to ~36 over half a second
  (measured on the fixtures), a person entering by 90-160. The gate also fires when the whole
  picture got brighter or darker by more than ``BRIGHTNESS_THRESHOLD`` on average (a light
  switched off or on; a moving head shifts the average by a few grey levels at most).

The gate only ever adds analysed frames, so a change it misses is still seen at the next calm
slot. The cadence is pure bookkeeping on media time: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

THUMB_STEP = 8  # the luma thumbnail keeps every 8th pixel of every 8th row
CHANGE_THRESHOLD = 50.0  # grey levels, mean over a block: the change gate fires above it
BRIGHTNESS_THRESHOLD = 12.0  # grey levels, signed mean over the picture: ... and above this
#: Frames analysed per second of media while anything is changing (busy); live calls and replay alike.
ANALYSIS_FPS = 6.0
#: Frames analysed per second of media while the call is live and steady (calm): see
#: ``monitor/replay/replay.py`` for why not fewer.
CALM_FPS = 2.0


def block_change(a: np.ndarray, b: np.ndarray) -> float:
    """The largest mean absolute difference over square blocks (a sixth of the height) of two
    thumbnails of the same shape."""
    h, w = a.shape
    k = max(1, round(min(h, w) / 6))
    rows, cols = h // k * k, w // k * k
    if rows == 0 or cols == 0:
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
    d = np.abs(np.subtract(a[:rows, :cols], b[:rows, :cols], dtype=np.int16))
    # the largest block sum over the block size: the same value as the largest block mean, cheaper
    return float(d.reshape(rows // k, k, cols // k, k).sum(axis=(1, 3)).max()) / (k * k)


class Cadence:
    """Decides, frame by frame, whether to analyse. Feed it every decoded frame in order."""

    def __init__(
        self, busy_fps: float, calm_fps: float | None, change_threshold: float | None = CHANGE_THRESHOLD
    ) -> None:
        if not (busy_fps > 0):
            raise ValueError(f"analysis rate must be positive, got {busy_fps!r}")
        if calm_fps is not None and not (calm_fps > 0):
            raise ValueError(f"calm analysis rate must be positive, got {calm_fps!r}")
        self.period = 1.0 / busy_fps
        # the calm pace takes every calm_slots-th slot (1: no calm pace)
        self.calm_slots = max(1, round(busy_fps / calm_fps)) if calm_fps is not None else 1
        self.change_threshold = change_threshold
        self._next_slot = 0  # the first slot after the last analysed frame
        self._steady = False  # the last analysed frame was steady
        self._thumb: np.ndarray | None = None  # the last analysed frame's luma thumbnail
        self._thumb_mean = 0.0  # ... and its mean (asked for on every calm frame)
        self.gated = 0  # frames analysed early because the change gate fired

    def calm(self, live: bool) -> bool:
        """Whether the calm pace applies now (the call is live and the last frame was steady)."""
        return live and self._steady and self.calm_slots > 1

    def due(self, t: float, step: float, live: bool, thumb: Callable[[], np.ndarray]) -> bool:
        """Whether the frame at media time ``t`` should be analysed. ``step`` is the frame
        interval (frames within a quarter of it of a slot count as on it); ``thumb`` gives the
        frame's luma thumbnail, only asked for while calm."""
        calm = self.calm(live)
        slots = self.calm_slots if calm else 1
        if t + step / 4 >= (self._next_slot + slots - 1) * self.period:
            return True
        if calm and self.change_threshold is not None and self._thumb is not None:
            current = thumb()
            if current.shape == self._thumb.shape and (
                block_change(current, self._thumb) > self.change_threshold
                or abs(float(current.mean()) - self._thumb_mean) > BRIGHTNESS_THRESHOLD
            ):
                self.gated += 1
                return True
        return False

    def analysed(self, t: float, step: float, steady: bool, thumb: Callable[[], np.ndarray] | None) -> None:
        """Record that the frame at ``t`` was analysed and whether its result was steady. Pass
        ``thumb`` when the change gate is on (the thumbnail is taken only for steady frames)."""
        self._next_slot = math.floor((t + step / 4) / self.period) + 1
        self._steady = steady
        gate = steady and thumb is not None and self.change_threshold is not None
        self._thumb = thumb() if gate and thumb is not None else None
        self._thumb_mean = float(self._thumb.mean()) if self._thumb is not None else 0.0


__all__ = ["BRIGHTNESS_THRESHOLD", "CHANGE_THRESHOLD", "THUMB_STEP", "Cadence", "block_change"]
