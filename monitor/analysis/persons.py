"""People in view whose face cannot be checked (back of the head, face hidden), via MediaPipe Pose.

Theory of operation: BlazePose (model_complexity=1, the only pose model shipped in the 0.10.14
wheel: 0 and 2 are downloaded at first use, which must never happen) finds at most one person. The
person counts as *without a face* when their shoulders are clearly visible, they are big enough to be
a person at the camera (shoulder width >= ``min_shoulder_width`` of the frame: BlazePose also fires on
cartoon animals, whose "shoulders" come out a few percent wide), and their head (the midpoint of
nose and ears) lies in none of the confirmed face boxes. Pose costs ~20-40 ms, so it runs every
``period_s`` of media time and the last answer is reused in between; the caller may pass another
period for one call (the pipeline passes a longer one while the frame is steady, and 0, a check
now, when the picture changed).

Someone beside the caller. Because BlazePose sees one person, a person it finds *with* a face
(usually the booked caller, the biggest body in view) hides anyone else: on real footage (pose2sim's
cam04, a man with his back to the camera, cut in beside the booked caller: back_beside.webm) the
whole frame counted him on 0 of 70 samples. So the side strips left and right of that person's head
and shoulders are searched once more when at least ``min_strip_width`` of the frame wide (room for
a body with shoulders of ``min_shoulder_width`` and some air; the booked man in the middle of
clean.webm leaves at most 0.25, so a centred caller costs no second search) and holding no
confirmed face (pose would most likely find that face's person again, who does not count; this
keeps an intruder's first frames, already paying for identity, cheap), and a faceless person there
counts too, unless they touch the frame's side (``min_edge_gap``, see ``_inside``): 66 of 70
samples. Masking the found person out (grey over their landmarks' box) and searching the whole
frame again found 34 of 70: the caller's landmarks often reach into the other body. A person
found beside the caller is *held* for ``hold_checks`` further checks that miss them (each a fresh
search, at the counter's own period even when the caller asks for a steady one), so a single miss
does not clear the finding between samples; a person found on the whole frame (nobody there to hide
them) is not held: a lone faceless person (``back_of_head``) is judged on each check alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mediapipe as mp
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.runtime import quiet_native_logs

_NOSE, _LEFT_EAR, _RIGHT_EAR, _LEFT_SHOULDER, _RIGHT_SHOULDER = 0, 7, 8, 11, 12
_HEAD_AND_SHOULDERS = range(13)  # BlazePose's face points and both shoulders


@dataclass(frozen=True, slots=True)
class _Person:
    has_face: bool  # the head lies in a confirmed face box
    x0: int  # column span of the head and shoulders, in the whole frame's pixels
    x1: int


class FacelessPersonCounter:
    def __init__(
        self,
        *,
        period_s: float = 1.0,
        min_shoulder_width: float = 0.15,
        min_visibility: float = 0.8,
        min_strip_width: float = 0.3,
        hold_checks: int = 2,
        min_edge_gap: float = 0.02,
    ) -> None:
        self.period_s = period_s
        self.min_shoulder_width = min_shoulder_width
        self.min_visibility = min_visibility
        self.min_strip_width = min_strip_width
        self.hold_checks = hold_checks
        self.min_edge_gap = min_edge_gap
        with quiet_native_logs():
            self._pose: Any = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=False
            )
            self._pose.process(np.zeros((64, 64, 3), np.uint8))
        self._last_t: float | None = None
        self._last = 0
        self._beside = 0  # persons last found beside a person with a face
        self._misses = 0  # checks since then that did not find them
        self.checks = 0  # person checks made (benchmarks count the work)
        self.runs = 0  # pose model runs: one per check, plus one per side strip searched

    def count(
        self, frame: Frame, t: float, face_boxes: tuple[Box, ...], period_s: float | None = None
    ) -> int:
        """Faceless persons in view, measured at most every ``period_s`` (default: the counter's;
        while a person found beside someone is held, never longer than the counter's)."""
        period = self.period_s if period_s is None else period_s
        if self._beside:
            period = min(period, self.period_s)
        if self._last_t is not None and 0 <= t - self._last_t < period:
            return self._last
        self._last_t = t
        self.checks += 1
        self._last = self._measure(frame, face_boxes)
        return self._last

    @property
    def holding(self) -> bool:
        """A person found beside someone is being held (the next check is due at the counter's period)."""
        return self._beside > 0

    def _measure(self, frame: Frame, face_boxes: tuple[Box, ...]) -> int:
        found = self._search(frame.rgb, 0, frame.width, face_boxes)
        if found is None or not found.has_face:
            self._beside = 0
            return 0 if found is None else 1
        beside = 0
        strips = ((0, found.x0), (found.x1, frame.width))
        centres = [box.x + box.w / 2 for box in face_boxes]
        for a, b in strips:
            # a strip with a face in it is skipped: pose there finds one person, most likely the one
            # with the face, who does not count (a new face in view already costs its identity work)
            if b - a >= self.min_strip_width * frame.width and not any(a <= c < b for c in centres):
                other = self._search(frame.rgb[:, a:b], a, frame.width, face_boxes)
                beside += other is not None and not other.has_face and self._inside(other, frame.width)
        if beside:
            self._beside, self._misses = beside, 0
        elif self._beside:
            self._misses += 1
            if self._misses > self.hold_checks:
                self._beside = 0
        return beside or self._beside

    def _inside(self, person: _Person, width: int) -> bool:
        """Whether the person's head and shoulders stay clear of the frame's sides: someone cut by
        the edge is walking in or out, and their face, if they face the camera, is the face
        stage's to judge once it is in view (unbooked_walk_in: a woman sliding in, her face not yet
        confirmed, was counted here)."""
        gap = self.min_edge_gap * width
        return person.x0 > gap and person.x1 < width - gap

    def _search(
        self, rgb: np.ndarray, x_off: int, full_width: int, face_boxes: tuple[Box, ...]
    ) -> _Person | None:
        """The person pose finds in ``rgb`` (columns ``x_off``.. of a ``full_width`` frame), if big
        and clear enough to count; pixel coordinates are the whole frame's."""
        self.runs += 1
        result = self._pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        h, w = rgb.shape[:2]
        ls, rs = lm[_LEFT_SHOULDER], lm[_RIGHT_SHOULDER]
        if min(ls.visibility, rs.visibility) < self.min_visibility:
            return None
        if abs(ls.x - rs.x) * w < self.min_shoulder_width * full_width:
            return None
        head = [lm[i] for i in (_NOSE, _LEFT_EAR, _RIGHT_EAR)]
        hx = x_off + sum(p.x for p in head) / 3 * w
        hy = sum(p.y for p in head) / 3 * h
        has_face = False
        for box in face_boxes:
            near = box.square(1.6)
            if near.x <= hx <= near.x + near.w and near.y <= hy <= near.y + near.h:
                has_face = True
        xs = [x_off + lm[i].x * w for i in _HEAD_AND_SHOULDERS]
        x0 = max(0, min(int(min(xs)), full_width))
        x1 = max(0, min(int(max(xs)) + 1, full_width))
        return _Person(has_face, x0, x1)

    def close(self) -> None:
        self._pose.close()
