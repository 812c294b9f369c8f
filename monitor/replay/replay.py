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
``ReplayStats`` counts the frames analysed, those analysed while calm, those the change gate added
and the model runs (meshes, embeddings, pose checks); ``make bench`` measures the speed against
the 20x real-time target.

Why the calm pace is 2 a second and not less. While calm the costly samplers already rest (a
confident identity is re-checked every minute unless the face's look changes, a mesh every 3 s
unless the look changes, pose every 30 s unless the picture changes: ``monitor/analysis``), so a
calm frame costs little more than the face detector (~6 ms); the pace itself is what is left to
trade. It is the backstop for an entrance the change gate cannot see (a face of 60-80 px, the
smallest identity will embed, against a background of similar brightness changes no block enough),
and it bounds the target "an unbooked face pauses within 2 s of appearing": seen at the next calm
slot, three identity samples on the busy grid (0.33 s), then the 1 s the policy waits. At 2 a second
the worst case is 0.5 + 0.33 + 1.0 = 1.83 s, one busy frame of slack for a sample lost to motion
blur; at 1.5 it would be exactly 2.0 s and at 1 a second 2.33 s. Below 1/2 a second the calm
frames would also be further apart than the tracker keeps an unseen face (2.0 s, and past 0.7 s
only a face that still looks the same): every calm frame would open a new track and re-identify
it, so such a pace is refused. ``make bench`` reports the
steady-state speed at each pace.

Order of events into the Session: a ``ParticipantJoined`` for the recording's device (the main
caller, visitor side) at the first frame; then, in media-time order, injected ``--events`` and the
Observations of analysed frames (an injected event at the same time as a frame goes first); a
final ``Tick`` at the last frame's time. Before each injected event a ``Tick`` at its time flushes
whatever fell due, so the ``event`` line sits in time order among the decisions. Replay stops
early once the session has ended.

Evidence. With ``--evidence DIR`` every alert gets a JPEG of the analysed frame just before its
time (or the one whose observation made it fire, when none is earlier), with each face boxed and
labelled by who the analysis thinks it is (participant id, ``unbooked`` or ``?``), named on the
alert line. An alert before the first analysed frame (an event at t = 0) has no evidence.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS, CHANGE_THRESHOLD, Cadence
from monitor.analysis.frame import Frame
from monitor.errors import UserError
from monitor.media.video_file import Video
from monitor.record.timeline import decision_record, encode_line
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import Alert, Decision, State
from policies.events import (
    CaptureAttempt,
    Event,
    ParticipantJoined,
    Role,
    StaffEnd,
    StaffPause,
    StaffResume,
    Tick,
)

Record = dict[str, Any]

# ---------------------------------------------------------------- injected events


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    line: int  # 1-based line in the events file
    t: float  # media seconds from the first frame
    kind: str
    fields: dict[str, str]

    def event(self, offset: float, device: str = "") -> Event:
        """The session event, at call time; a capture attempt comes from ``device`` unless it says."""
        at = offset + self.t
        f = self.fields
        if self.kind == "capture_attempt":
            return CaptureAttempt(at, source=f.get("source", device), detail=f.get("detail", ""))
        if self.kind == "staff_pause":
            return StaffPause(at, note=f.get("note", ""), staff=f.get("staff", ""))
        if self.kind == "staff_resume":
            return StaffResume(at, staff=f.get("staff", ""))
        return StaffEnd(at, note=f.get("note", ""), staff=f.get("staff", ""))

    def record(self, offset: float) -> Record:
        rec: Record = {"t": round(self.t, 3), "kind": "event", "event": self.kind, **self.fields}
        if offset:
            rec["call_t"] = round(offset + self.t, 3)
        return rec


_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "capture_attempt": ("source", "detail"),
    "staff_pause": ("note", "staff"),
    "staff_resume": ("staff",),
    "staff_end": ("note", "staff"),
}


