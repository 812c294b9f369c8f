"""A live camera on the frame path: keep-latest tap → sampler → the worker pool.

Theory of operation. Analysed cameras are sampled with replay's cadence
(``monitor/analysis/cadence.py``, through the shared ``monitor/analysis/frame_path.py``): 6 frames
a second on replay's grid while the call is not live or the last analysed frame was not steady,
replay's calm pace (2 a second) while it is live and steady, and at once when the picture changes
(the change gate: a person walking in). So live and replay analyse the same kind of frames, and
steady calls leave a shared worker free for the frames that matter. Whether a frame was steady
comes back with its result (``AnalysisPool.steady``); until then the busy pace applies. A frame
the change gate let through is an *alarm* and any frame of a call that is not live (its security
check needs fresh observations) is *urgent*: the pool's scheduling puts them before other waiting
frames (``monitor/workers/analysis_pool.py``).

Keep-latest: a :class:`Camera` hands the newest frame to analysis only when no frame of it is with
the worker and the cadence wants it; frames in between are dropped, never queued. Its
:meth:`Camera.pump` runs at every new frame and again when a result comes back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.analysis.frame_path import Analysed, FramePath, Sample
from monitor.media.picture import Picture
from monitor.media.tracks import Feed, FrameTap
from monitor.workers.analysis_pool import AnalysisPool
from policies.events import Observation

#: Live camera frames are ~30 fps; frames within a quarter of this of an analysis slot are on it.
FRAME_STEP_S = 1 / 30


class PoolAnalysis:
    """The frame path's analysis in worker processes (``AnalysisPool``), at most one frame in flight
    per source. The pool reports results to whoever made it (``Calls.on_result`` in a server);
    :meth:`analysed` turns one into an :class:`~monitor.analysis.frame_path.Analysed`."""

    def __init__(self, pool: AnalysisPool) -> None:
        self.pool = pool
        # the frames sent last, per source: a result is matched to its frame by time (a new frame
        # can be sent between a result's arrival and its handling)
        self._sent: dict[str, deque[Sample]] = {}

    def busy(self, source: str) -> bool:
        return self.pool.busy(source)

    def submit(self, sample: Sample) -> bool:
        i420 = sample.picture.i420()
        if not self.pool.submit(sample.source, i420, sample.at, urgent=sample.urgent, alarm=sample.changed):
            return False
        self._sent.setdefault(sample.source, deque(maxlen=2)).append(sample)
        return True

    def analysed(self, source: str, observation: Observation) -> Analysed | None:
        """The result of ``source``'s frame at ``observation.t``; None if that frame is not known."""
        sample = next((s for s in self._sent.get(source, ()) if s.at == observation.t), None)
        if sample is None:
            return None
        return Analysed(sample, observation, self.pool.steady(source))

    def in_flight_t(self, source: str) -> float | None:
        return self.pool.in_flight_t(source)

    def forget(self, source: str) -> None:
        self._sent.pop(source, None)
        self.pool.close(source)


@dataclass(frozen=True, slots=True)
class Taken:
    """The newest frame a camera's tap held when it was pumped."""

    frame: Any  # av.VideoFrame
    t: float  # call time it arrived
    picture: Picture
    sample: Sample | None  # the sample that went to analysis, if it did


class Camera:
    """One analysed camera: its keep-latest tap and its frame path. ``on_frame`` runs at each new
    frame (the owner pumps there)."""

    def __init__(
        self, feed: Feed, path: FramePath, now: Callable[[], float], on_frame: Callable[[], None]
    ) -> None:
        self.path = path
        self.tap = FrameTap(feed, on_frame, now)

    def start(self) -> None:
        self.tap.start()

    def stop(self) -> None:
        self.tap.stop()

    def pump(self, live: bool) -> Taken | None:
        """Take the newest frame unless one is with the worker, and offer it to the frame path."""
        if self.path.busy():
            return None
        item = self.tap.take()
        if item is None:
            return None
        frame, t = item
        picture = Picture(frame)
        return Taken(frame, t, picture, self.path.offer(t, FRAME_STEP_S, live, picture))

    def learned(self, analysed: Analysed) -> None:
        self.path.learned(analysed)


__all__ = ["FRAME_STEP_S", "Camera", "PoolAnalysis", "Taken"]
