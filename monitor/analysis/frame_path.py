"""The one frame path: a camera's (or a recording's) frames → sampler → analysis → observation.

Theory of operation. A live call (``monitor/call``), replay (``monitor/replay``) and the capacity
bench compose the same stages, so a frame is chosen, analysed and learnt from the same way
everywhere:

- :class:`Sampler` decides which frames of one source are analysed (``cadence.py``: the busy
  and calm paces, the change gate) and makes each chosen one a :class:`Sample`: its times, the
  picture, and how much it matters (``changed``: the change gate brought it in, someone may have
  walked in; ``urgent``: the call is not live and its security check needs fresh frames).
- An :class:`Analysis` takes samples: :class:`InlineAnalysis` runs the source's pipeline in this
  process (replay, the bench's naive relay); ``monitor.call.sampler.PoolAnalysis`` hands them to
  the worker processes (live calls, the bench's forwarding relay), at most one in flight per
  source. Either way each result comes back as an :class:`Analysed` (its sample, observation and
  whether the frame was *steady*), at once inline, later from the pool.
- The sampler learns from each result whether the frame was steady (what picks the calm pace).

:class:`FramePath` is the sampler and the analysis of one source put together. What follows the
observation (the call's policy session and what its decisions do, or replay's timeline) is the
composer's. The stages hold no clock and do no I/O: time is what the caller says it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS, CHANGE_THRESHOLD, Cadence
from policies.events import Observation

if TYPE_CHECKING:  # the models: loaded where frames are analysed, never by a relay that only samples
    from monitor.analysis.frame import Frame
    from monitor.analysis.pipeline import FrameResult


class Picture(Protocol):
    """A decoded frame as the stages read it (``monitor.media.picture.Picture``)."""

    def luma_thumbnail(self) -> np.ndarray: ...  # the change gate's (``cadence.THUMB_STEP``)

    def rgb(self) -> np.ndarray: ...  # what the models read

    def i420(self) -> np.ndarray: ...  # what goes to a worker process


@dataclass(frozen=True, slots=True)
class Sample:
    """A frame the sampler chose for analysis."""

    source: str
    t: float  # media time: the cadence's grid
    at: float  # call time the observation is stamped with (``t`` plus the sampler's offset)
    step: float  # the frame interval around it
    picture: Picture
    changed: bool  # the change gate brought it in (the picture of a live call changed)
    urgent: bool  # the call is not live: its security check needs fresh frames
    calm: bool  # the calm pace applied (the call live, the frame before it steady)


@dataclass(frozen=True, slots=True)
class Analysed:
    """A sample's analysis came back."""

    sample: Sample
    observation: Observation
    steady: bool  # nothing in the frame needs watching closely (``FrameResult.steady``)
    result: FrameResult | None = None  # analysed in this process: the boxes, timings, model runs


class Sampler:
    """Which frames of one source are analysed. Offer it every frame in media-time order."""

    def __init__(
        self,
        source: str,
        busy_fps: float = ANALYSIS_FPS,
        calm_fps: float | None = CALM_FPS,
        change_threshold: float | None = CHANGE_THRESHOLD,
        *,
        offset: float = 0.0,
    ) -> None:
        """``offset``: the call time of media time 0 (replay's ``--offset``; live frames are
        timed in call time already)."""
        self.source = source
        self.offset = offset
        self.cadence = Cadence(busy_fps, calm_fps, change_threshold)
        self._learned: Sample | None = None

    def offer(self, t: float, step: float, live: bool, picture: Picture) -> Sample | None:
        """The frame at media time ``t`` as a sample if it is to be analysed, else None."""
        cadence = self.cadence
        gated = cadence.gated
        if not cadence.due(t, step, live, picture.luma_thumbnail):
            return None
        changed = cadence.gated > gated
        return Sample(self.source, t, self.offset + t, step, picture, changed, not live, cadence.calm(live))

    def taken(self, sample: Sample) -> None:
        """Analysis took ``sample``: no frame is due before the next slot, and until its result
        comes back the busy pace applies (unless it is back already: analysed inline)."""
        if self._learned is not sample:
            self.cadence.analysed(sample.t, sample.step, False, None)

    def learned(self, analysed: Analysed) -> None:
        """A result came back: whether its frame was steady sets the pace from here on."""
        sample = analysed.sample
        self.cadence.analysed(sample.t, sample.step, analysed.steady, sample.picture.luma_thumbnail)
        self._learned = sample


class Analysis(Protocol):
    """Where samples are analysed (see the theory of operation). ``submit`` is False when the
    sample cannot be taken now (a frame of its source is still being analysed)."""

    def busy(self, source: str) -> bool: ...

    def submit(self, sample: Sample) -> bool: ...


class Pipeline(Protocol):
    """One source's analysis (``monitor.analysis.pipeline.FramePipeline``)."""

    def process(self, image: Frame, t: float, *, changed: bool = False) -> FrameResult: ...


OnAnalysed = Callable[[Analysed], None]


class InlineAnalysis:
    """Analysis on the calling thread, one pipeline per source; ``submit`` returns once the result
    has gone to ``on_analysed``."""

    def __init__(self, on_analysed: OnAnalysed) -> None:
        self.on_analysed = on_analysed
        self.pipelines: dict[str, Pipeline] = {}

    def add(self, source: str, pipeline: Pipeline) -> None:
        self.pipelines[source] = pipeline

    def busy(self, source: str) -> bool:
        return False

    def submit(self, sample: Sample) -> bool:
        from monitor.analysis.frame import Frame

        frame = Frame.from_rgb(sample.picture.rgb())  # what the models read: no BGR round trip
        result = self.pipelines[sample.source].process(frame, sample.at, changed=sample.changed)
        self.on_analysed(Analysed(sample, result.observation, bool(result.steady), result))
        return True

    def close(self) -> None:
        for pipeline in self.pipelines.values():
            close = getattr(pipeline, "close", None)
            if close is not None:
                close()


class FramePath:
    """One source's sampler and the analysis its samples go to."""

    def __init__(self, sampler: Sampler, analysis: Analysis) -> None:
        self.sampler = sampler
        self.analysis = analysis

    @property
    def source(self) -> str:
        return self.sampler.source

    def busy(self) -> bool:
        """A frame of this source is being analysed (keep only the newest frame meanwhile)."""
        return self.analysis.busy(self.sampler.source)

    def offer(self, t: float, step: float, live: bool, picture: Picture) -> Sample | None:
        """Offer one frame; the sample that went to analysis, or None (not due, or not taken)."""
        sample = self.sampler.offer(t, step, live, picture)
        if sample is None or not self.analysis.submit(sample):
            return None
        self.sampler.taken(sample)
        return sample

    def learned(self, analysed: Analysed) -> None:
        self.sampler.learned(analysed)


__all__ = [
    "Analysed",
    "Analysis",
    "FramePath",
    "InlineAnalysis",
    "OnAnalysed",
    "Picture",
    "Pipeline",
    "Sample",
    "Sampler",
]
