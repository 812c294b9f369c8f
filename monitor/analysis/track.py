"""Tracking faces across frames so that each person keeps one track id.

Theory of operation: greedy matching of this frame's detections to live tracks, best pairs first,
by IoU (>= ``min_iou``) or, for fast movement between sampled frames, by centre distance (<
``max_jump`` x the track's box size, a bound in space whatever the gap). Unmatched detections open
new tracks (ids count up from 1 and are never reused); a track unseen for more than
``max_missed_s`` seconds of media time is dropped. Time, not frame count, so the tracker behaves
the same whatever share of frames is analysed.

Memory and look. The memory is long (seconds: ``AnalysisSettings.track_max_missed_s``) so that a
face analysed sparsely, or missed for a moment, keeps its track and its identity votes instead of
paying for new samples. A position alone says little about *who* is back after a gap, so when the
caller passes each detection's *look* (the 16 x 16 grey thumbnail of its box, as the pipeline
keeps it) a track unseen for longer than ``position_only_s`` is only re-found by a face that still
looks as it did when last seen (``look_change`` <= ``max_look_change``); another person appearing
where the first one left opens a new track, with no verdict. Shorter gaps are bridged by position
alone: a face moving out of the picture or turning changes its look between
two near frames while staying the same person, and the pipeline re-checks the identity of any
track after a break, or whose look drifted from its latest identity sample. So past
``position_only_s`` a track is kept only for a face that still looks the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.detect import Detection


def look_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level change between two face looks, after removing the overall shift."""
    d = (a - b).astype(np.float32)
    return float(np.abs(d - d.mean()).mean())


@dataclass(frozen=True, slots=True)
class TrackedDetection:
    track: int
    detection: Detection
    first_seen: float  # media time the track opened
    hits: int  # frames this track has been detected in, this one included
    continuous: bool = False  # also detected on the previous update, and matched by overlap (IoU)


@dataclass(slots=True)
class _Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int
    look: np.ndarray | None = None  # the face's look when last seen (when the caller gives looks)


class Tracker:
    def __init__(
        self,
        *,
        min_iou: float = 0.2,
        max_jump: float = 0.6,
        max_missed_s: float = 2.0,
        position_only_s: float = 0.7,
        max_look_change: float = 20.0,
    ) -> None:
        self.min_iou = min_iou
        self.max_jump = max_jump
        self.max_missed_s = max_missed_s
        self.position_only_s = position_only_s
        self.max_look_change = max_look_change
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._last_update: float | None = None

    @property
    def live_ids(self) -> tuple[int, ...]:
        return tuple(self._tracks)

    def _affinity(self, track: _Track, box: Box) -> float:
        """Higher is better; 0 means no match. IoU in (0, 1], else a centre-distance score below it."""
        iou = track.box.iou(box)
        if iou >= self.min_iou:
            return 1.0 + iou
        size = max(track.box.w, track.box.h, 1.0)
        jump = math.hypot(track.box.cx - box.cx, track.box.cy - box.cy) / size
        scale = box.w / track.box.w if track.box.w > 0 else 0.0
        if jump < self.max_jump and 0.6 < scale < 1.6:
            return 1.0 - jump / self.max_jump
        return 0.0

    def _same_look(self, track: _Track, look: np.ndarray | None, t: float) -> bool:
        """Whether ``track`` may be re-found at ``t`` by a face with ``look`` (module doc)."""
        if t - track.last_seen <= self.position_only_s or track.look is None or look is None:
            return True
        return look_change(track.look, look) <= self.max_look_change

    def update(
        self, detections: tuple[Detection, ...], t: float, looks: Sequence[np.ndarray] | None = None
    ) -> tuple[TrackedDetection, ...]:
        """Assign this frame's detections to tracks, in the order given. ``looks``: each detection's
        16 x 16 grey thumbnail (module doc), so that a track re-found after a gap keeps its face."""
        if looks is not None and len(looks) != len(detections):
            raise ValueError(f"{len(looks)} looks for {len(detections)} detections")
        for tid in [tid for tid, tr in self._tracks.items() if t - tr.last_seen > self.max_missed_s]:
            del self._tracks[tid]
        pairs = sorted(
            (
                (self._affinity(tr, det.box), tid, i)
                for tid, tr in self._tracks.items()
                for i, det in enumerate(detections)
            ),
            reverse=True,
        )
        assigned: dict[int, tuple[int, bool]] = {}  # detection index -> (track id, continuous)
        used: set[int] = set()
        previous = self._last_update
        for score, tid, i in pairs:
            if score <= 0.0:
                break
            if i in assigned or tid in used:
                continue
            if not self._same_look(self._tracks[tid], looks[i] if looks is not None else None, t):
                continue
            assigned[i] = (tid, score > 1.0 and self._tracks[tid].last_seen == previous)
            used.add(tid)
        out = []
        for i, det in enumerate(detections):
            if i in assigned:
                tid, continuous = assigned[i]
            else:
                tid, continuous = self._next_id, False
                self._next_id += 1
                self._tracks[tid] = _Track(tid, det.box, t, t, 0)
            tr = self._tracks[tid]
            tr.box, tr.last_seen, tr.hits = det.box, t, tr.hits + 1
            tr.look = looks[i] if looks is not None else None
            out.append(TrackedDetection(tid, det, tr.first_seen, tr.hits, continuous))
        self._last_update = t
        return tuple(out)

    def reset(self) -> None:
        self._tracks.clear()
        self._last_update = None
