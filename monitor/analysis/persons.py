"""People in view whose face cannot be checked (back of the head, face hidden), via MediaPipe Pose.

Theory of operation: BlazePose (model_complexity=1, the only pose model shipped in the 0.10.14
wheel: 0 and 2 are downloaded at first use, which must never happen) finds at most one person. The
person counts as *without a face* when their shoulders are clearly visible, they are big enough to be
a person at the camera (shoulder width >= ``min_shoulder_width`` of the frame: BlazePose also fires on
cartoon animals, whose "shoulders" come out a few percent wide), and their head (the midpoint of
nose and ears) lies in none of the confirmed face boxes. Pose costs ~20 ms, so it runs every
``period_s`` of media time and the last answer is reused in between; the caller may pass another
period for one call (the pipeline passes a longer one while the frame is steady, and 0, a check
now, when the picture changed).
"""

from __future__ import annotations

from typing import Any

import mediapipe as mp
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.runtime import quiet_native_logs

_NOSE, _LEFT_EAR, _RIGHT_EAR, _LEFT_SHOULDER, _RIGHT_SHOULDER = 0, 7, 8, 11, 12


class FacelessPersonCounter:
    def __init__(
        self, *, period_s: float = 1.0, min_shoulder_width: float = 0.15, min_visibility: float = 0.8
    ) -> None:
        self.period_s = period_s
        self.min_shoulder_width = min_shoulder_width
        self.min_visibility = min_visibility
        with quiet_native_logs():
            self._pose: Any = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=False
            )
            self._pose.process(np.zeros((64, 64, 3), np.uint8))
        self._last_t: float | None = None
        self._last = 0
        self.checks = 0  # times pose has run (benchmarks count the work)

    def count(
        self, frame: Frame, t: float, face_boxes: tuple[Box, ...], period_s: float | None = None
    ) -> int:
        """Faceless persons in view, measured at most every ``period_s`` (default: the counter's)."""
        period = self.period_s if period_s is None else period_s
        if self._last_t is not None and 0 <= t - self._last_t < period:
            return self._last
        self._last_t = t
        self.checks += 1
        self._last = self._measure(frame, face_boxes)
        return self._last

    def _measure(self, frame: Frame, face_boxes: tuple[Box, ...]) -> int:
        result = self._pose.process(frame.rgb)
        if result.pose_landmarks is None:
            return 0
        lm = result.pose_landmarks.landmark
        ls, rs = lm[_LEFT_SHOULDER], lm[_RIGHT_SHOULDER]
        if min(ls.visibility, rs.visibility) < self.min_visibility:
            return 0
        if abs(ls.x - rs.x) < self.min_shoulder_width:
            return 0
        head = [lm[i] for i in (_NOSE, _LEFT_EAR, _RIGHT_EAR)]
        hx = sum(p.x for p in head) / 3 * frame.width
        hy = sum(p.y for p in head) / 3 * frame.height
        for box in face_boxes:
            near = box.square(1.6)
            if near.x <= hx <= near.x + near.w and near.y <= hy <= near.y + near.h:
                return 0
        return 1

    def close(self) -> None:
        self._pose.close()
