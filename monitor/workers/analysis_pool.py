"""Worker processes that run the analysis pipelines of live sources, off the event loop.

Theory of operation. Each worker is a spawned process hosting the ``FramePipeline`` of the
sources assigned to it (sticky: a source stays on its worker, so its face tracks and identity votes
persist). The event loop never waits on a worker:

- frames go out through a ``multiprocessing.Queue`` (its feeder thread pickles and writes), as
  I420 planes (1.5 bytes/pixel; the worker converts to BGR);
- at most one frame per source is in flight; ``submit`` refuses while one is, and the caller keeps
  only its newest frame (keep-latest: frames are dropped, never queued);
- results come back on a pipe watched with ``loop.add_reader``: small pickled messages (the
  observation, and whether the frame was *steady*, which lets the caller slow down).

Scheduling. A worker holds at most one frame at a time. A frame submitted while its worker is busy
with another source's frame *waits* in the pool, one per source, and a newer frame of the same
source replaces it (so what the worker gets is the newest, never one that aged in a queue). When
the worker is free it takes the waiting frame that matters most (:func:`pick`):

1. an *alarm* (the caller's flag: the picture of a live call changed, someone may have walked
   in): the policy's confirmation window starts with the frame that shows it;
1b. a source's *first* frame (the oldest first): until a camera is analysed once the call's
   security check cannot pass, and the policy's 5 s fail-closed window runs from the join, not
   from the first frame (media set-up takes ~2 s); four cameras joining one worker at once got
   their first results 2.2, 3.4, 4.5 and 5.3 s after joining while the served ones settled, and
   the fourth paused the call for ``analysis_error``;
2. one whose source still has its face tracks (*kept*: served less than ``TRACK_KEEP_S`` ago; the
   tracker forgets a face unseen for 2.0 s) and is either steady or has been served in a row for
   less than ``SETTLE_S`` (it is settling: a few more frames make it steady and cheap); of
   those, the one closest to losing its tracks;
3. one that has waited ``STARVING_S`` (every source is served inside the policy's 5 s fail-closed
   window, whatever the others do);
4. an *urgent* one (the caller's flag: the call is not live and its security check needs fresh
   frames);
5. the one whose source was served longest ago (fair between sources).

Why 2: a source whose frames come further apart than the tracker's memory gets a new face track on
every frame, and a new track is the costliest frame there is (identity samples: ~200 ms of CPU
instead of ~10 ms). Served in turn, calls joining a busy worker made every source's frames that far
apart, so every frame was new and costly, which kept them far apart: analysis fell to ~1 frame a
second per source, no face was identified any more, and no security check could pass (calls stuck
paused or verifying). Letting a source that still has its tracks go on until it settles, one
source after another, gets every source back to steady, cheap frames; ``SETTLE_S`` stops a source
that never settles from holding the worker.

Warm start. A cold worker spends seconds importing and loading the models and running them for
the first time; on a busy machine that exceeded the policy's fail-closed window (5 s without
analysis pauses the call with ``analysis_error``) for a call's first frames. So a worker warms up
before it reports ready (enrols a real reference photo, builds a pipeline and analyses that photo
once), and a booking is enrolled on the workers as soon as the call is loaded (``add_booking``),
not at its first frame: what is left at a join is building the source's pipeline (~0.3 s).

A worker that dies (EOF on its pipe) or stays silent on a frame for ``HUNG_S`` is killed and
restarted; its sources are reported through ``on_failure`` (the call turns that into
``AnalysisFailed``, and the policy fails closed) and then re-opened on the new worker, enrolment
included, so the calls recover after a recheck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from monitor.analysis.settings import AnalysisSettings
from policies.events import Observation, Role

log = logging.getLogger(__name__)

HUNG_S = 20.0
#: A frame that has waited this long for its worker goes before every other waiting frame: long
#: enough for a source that still has its tracks to settle first (a few frames), short enough that
#: the frame's own analysis still ends inside the policy's 5 s fail-closed window.
STARVING_S = 3.0
#: A source served less than this long ago still has its face tracks (the tracker's memory,
#: ``AnalysisSettings.track_max_missed_s``): its frames go before those of sources that lost them.
TRACK_KEEP_S = AnalysisSettings().track_max_missed_s
#: ... while it is steady, or for at most this long of service in a row while it settles.
SETTLE_S = 2.5
URGENT, ALARM = 1, 2  # a waiting frame's flags
#: An idle worker checks this often that the server that started it is still alive.
PARENT_CHECK_S = 2.0
#: A real face photo the workers warm up on (None or a missing file: models load, nothing runs).
WARMUP_PHOTO = Path(__file__).resolve().parents[2] / "fixtures" / "bookings" / "clean" / "v1.jpg"

OnResult = Callable[[str, Observation, float], None]  # key, observation, seconds spent
OnFailure = Callable[[str, str], None]  # key, detail


# ---- worker side (runs in the child process) -------------------------------------------------


def _analysis_api() -> tuple[Callable[[Any], Any], Callable[..., Any]]:
    """(enrol_booking, FramePipeline) from monitor.analysis, wherever the package exports them."""
    import importlib

    for module in ("monitor.analysis", "monitor.analysis.pipeline", "monitor.analysis.enrol"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    import monitor.analysis as pkg

    enrol = getattr(pkg, "enrol_booking", None)
    pipeline = getattr(pkg, "FramePipeline", None)
    if enrol is None:
        enrol = importlib.import_module("monitor.analysis.enrol").enrol_booking
    if pipeline is None:
        pipeline = importlib.import_module("monitor.analysis.pipeline").FramePipeline
    return enrol, pipeline


def _worker_main(
    inbox: Any, outbox: mpc.Connection, warmup: Path | None = None
) -> None:  # pragma: no cover - child process
    with contextlib.suppress(BrokenPipeError, EOFError, KeyboardInterrupt):  # the server went away
        _serve_worker(inbox, outbox, warmup)


def warm_up(
    enrol_booking: Callable[[Any], Any], frame_pipeline: Callable[..., Any], photo: Path | None
) -> float:
    """Load the models and run them once on a real face (enrol it, analyse it); seconds spent."""
    started = time.perf_counter()
    if photo is None or not photo.is_file():
        return 0.0
    import cv2

    from monitor.analysis.runtime import quiet_native_logs

    person = SimpleNamespace(id="warm-up", reference_photos=(photo,))
    booking = SimpleNamespace(
        participants=(person,), prisoner=SimpleNamespace(id="warm-up-prisoner", reference_photos=())
    )
    with quiet_native_logs():
        visitors, _ = enrol_booking(booking)
        pipeline = frame_pipeline(visitors, source="warm-up", role=Role.VISITOR)
        image = cv2.imread(str(photo))
        if image is not None:
            pipeline.process(image, 0.0)
        close = getattr(pipeline, "close", None)
        if callable(close):
            close()
    return time.perf_counter() - started


def _serve_worker(
    inbox: Any, outbox: mpc.Connection, warmup: Path | None
) -> None:  # pragma: no cover - child process
    import cv2

    from monitor.analysis.frame import Frame

    enrol_booking, frame_pipeline = _analysis_api()
    enrolments: dict[str, Any] = {}
    pipelines: dict[str, Any] = {}
    try:
        spent = warm_up(enrol_booking, frame_pipeline, warmup)
    except Exception as exc:  # a worker that cannot warm up still serves (and fails per frame if broken)
        spent = -1.0
        outbox.send(("failed", "warm-up", "", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)))
    outbox.send(("ready", spent))
    while True:
        try:
            message = inbox.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            # a server killed with SIGKILL runs no shutdown code, and this process holds a write end
            # of its own inbox, so it would wait forever: leave once the server is gone
            parent = mp.parent_process()
            if parent is not None and not parent.is_alive():
                return
            continue
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "enrol":
                _, call_id, booking = message
                enrolments[call_id] = enrol_booking(booking)
            elif kind == "open":
                _, key, call_id, source, role = message
                visitors, prisoner = enrolments[call_id]  # enrol_booking: (visitors, prisoner or None)
                enrolment = visitors if Role(role) is Role.VISITOR else prisoner
                if enrolment is None:
                    raise ValueError(f"{source}: no reference photo to check this side against")
                pipelines[key] = frame_pipeline(enrolment, source=source, role=Role(role))
            elif kind == "close":
                pipelines.pop(message[1], None)
            elif kind == "forget":
                enrolments.pop(message[1], None)
            elif kind == "crash":  # used by the fault tests: die like a segfaulting model would
                import os

                os._exit(70)
            elif kind == "frame":
                _, key, t, planes = message
                if key not in pipelines:  # not opened (its open failed and was reported)
                    outbox.send(("skipped", key))
                    continue
                started = time.perf_counter()
                rgb = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)  # what the models read
                result = pipelines[key].process(Frame.from_rgb(rgb), t)
                spent = time.perf_counter() - started
                outbox.send(("result", key, result.observation, spent, bool(result.steady)))
        except Exception as exc:
            key = message[1] if len(message) > 1 else ""
            detail = f"{type(exc).__name__}: {exc}"
            outbox.send(("failed", kind, key, detail, traceback.format_exc(limit=5)))


# ---- event-loop side ---------------------------------------------------------------------------


@dataclass
class _Source:
    key: str
    call_id: str
    source: str
    role: Role
    worker: int
    in_flight_since: float | None = None
    in_flight_t: float | None = None  # media time of the frame being analysed
    analysed: int = 0
    busy_s: float = 0.0
    steady: bool = False  # the latest result's frame was steady
    waiting: tuple[np.ndarray, float, float, int] | None = None  # planes, t, since, priority
    served_at: float = 0.0  # when its latest frame went to the worker
    settling_since: float = 0.0  # when its current run of service in a row began
    waited_s: float = 0.0  # total time its frames waited for the worker


@dataclass(frozen=True, slots=True)
class Waiting:
    """A frame waiting for its worker, as :func:`pick` sees it."""

    key: str
    since: float  # when it was submitted (monotonic)
    urgent: bool
    served_at: float  # when its source last had a frame sent to the worker
    kept: bool = False  # its source still has its tracks and is steady or settling
    alarm: bool = False  # the picture of a live call changed
    first: bool = False  # its source has never had a frame analysed


def pick(waiting: list[Waiting], now: float, starving_s: float = STARVING_S) -> str | None:
    """Which waiting frame the free worker takes (the module's theory, *Scheduling*): an alarm,
    else a source's first frame (the longest waiting first), else a kept one (the one served
    longest ago first), else one that has waited ``starving_s``
    (the longest waiting first), else an urgent one, else the one whose source was served longest
    ago. None when nothing waits."""
    if not waiting:
        return None

    def rank(w: Waiting) -> tuple[float, float, bool, float, float, str]:
        if w.alarm:
            return (0, w.since, False, 0.0, 0.0, w.key)
        if w.first:
            return (0.5, w.since, False, 0.0, 0.0, w.key)
        if w.kept:  # the one closest to losing its tracks first
            return (1, w.served_at, False, 0.0, w.since, w.key)
        if now - w.since >= starving_s:
            return (2, w.since, False, 0.0, 0.0, w.key)
        return (3, 0.0, not w.urgent, w.served_at, w.since, w.key)

    return min(waiting, key=rank).key


def kept(served_at: float, settling_since: float, steady: bool, now: float) -> bool:
    """Whether a source's waiting frame ranks first: its tracks still hold and it is steady, or
    has been served in a row for less than ``SETTLE_S``."""
    return now - served_at < TRACK_KEEP_S and (steady or now - settling_since < SETTLE_S)


@dataclass
class _Worker:
    index: int
    process: Any = None
    inbox: Any = None
    outbox: mpc.Connection | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    enrolled: set[str] = field(default_factory=set)
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = 0.0  # grows while the worker keeps dying young, so a broken worker cannot spin


class AnalysisPool:
    def __init__(
        self,
        workers: int,
        on_result: OnResult,
        on_failure: OnFailure,
        *,
        warmup_photo: Path | None = WARMUP_PHOTO,
        starving_s: float = STARVING_S,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one analysis worker")
        self._ctx = mp.get_context("spawn")
        self._workers = [_Worker(i) for i in range(workers)]
        self._sources: dict[str, _Source] = {}
        self._bookings: dict[str, Any] = {}
        self.on_result = on_result
        self.on_failure = on_failure
        self._watchdog: asyncio.Task[None] | None = None
        self._stopping = False
        self.warmup_photo = warmup_photo
        self.starving_s = starving_s  # a frame waiting this long goes first (see pick)
        self.warmup_s: list[float] = []  # seconds each worker start spent warming up (-1: failed)

    # lifecycle
    async def start(self, timeout: float = 120.0) -> None:
        for worker in self._workers:
            self._spawn(worker)
        await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in self._workers)), timeout)
        self._watchdog = asyncio.ensure_future(self._watch())

    def _spawn(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        inbox = self._ctx.Queue()
        parent_end, child_end = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main,
            args=(inbox, child_end, self.warmup_photo),
            name=f"analysis-{worker.index}",
            daemon=True,
        )
        process.start()
        child_end.close()  # so the parent sees EOF when the child dies
        worker.process, worker.inbox, worker.outbox = process, inbox, parent_end
        worker.ready = asyncio.Event()
        worker.enrolled = set()
        worker.started_at = time.monotonic()
        loop.add_reader(parent_end.fileno(), self._readable, worker)

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for worker in self._workers:
            self._retire(worker, graceful=True)

    def _retire(self, worker: _Worker, graceful: bool) -> None:
        loop = asyncio.get_running_loop()
        if worker.outbox is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(worker.outbox.fileno())
            worker.outbox.close()
            worker.outbox = None
        if worker.process is not None:
            if graceful:
                with contextlib.suppress(Exception):
                    worker.inbox.put(("stop",))
                worker.process.join(2.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2.0)
            worker.process = None
        if worker.inbox is not None:
            worker.inbox.close()
            worker.inbox.cancel_join_thread()
            worker.inbox = None

    # calls and sources
    def add_booking(self, call_id: str, booking: Any) -> None:
        """Remember a call's booking and have every worker enrol it now (in the background of the
        worker), so the call's first frames do not wait for it."""
        self._bookings[call_id] = booking
        for worker in self._workers:
            self._enrol(worker, call_id)

    def _enrol(self, worker: _Worker, call_id: str) -> None:
        if worker.inbox is not None and call_id not in worker.enrolled:
            worker.inbox.put(("enrol", call_id, self._bookings[call_id]))
            worker.enrolled.add(call_id)

    def forget_booking(self, call_id: str) -> None:
        self._bookings.pop(call_id, None)
        for worker in self._workers:
            if call_id in worker.enrolled and worker.inbox is not None:
                worker.inbox.put(("forget", call_id))
                worker.enrolled.discard(call_id)

    def open(self, key: str, call_id: str, source: str, role: Role) -> None:
        if key in self._sources:
            return
        load = [0] * len(self._workers)
        for s in self._sources.values():
            load[s.worker] += 1
        index = min(range(len(self._workers)), key=lambda i: load[i])
        entry = _Source(key, call_id, source, role, index)
        self._sources[key] = entry
        self._send_open(entry)

    def _send_open(self, entry: _Source) -> None:
        worker = self._workers[entry.worker]
        if worker.inbox is None:
            return
        self._enrol(worker, entry.call_id)
        worker.inbox.put(("open", entry.key, entry.call_id, entry.source, entry.role.value))

    def close(self, key: str) -> None:
        entry = self._sources.pop(key, None)
        if entry is not None:
            worker = self._workers[entry.worker]
            if worker.inbox is not None:
                worker.inbox.put(("close", key))

    def busy(self, key: str) -> bool:
        """True while a frame of ``key`` is with its worker (a frame waiting for the worker can
        still be replaced by a newer one: submit it)."""
        entry = self._sources.get(key)
        return entry is None or entry.in_flight_since is not None

    def submit(
        self, key: str, planes: np.ndarray, t: float, urgent: bool = False, alarm: bool = False
    ) -> bool:
        """Hand one I420 frame (``planes``: (h*3/2, w) uint8) over for analysis; False while a frame
        of ``key`` is with the worker. It goes to the worker at once if the worker is free, else it
        waits (replacing a frame of ``key`` still waiting) until :func:`pick` chooses it.
        ``urgent`` / ``alarm``: how much it matters (see :func:`pick`); a frame that replaces a
        waiting one keeps the waiting one's flags too."""
        entry = self._sources.get(key)
        if entry is None or entry.in_flight_since is not None:
            return False
        worker = self._workers[entry.worker]
        if worker.inbox is None or not worker.ready.is_set():
            return False
        now = time.monotonic()
        level = URGENT * urgent | ALARM * alarm
        if entry.waiting is not None:  # replaced: it has waited since the first, with its flags
            since, level = entry.waiting[2], level | entry.waiting[3]
        else:
            since = now
        entry.waiting = (planes, t, since, level)
        self._dispatch(worker)
        return True

    def _dispatch(self, worker: _Worker) -> None:
        """Send the worker the waiting frame that matters most, if the worker is free."""
        if worker.inbox is None or not worker.ready.is_set():
            return
        mine = [s for s in self._sources.values() if s.worker == worker.index]
        if any(s.in_flight_since is not None for s in mine):
            return
        now = time.monotonic()
        waiting = [
            Waiting(
                s.key,
                w[2],
                bool(w[3] & URGENT),
                s.served_at,
                kept(s.served_at, s.settling_since, s.steady, now),
                bool(w[3] & ALARM),
                first=s.served_at == 0.0,
            )
            for s in mine
            if (w := s.waiting) is not None
        ]
        key = pick(waiting, now, self.starving_s)
        if key is None:
            return
        entry = self._sources[key]
        assert entry.waiting is not None
        planes, t, since, _ = entry.waiting
        entry.waiting = None
        if entry.steady or now - entry.served_at >= TRACK_KEEP_S:  # a new run of service begins
            entry.settling_since = now
        entry.in_flight_since = entry.served_at = now
        entry.in_flight_t = t
        entry.waited_s += now - since
        worker.inbox.put(("frame", key, t, planes))

    def _dispatch_soon(self, worker: _Worker) -> None:
        """The worker is free: choose its next frame once the source it just served has had its
        turn of the loop to hand in its next one (so :func:`pick` can keep a source that still
        has its tracks going; the caller's result handling submits at once if it can)."""
        asyncio.get_running_loop().call_soon(self._dispatch, worker)

    def in_flight_t(self, key: str) -> float | None:
        """Media time of the oldest frame of ``key`` that is being (or waiting to be) analysed."""
        entry = self._sources.get(key)
        if entry is None:
            return None
        times = [entry.in_flight_t] if entry.in_flight_since is not None else []
        times += [entry.waiting[1]] if entry.waiting is not None else []
        return min((t for t in times if t is not None), default=None)

    def steady(self, key: str) -> bool:
        """Whether the latest analysed frame of ``key`` was steady (``FrameResult.steady``)."""
        entry = self._sources.get(key)
        return entry is not None and entry.steady

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            k: {"analysed": s.analysed, "busy_s": round(s.busy_s, 3), "waited_s": round(s.waited_s, 3)}
            for k, s in self._sources.items()
        }

    def crash_worker_of(self, key: str) -> None:
        """Make the worker hosting ``key`` die abruptly (fault tests and drills)."""
        worker = self._workers[self._sources[key].worker]
        if worker.inbox is not None:
            worker.inbox.put(("crash",))

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self._workers)

    # results and failures
    def _readable(self, worker: _Worker) -> None:
        assert worker.outbox is not None
        try:
            while worker.outbox is not None and worker.outbox.poll():
                self._handle(worker, worker.outbox.recv())
        except (EOFError, OSError):
            self._restart(worker, "analysis worker died")

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            self.warmup_s.append(float(message[1]) if len(message) > 1 else 0.0)
            worker.ready.set()
        elif kind == "result":
            _, key, observation, spent, steady = message
            entry = self._sources.get(key)
            if entry is not None:
                entry.in_flight_since = None
                entry.analysed += 1
                entry.busy_s += spent
                entry.steady = steady
            if entry is not None:
                self.on_result(key, observation, spent)
            self._dispatch_soon(worker)
        elif kind == "skipped":
            entry = self._sources.get(message[1])
            if entry is not None:
                entry.in_flight_since = None
            self._dispatch_soon(worker)
        elif kind == "failed":
            _, what, key, detail, trace = message
            log.warning("analysis %s failed for %s: %s\n%s", what, key, detail, trace)
            entry = self._sources.get(key)
            if entry is not None:
                entry.in_flight_since = None
                entry.steady = False
                self.on_failure(key, detail)
            elif what == "enrol":
                for entry in self._sources.values():
                    if entry.call_id == key:
                        self.on_failure(entry.key, detail)
            self._dispatch_soon(worker)

    def _restart(self, worker: _Worker, why: str) -> None:
        if self._stopping:
            return
        if worker.process is None:
            return  # already being restarted
        young = time.monotonic() - worker.started_at < 30.0
        worker.backoff_s = min(30.0, max(1.0, 2 * worker.backoff_s)) if young else 0.0
        log.error("%s (worker %d); restarting it in %.0f s", why, worker.index, worker.backoff_s)
        self._retire(worker, graceful=False)
        worker.restarts += 1
        victims = [s for s in self._sources.values() if s.worker == worker.index]
        for entry in victims:
            entry.in_flight_since = None
            entry.waiting = None
            entry.steady = False
            self.on_failure(entry.key, why)
        asyncio.get_running_loop().call_later(worker.backoff_s, self._respawn, worker)

    def _respawn(self, worker: _Worker) -> None:
        if self._stopping or worker.process is not None:
            return
        self._spawn(worker)
        for entry in self._sources.values():
            if entry.worker == worker.index:
                self._send_open(entry)
        for call_id in self._bookings:  # the other loaded calls, after the sources that run now
            self._enrol(worker, call_id)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for worker in self._workers:
                hung = any(
                    s.worker == worker.index
                    and s.in_flight_since is not None
                    and now - s.in_flight_since > HUNG_S
                    for s in self._sources.values()
                )
                dead = worker.process is not None and not worker.process.is_alive()
                if hung or dead:
                    self._restart(worker, "analysis worker hung" if hung else "analysis worker died")


def frame_planes(frame: Any) -> np.ndarray:
    """An aiortc/PyAV video frame as I420 planes (h*3/2, w), the cheap form to ship to a worker."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes: np.ndarray = frame.to_ndarray(format="yuv420p")
    return planes


__all__ = [
    "SETTLE_S",
    "STARVING_S",
    "TRACK_KEEP_S",
    "AnalysisPool",
    "Waiting",
    "frame_planes",
    "kept",
    "pick",
]
