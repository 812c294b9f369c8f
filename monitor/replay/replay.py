"""`monitor replay`: a recorded call video → the same analysis and policy as a live call → timeline.

Theory of operation
-------------------
Time. The first decoded frame is the booked ``starts_at`` plus ``--offset`` seconds; every frame's
call time is ``offset + (pts - first pts)``, so the session sees exactly the kind of time a live
call gives it (seconds since the booked start) and ends at ``ends_at`` whatever the video length.
Timeline lines carry ``t`` from the first frame (``call_t`` too when an offset is given); with an
offset, what fell due before the piece starts (the call going ``verifying`` at call time 0) is
written first with its true, negative ``t``.

Sampling. Every frame is decoded (VP8/H.264 need their reference frames), but only the frames the
policy needs are converted (straight to RGB, what the models read) and analysed; the rest are
skipped on purpose (``monitor/analysis/cadence.py``): 6 frames a second (``ANALYSIS_FPS``, every 5th frame
of a 30 fps clip) whenever the call is not live or anything in the picture is changing or
uncertain, 2 a second (``CALM_FPS``) while the call is live and the last analysed frame was
steady, plus at once any frame in which a cheap luma comparison sees the picture change. At 6 fps
every finding stays continuous and every decision lands within 0.17 s of where per-frame analysis
would put it; the calm pace only applies when nothing is happening, and the change gate brings the
first frame of a change back to within a frame or two; such a frame is handed to the pipeline as
``changed`` (it then also looks for a person without a visible face). The identity samples and
face meshes follow media-time periods of their own but can only land on analysed frames: a new
track's first samples every 0.17 s, so the clean fixture goes live at about 2.3 s (target: 3 s).
The frames go through the one frame path live calls use (``monitor/analysis/frame_path.py``:
sampler → analysis → observation), with the analysis inline. ``ReplayStats`` counts the frames
analysed, those analysed while calm, those the change gate added and the model runs (meshes,
embeddings, pose checks); ``make bench`` measures the speed against the 20x real-time target.

Why the calm pace is 2 a second and not less. While calm the costly samplers already rest (a
confident identity is re-checked every minute unless the face's look changes, a mesh every 3 s
unless the look changes, pose every 30 s unless the picture changes: ``monitor/analysis``), so a
calm frame costs little more than the face detector (~6 ms); the pace itself is what is left to
trade. It is the backstop for an entrance the change gate cannot see (a face of 60-80 px, the
smallest identity will embed, against a background of similar brightness changes no block enough),
and it bounds the target "an unbooked face pauses within 1.5 s of appearing": seen at the next calm
slot, three identity samples on the busy grid (0.33 s), then the policy's ``unbooked_face`` window
(0.5 s). At 2 a second the worst case is 0.5 + 0.33 + 0.5 = 1.33 s, one busy frame of slack for a
sample lost to motion blur; at 1.5 it would be exactly 1.5 s and at 1 a second 1.83 s. Below 1/2 a
second the calm frames would also be further apart than the tracker keeps an unseen face (2.0 s,
and past 0.7 s only a face that still looks the same): every calm frame would open a new track and
re-identify it, so such a pace is refused. ``make bench`` reports the steady-state speed at each
pace.

Order of events into the Session: a ``ParticipantJoined`` for the recording's device (the main
caller, visitor side) at the first frame; then, in media-time order, injected ``--events`` and the
Observations of analysed frames (an injected event at the same time as a frame goes first); a
final ``Tick`` at the last frame's time. Before each injected event a ``Tick`` at its time flushes
whatever fell due, so the ``event`` line sits in time order among the decisions. An injected
event the session refuses (not allowed in its state, or naming a device or a booked person the call
does not have: ``policies.session.RefusedEvent``) is not applied, and noted. Replay stops early
once the session has ended.

Evidence. With ``--evidence DIR`` every alert gets a JPEG of the analysed frame just before its
time (or the one whose observation made it fire, when none is earlier), with each face boxed and
labelled by who the analysis thinks it is (participant id, ``unbooked`` or ``?``), named on the
alert line (``evidence.py``). An alert before the first analysed frame (an event at t = 0) has no
evidence.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS, CHANGE_THRESHOLD
from monitor.analysis.frame_path import Analysed, FramePath, InlineAnalysis, Pipeline, Sampler
from monitor.errors import UserError
from monitor.media.picture import Picture, luma_thumbnail
from monitor.media.video_file import Video
from monitor.record.timeline import decision_record
from monitor.replay.events import InjectedEvent, Record
from monitor.replay.evidence import EvidenceWriter, Seen
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import Alert, Decision, State
from policies.events import Event, ParticipantJoined, Role, Tick


@dataclass
class ReplayStats:
    frames: int = 0  # decoded
    analysed: int = 0
    analysed_calm: int = 0  # of which while calm (the call live, the frame before steady)
    gated: int = 0  # of which early, because the change gate saw the picture change
    media_s: float = 0.0  # first to last frame, plus one frame
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time in the loop (robust when the machine is shared)
    decode_s: float = 0.0  # decoding and RGB conversion (inside the replay loop)
    stage_ms: dict[str, float] = field(default_factory=dict)  # summed over analysed frames
    work: dict[str, int] = field(default_factory=dict)  # model runs (meshes, embeddings, poses), summed
    ended_early: bool = False
    skipped_events: list[str] = field(default_factory=list)  # notes about events not applied


class _FilePicture(Picture):
    """A recording's frame: its luma thumbnail read as the file gives it (``TimedFrame``), its RGB
    made once (evidence may need it again) and counted as decoding."""

    __slots__ = ("_rgb", "_stats")

    def __init__(self, frame: Any, stats: ReplayStats) -> None:
        super().__init__(frame)
        self._rgb: Any = None
        self._stats = stats

    def luma_thumbnail(self, step: int = 8) -> np.ndarray:
        return luma_thumbnail(self.frame, step)

    def rgb(self) -> Any:
        if self._rgb is None:
            clock = time.perf_counter()
            self._rgb = super().rgb()
            self._stats.decode_s += time.perf_counter() - clock
        return self._rgb


class Replay:
    """One replay: a booking's session and the frame path of the recording's device."""

    def __init__(
        self,
        booking: Booking,
        config: PolicyConfig,
        *,
        offset: float = 0.0,
        analysis_fps: float = ANALYSIS_FPS,
        calm_fps: float | None = CALM_FPS,
        change_threshold: float | None = CHANGE_THRESHOLD,
        evidence: Path | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        """``calm_fps`` None (or >= ``analysis_fps``) analyses every slot of the grid;
        ``change_threshold`` None turns the change gate off (``monitor/analysis/cadence.py``)."""
        from monitor.analysis.enrol import enrol_booking
        from monitor.analysis.pipeline import FramePipeline
        from policies.session import Session

        if not (math.isfinite(offset) and offset >= 0):
            raise UserError(f"--offset must be a number of seconds >= 0, got {offset!r}")
        if offset >= booking.duration_s:
            raise UserError(
                f"--offset {offset:g} s is not within the booked call ({booking.duration_s:g} s long)"
            )
        if not (analysis_fps > 0):
            raise UserError(f"analysis rate must be positive, got {analysis_fps!r}")
        self.booking = booking
        self.offset = float(offset)
        if calm_fps is not None and not (calm_fps > 0):
            raise UserError(f"calm analysis rate must be positive, got {calm_fps!r}")
        self.source = booking.main_caller.id
        sampler = Sampler(self.source, analysis_fps, calm_fps, change_threshold, offset=self.offset)
        self.cadence = sampler.cadence
        # the tracker forgets a face unseen for longer than this: a calm pace slower than that would
        # make every calm frame a new, unidentified face (a new track costs 200-300 ms of identity
        # samples, so such a pace runs several times slower, not faster)
        keep = getattr(getattr(pipeline, "settings", None), "track_max_missed_s", None)
        if keep is None:
            from monitor.analysis.pipeline import DEFAULT_SETTINGS

            keep = DEFAULT_SETTINGS.track_max_missed_s
        gap = self.cadence.calm_slots * self.cadence.period
        if gap >= keep:
            raise UserError(
                f"calm analysis rate {calm_fps:g}/s leaves {gap:.2f} s between analysed frames; "
                f"the tracker keeps an unseen face for {keep:g} s"
            )
        self.session = Session.for_booking(booking, config)
        if pipeline is None:
            from monitor.analysis.enrol import EnrolmentError

            try:
                visitors, _prisoner = enrol_booking(booking)
            except EnrolmentError as exc:
                raise UserError(f"booking {booking.call_id}: reference photo {exc}") from None
            pipeline = FramePipeline(visitors, source=self.source, role=Role.VISITOR)
        self.analysis = InlineAnalysis(self._analysed)
        self.analysis.add(self.source, pipeline)
        self.path = FramePath(sampler, self.analysis)
        self.evidence = EvidenceWriter(evidence) if evidence is not None else None
        self._stats = ReplayStats()
        self._emit: Callable[[Record], None] = lambda record: None

    def run(
        self,
        video: Video,
        events: Sequence[InjectedEvent],
        emit: Callable[[Record], None],
        progress: Callable[[float, ReplayStats], None] | None = None,
    ) -> ReplayStats:
        self._stats = stats = ReplayStats()
        self._emit = emit
        started, cpu_started = time.perf_counter(), time.process_time()
        pending = list(events)
        last_t = 0.0
        step = 1.0 / 30.0
        decode_clock = time.perf_counter()
        for tf in video.frames():
            stats.decode_s += time.perf_counter() - decode_clock
            if stats.frames == 0:
                self._handle(ParticipantJoined(self.offset, self.source, Role.VISITOR, self.source, True))
            elif tf.t > last_t:
                step = tf.t - last_t
            stats.frames += 1
            last_t = tf.t
            while pending and pending[0].t <= tf.t and self.session.state is not State.ENDED:
                self._inject(pending.pop(0))
            if self.session.state is State.ENDED:
                stats.ended_early = True
                break
            # an analysed frame comes back through _analysed before offer returns
            self.path.offer(tf.t, step, self.session.state is State.LIVE, _FilePicture(tf.frame, stats))
            if progress is not None:
                progress(tf.t, stats)
            decode_clock = time.perf_counter()
        stats.media_s = last_t + step if stats.frames else 0.0
        if self.session.state is not State.ENDED:
            while pending and pending[0].t <= last_t:
                self._inject(pending.pop(0))
            self._handle(Tick(self.offset + last_t))
        for item in pending:
            stats.skipped_events.append(
                f"line {item.line}: t={item.t:g} is after the end of the video or the call (not applied)"
            )
        stats.gated = self.cadence.gated
        stats.wall_s = time.perf_counter() - started
        stats.cpu_s = time.process_time() - cpu_started
        return stats

    def _analysed(self, analysed: Analysed) -> None:
        """An analysed frame (inline analysis: during ``path.offer``): learn, count, judge."""
        self.path.learned(analysed)
        stats, sample, result = self._stats, analysed.sample, analysed.result
        assert result is not None  # inline analysis hands its FrameResult back
        stats.analysed += 1
        stats.analysed_calm += sample.calm
        for stage, ms in result.timings_ms.items():
            stats.stage_ms[stage] = stats.stage_ms.get(stage, 0.0) + ms
        for kind, n in result.work.items():
            stats.work[kind] = stats.work.get(kind, 0) + n
        if self.evidence is not None:
            self.evidence.seen(Seen(sample.t, sample.picture, result))
        self._handle(analysed.observation)

    def _handle(self, event: Event) -> None:
        for decision in self.session.handle(event):
            self._emit_decision(decision)

    def _inject(self, item: InjectedEvent) -> None:
        from policies.session import RefusedEvent

        self._handle(Tick(self.offset + item.t))
        if self.session.state is State.ENDED:
            self._stats.skipped_events.append(f"line {item.line}: the call had ended (not applied)")
            return
        try:
            decisions = self.session.handle(item.event(self.offset, self.source))
        except RefusedEvent as exc:  # not allowed now, or names a device or person the call lacks
            self._stats.skipped_events.append(f"line {item.line}: {exc} (not applied)")
            return
        self._emit(item.record(self.offset))
        for decision in decisions:
            self._emit_decision(decision)

    def _emit_decision(self, decision: Decision) -> None:
        record = decision_record(decision, self.offset)
        if isinstance(decision, Alert) and self.evidence is not None:
            name = self.evidence.for_alert(decision, decision.t - self.offset)
            if name is not None:
                record["evidence"] = name
        self._emit(record)

    def close(self) -> None:
        self.analysis.close()


__all__ = ["Replay", "ReplayStats"]