def parse_events(text: str, origin: str) -> tuple[InjectedEvent, ...]:
    """JSON lines ``{"t": 12.0, "kind": "capture_attempt", ...}``; blank lines are skipped.

    Raises UserError naming ``origin:line`` and what is wrong. The result is sorted by ``t``
    (stable, so events at the same time keep their file order).
    """
    events: list[InjectedEvent] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{origin}:{number}"
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(doc, dict):
            raise UserError(f"{where}: each line must be a JSON object")
        kind = doc.get("kind")
        if kind not in _EVENT_FIELDS:
            raise UserError(f"{where}: kind must be one of {', '.join(_EVENT_FIELDS)}, got {kind!r}")
        t = doc.get("t")
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise UserError(f"{where}: t must be a number of seconds from the first frame, got {t!r}")
        if t < 0:
            raise UserError(f"{where}: t must not be negative, got {t!r}")
        fields: dict[str, str] = {}
        for key, value in doc.items():
            if key in ("t", "kind"):
                continue
            if key not in _EVENT_FIELDS[kind]:
                allowed = ", ".join(("t", "kind", *_EVENT_FIELDS[kind]))
                raise UserError(f"{where}: unknown field {key!r} for {kind} (allowed: {allowed})")
            if not isinstance(value, str):
                raise UserError(f"{where}: {key} must be text, got {type(value).__name__}")
            fields[key] = value
        events.append(InjectedEvent(number, float(t), kind, fields))
    events.sort(key=lambda e: e.t)
    return tuple(events)


def load_events(path: str | Path) -> tuple[InjectedEvent, ...]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: events file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: events file is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read events file: {exc.strerror or exc}") from None
    return parse_events(text, str(path))


# ---------------------------------------------------------------- evidence frames

_BGR = {"match": (60, 180, 60), "unbooked": (40, 40, 220), "?": (0, 200, 230)}


def face_label(result: Any) -> tuple[str, str]:
    """(text, colour key) for one analysed face: participant id, ``unbooked`` or ``?``."""
    face = result.face
    verdict = face.verdict.value
    if verdict == "match" and face.participant:
        return str(face.participant), "match"
    if verdict == "unbooked":
        return "unbooked", "unbooked"
    return "?", "?"


def draw_evidence(bgr: np.ndarray, frame_result: Any, title: str) -> np.ndarray:
    """A copy of the frame with every face boxed and labelled, and ``title`` at the top."""
    import cv2

    image = bgr.copy()
    for fr in frame_result.faces:
        text, key = face_label(fr)
        colour = _BGR[key]
        box = fr.box_px
        x0, y0 = round(box.x), round(box.y)
        x1, y1 = round(box.x + box.w), round(box.y + box.h)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
        extra = "" if fr.face.visibility.value == "full" else f" ({fr.face.visibility.value})"
        label = f"{text}{extra}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        ty = max(th + 4, y0 - 4)
        tx = min(max(0, x0), image.shape[1] - tw - 2)
        cv2.rectangle(image, (tx, ty - th - 4), (tx + tw + 4, ty + base), colour, -1)
        cv2.putText(image, label, (tx + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    cv2.rectangle(image, (0, 0), (image.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(image, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return image


@dataclass
class EvidenceWriter:
    directory: Path
    count: int = 0

    def write(self, alert: Alert, t_media: float, bgr: np.ndarray, frame_result: Any, frame_t: float) -> str:
        import cv2

        self.count += 1
        name = f"{self.count:03d}-t{t_media:08.3f}-{alert.reason.value}.jpg"
        title = f"t={t_media:.2f}s  {alert.reason.value}  (frame t={frame_t:.2f}s)"
        image = draw_evidence(bgr, frame_result, title)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:  # pragma: no cover - encoding a valid BGR image does not fail
            raise UserError(f"{self.directory}: could not encode evidence image {name}")
        try:
            (self.directory / name).write_bytes(data.tobytes())
        except OSError as exc:
            raise UserError(f"{self.directory}: cannot write evidence image: {exc.strerror or exc}") from None
        return name


# ---------------------------------------------------------------- the replay loop


@dataclass
class ReplayStats:
    frames: int = 0  # decoded
    analysed: int = 0
    analysed_calm: int = 0  # of which while calm (the call live, the frame before steady)
    gated: int = 0  # of which early, because the change gate saw the picture change
    media_s: float = 0.0  # first to last frame, plus one frame
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time in the loop (robust when the machine is shared)
    decode_s: float = 0.0  # decoding and BGR conversion (inside the replay loop)
    stage_ms: dict[str, float] = field(default_factory=dict)  # summed over analysed frames
    work: dict[str, int] = field(default_factory=dict)  # model runs (meshes, embeddings, poses), summed
    ended_early: bool = False
    skipped_events: list[str] = field(default_factory=list)  # notes about events not applied


@dataclass
class _Seen:
    """An analysed frame kept for evidence."""

    t: float  # media time
    frame: Any  # monitor.analysis.frame.Frame (its BGR is converted only if evidence is drawn)
    result: Any


class Replay:
    """One replay: a booking's session and the pipeline for the recording's device."""

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
        pipeline: Any = None,
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
        self.cadence = Cadence(analysis_fps, calm_fps, change_threshold)
        # the tracker forgets a face unseen for longer than this: a calm pace slower than that would
        # make every calm frame a new, unidentified face (measured at 1 a second: 7x slower, not faster)
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
        self.source = booking.main_caller.id
        self.session = Session.for_booking(booking, config)
        if pipeline is None:
            from monitor.analysis.enrol import EnrolmentError

            try:
                visitors, _prisoner = enrol_booking(booking)
            except EnrolmentError as exc:
                raise UserError(f"booking {booking.call_id}: reference photo {exc}") from None
            pipeline = FramePipeline(visitors, source=self.source, role=Role.VISITOR)
        self.pipeline = pipeline
        self.evidence = EvidenceWriter(evidence) if evidence is not None else None

    def run(
        self,
        video: Video,
        events: Sequence[InjectedEvent],
        emit: Callable[[Record], None],
        progress: Callable[[float, ReplayStats], None] | None = None,
    ) -> ReplayStats:
        stats = ReplayStats()
        started, cpu_started = time.perf_counter(), time.process_time()
        pending = list(events)
        previous: _Seen | None = None
        current: _Seen | None = None

        def evidence_for(alert: Alert) -> str | None:
            if self.evidence is None:
                return None
            t = alert.t - self.offset
            seen = previous if (previous is not None and current is not None and t < current.t) else current
            if seen is None:
                return None
            return self.evidence.write(alert, t, seen.frame.bgr, seen.result, seen.t)

        def handle(event: Event) -> None:
            for decision in self.session.handle(event):
                self._emit_decision(decision, emit, evidence_for)

        def inject(item: InjectedEvent) -> None:
            from policies.session import IllegalTransition

            handle(Tick(self.offset + item.t))
            if self.session.state is State.ENDED:
                stats.skipped_events.append(f"line {item.line}: the call had ended (not applied)")
                return
            try:
                decisions = self.session.handle(item.event(self.offset, self.source))
            except IllegalTransition as exc:
                stats.skipped_events.append(f"line {item.line}: {exc} (not applied)")
                return
            emit(item.record(self.offset))
            for decision in decisions:
                self._emit_decision(decision, emit, evidence_for)

        last_t = 0.0
        step = 1.0 / 30.0
        cadence = self.cadence
        frames: Iterator[Any] = video.frames()
        decode_clock = time.perf_counter()
        for tf in frames:
            stats.decode_s += time.perf_counter() - decode_clock
            if stats.frames == 0:
                handle(ParticipantJoined(self.offset, self.source, Role.VISITOR, self.source, True))
            elif tf.t > last_t:
                step = tf.t - last_t
            stats.frames += 1
            last_t = tf.t
            while pending and pending[0].t <= tf.t and self.session.state is not State.ENDED:
                inject(pending.pop(0))
            if self.session.state is State.ENDED:
                stats.ended_early = True
                break
            live = self.session.state is State.LIVE
            gated = cadence.gated
            if cadence.due(tf.t, step, live, tf.luma_thumbnail):
                stats.analysed_calm += cadence.calm(live)
                clock = time.perf_counter()
                frame = Frame.from_rgb(tf.rgb())  # what the models read: no BGR round trip
                stats.decode_s += time.perf_counter() - clock
                # a frame the change gate brought in: tell the pipeline the picture changed
                result = self.pipeline.process(frame, self.offset + tf.t, changed=cadence.gated > gated)
                cadence.analysed(tf.t, step, bool(getattr(result, "steady", False)), tf.luma_thumbnail)
                stats.analysed += 1
                for stage, ms in result.timings_ms.items():
                    stats.stage_ms[stage] = stats.stage_ms.get(stage, 0.0) + ms
                for kind, n in getattr(result, "work", {}).items():
                    stats.work[kind] = stats.work.get(kind, 0) + n
                previous, current = current, _Seen(tf.t, frame, result)
                handle(result.observation)
            if progress is not None:
                progress(tf.t, stats)
            decode_clock = time.perf_counter()
        stats.media_s = last_t + step if stats.frames else 0.0
        if self.session.state is not State.ENDED:
            while pending and pending[0].t <= last_t:
                inject(pending.pop(0))
            handle(Tick(self.offset + last_t))
        for item in pending:
            stats.skipped_events.append(
                f"line {item.line}: t={item.t:g} is after the end of the video or the call (not applied)"
            )
        stats.gated = cadence.gated
        stats.wall_s = time.perf_counter() - started
        stats.cpu_s = time.process_time() - cpu_started
        return stats

    def _emit_decision(
        self,
        decision: Decision,
        emit: Callable[[Record], None],
        evidence_for: Callable[[Alert], str | None],
    ) -> None:
        record = decision_record(decision, self.offset)
        if isinstance(decision, Alert):
            name = evidence_for(decision)
            if name is not None:
                record["evidence"] = name
        emit(record)

    def close(self) -> None:
        close = getattr(self.pipeline, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- output and the command


@contextmanager
def atomic_output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temp file next to ``path`` renamed over it only when everything succeeded."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"{path}: cannot write timeline: directory {directory} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: cannot write timeline: is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UserError(f"{path}: cannot write timeline: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total_s: float | None, stream: IO[str]) -> None:
        self.total = total_s
        self.stream = stream
        self.started = time.perf_counter()
        self.drawn = 0.0

    def __call__(self, t: float, stats: ReplayStats) -> None:
        now = time.perf_counter()
        if now - self.drawn < 0.1:
            return
        self.drawn = now
        speed = t / (now - self.started) if now > self.started else 0.0
        if self.total:
            share = min(1.0, t / self.total)
            bar = "#" * round(30 * share)
            line = f"\r[{bar:<30}] {share:4.0%} {t:6.1f}/{self.total:.1f} s  {speed:5.1f}x"
        else:
            line = f"\r{t:6.1f} s  {speed:5.1f}x"
        self.stream.write(line)
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r" + " " * 64 + "\r")
        self.stream.flush()


def replay_file(
    video_path: Path,
    booking: Booking,
    config: PolicyConfig,
    out: IO[str],
    *,
    events: Sequence[InjectedEvent] = (),
    offset: float = 0.0,
    evidence: Path | None = None,
    analysis_fps: float = ANALYSIS_FPS,
    calm_fps: float | None = CALM_FPS,
    change_threshold: float | None = CHANGE_THRESHOLD,
    progress_stream: IO[str] | None = None,
) -> ReplayStats:
    """Replay one video into ``out`` (timeline lines). The library entry point tests and bench use."""
    with Video(video_path) as video:
        replay = Replay(
            booking,
            config,
            offset=offset,
            analysis_fps=analysis_fps,
            calm_fps=calm_fps,
            change_threshold=change_threshold,
            evidence=evidence,
        )
        bar = ProgressBar(video.info.duration_s, progress_stream) if progress_stream is not None else None

        def emit(record: Record) -> None:
            out.write(encode_line(record) + "\n")

        try:
            stats = replay.run(video, events, emit, bar)
        finally:
            replay.close()
            if bar is not None:
                bar.finish()
    return stats


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send what native code (TFLite, absl) writes to fd 2 to /dev/null; Python's stderr still works.

    MediaPipe's graphs print INFO/W0000 lines straight to file descriptor 2 when models load and
    run, which would bury the command's own messages. ``sys.stderr`` is re-pointed at a duplicate
    of the real stderr for the duration, so progress and errors stay visible. Set
    ``MONITOR_NATIVE_LOGS=1`` to keep the native lines (debugging).
    """
    if os.environ.get("MONITOR_NATIVE_LOGS") == "1":
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (pytest capture): leave it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    python_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    replacement = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(devnull, fd)
        sys.stderr = replacement
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)
            yield
    finally:
        replacement.flush()
        sys.stderr = python_stderr
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
        replacement.close()


def run_replay(args: argparse.Namespace) -> int:
    from monitor.bookings import load_booking
    from policies.config import load_policy

    config = load_policy(args.policy)
    booking = load_booking(args.booking, config)
    events = load_events(args.events) if args.events else ()
    evidence: Path | None = None
    if args.evidence:
        evidence = Path(args.evidence)
        try:
            evidence.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{evidence}: cannot create evidence directory: {exc.strerror or exc}") from None
    Video(args.video).close()  # fail on a bad video before loading the models
    out_path = Path(args.out) if args.out else None
    with atomic_output(out_path) as out, quiet_native_logs():
        progress = sys.stderr if sys.stderr.isatty() else None
        stats = replay_file(
            Path(args.video),
            booking,
            config,
            out,
            events=events,
            offset=args.offset,
            evidence=evidence,
            progress_stream=progress,
        )
    for note in stats.skipped_events:
        print(f"monitor: note: {args.events}: {note}", file=sys.stderr)
    return 0


__all__ = [
    "ANALYSIS_FPS",
    "CALM_FPS",
    "InjectedEvent",
    "Replay",
    "ReplayStats",
    "atomic_output",
    "draw_evidence",
    "load_events",
    "parse_events",
    "replay_file",
    "run_replay",
]
