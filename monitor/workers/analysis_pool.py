"""The analysis pool: worker processes that run the analysis pipelines of live sources, supervised
from the event loop.

Theory of operation. Each worker is a spawned process (``analysis_worker.py``) hosting the
``FramePipeline`` of the sources assigned to it (sticky: a source stays on its worker, so its face
tracks and identity votes persist). The event loop never waits on a worker:

- messages (``messages.py``) go out through a ``multiprocessing.Queue`` (its feeder thread pickles
  and writes); frames go as I420 planes (1.5 bytes/pixel; the worker converts them);
- at most one frame per source is in flight; ``submit`` refuses while one is, and the caller keeps
  only its newest frame (keep-latest: frames are dropped, never queued);
- results come back on a pipe watched with ``loop.add_reader``: small pickled messages (the
  observation, whether the frame was *steady*, which lets the caller slow down, and whether a face
  in it is *voting*, which puts the source's next frames first: ``schedule.py``).

A frame submitted while its worker is busy waits in the pool, one per source (a newer one replaces
it), until the worker is free and :func:`~monitor.workers.schedule.pick` chooses it.

A booking is enrolled on the workers as soon as the call is loaded (``add_booking``), not at its
first frame, and the workers warm up before they report ready: what is left at a join is building
the source's pipeline (~0.3 s).

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.workers.analysis_worker import WARMUP_PHOTO, worker_main
from monitor.workers.messages import (
    Analyse,
    Close,
    Crash,
    Enrol,
    EnrolFailed,
    Failed,
    Forget,
    FromWorker,
    Open,
    Ready,
    Result,
    Skipped,
    Stop,
    ToWorker,
    WarmUpFailed,
)
from monitor.workers.schedule import STARVING_S, TRACK_KEEP_S, Waiting, kept, pick, voting
from policies.events import Observation, Role

log = logging.getLogger(__name__)

HUNG_S = 20.0

OnResult = Callable[[str, Observation, float], None]  # key, observation, seconds spent
OnFailure = Callable[[str, str], None]  # key, detail


@dataclass(frozen=True, slots=True)
class StreamStats:
    """One source's analysis so far."""

    analysed: int  # frames analysed
    busy_s: float  # seconds its frames took in the worker
    waited_s: float  # seconds its frames waited for the worker
    in_flight_t: float | None  # media time of its oldest frame with (or waiting for) the worker


@dataclass(frozen=True, slots=True)
class AnalysisStats:
    streams: dict[str, StreamStats]  # source key -> its analysis
    restarts: int  # worker processes restarted
    inboxes: tuple[int, ...] = ()  # messages waiting in each worker's inbox, by worker index


@dataclass(frozen=True, slots=True)
class _WaitingFrame:
    planes: np.ndarray
    t: float
    since: float  # when it (or the frame it replaced) was submitted
    urgent: bool
    alarm: bool


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
    voting: bool = False  # the latest result said a face awaits identity votes
    voting_since: float = 0.0  # when its current run of voting results began
    waiting: _WaitingFrame | None = None
    served_at: float = 0.0  # when its latest frame went to the worker
    settling_since: float = 0.0  # when its current run of service in a row began
    waited_s: float = 0.0  # total time its frames waited for the worker


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

    def put(self, message: ToWorker) -> None:
        self.inbox.put(message)

    def depth(self) -> int:
        if self.inbox is None:
            return 0
        with contextlib.suppress(NotImplementedError, OSError, ValueError):  # qsize: not on macOS
            return int(self.inbox.qsize())
        return 0


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
            target=worker_main,
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
                    worker.put(Stop())
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
            worker.put(Enrol(call_id, self._bookings[call_id]))
            worker.enrolled.add(call_id)

    def forget_booking(self, call_id: str) -> None:
        self._bookings.pop(call_id, None)
        for worker in self._workers:
            if call_id in worker.enrolled and worker.inbox is not None:
                worker.put(Forget(call_id))
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
        worker.put(Open(entry.key, entry.call_id, entry.source, entry.role))

    def close(self, key: str) -> None:
        entry = self._sources.pop(key, None)
        if entry is not None:
            worker = self._workers[entry.worker]
            if worker.inbox is not None:
                worker.put(Close(key))

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
        since, old = time.monotonic(), entry.waiting
        if old is not None:  # replaced: it has waited since the first, with its flags
            since, urgent, alarm = old.since, urgent or old.urgent, alarm or old.alarm
        entry.waiting = _WaitingFrame(planes, t, since, urgent, alarm)
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
                w.since,
                w.urgent,
                s.served_at,
                kept(s.served_at, s.settling_since, s.steady, now),
                w.alarm,
                first=s.served_at == 0.0,
                voting=voting(s.voting, s.voting_since, now),
            )
            for s in mine
            if (w := s.waiting) is not None
        ]
        key = pick(waiting, now, self.starving_s)
        if key is None:
            return
        entry = self._sources[key]
        frame = entry.waiting
        assert frame is not None
        entry.waiting = None
        if entry.steady or now - entry.served_at >= TRACK_KEEP_S:  # a new run of service begins
            entry.settling_since = now
        entry.in_flight_since = entry.served_at = now
        entry.in_flight_t = frame.t
        entry.waited_s += now - frame.since
        worker.put(Analyse(key, frame.t, frame.planes))

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
        times += [entry.waiting.t] if entry.waiting is not None else []
        return min((t for t in times if t is not None), default=None)

    def steady(self, key: str) -> bool:
        """Whether the latest analysed frame of ``key`` was steady (``FrameResult.steady``)."""
        entry = self._sources.get(key)
        return entry is not None and entry.steady

    def stats(self) -> AnalysisStats:
        streams = {
            k: StreamStats(s.analysed, round(s.busy_s, 3), round(s.waited_s, 3), self.in_flight_t(k))
            for k, s in self._sources.items()
        }
        return AnalysisStats(streams, self.restarts, tuple(w.depth() for w in self._workers))

    def crash_worker_of(self, key: str) -> None:
        """Make the worker hosting ``key`` die abruptly (fault tests and drills)."""
        worker = self._workers[self._sources[key].worker]
        if worker.inbox is not None:
            worker.put(Crash())

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

    def _handle(self, worker: _Worker, message: FromWorker) -> None:
        match message:
            case Ready(warmup_s):
                self.warmup_s.append(warmup_s)
                worker.ready.set()
                return
            case Result(key, observation, spent, steady, votes):
                entry = self._sources.get(key)
                if entry is not None:
                    entry.in_flight_since = None
                    entry.analysed += 1
                    entry.busy_s += spent
                    entry.steady = steady
                    if votes and not entry.voting:
                        entry.voting_since = time.monotonic()
                    entry.voting = votes
                    self.on_result(key, observation, spent)
            case Skipped(key):
                entry = self._sources.get(key)
                if entry is not None:
                    entry.in_flight_since = None
            case Failed(key, during, detail, trace):
                log.warning("analysis %s failed for %s: %s\n%s", during, key, detail, trace)
                entry = self._sources.get(key)
                if entry is not None:
                    entry.in_flight_since = None
                    entry.steady = entry.voting = False
                    self.on_failure(key, detail)
            case EnrolFailed(call_id, detail, trace):
                log.warning("analysis enrol failed for %s: %s\n%s", call_id, detail, trace)
                for entry in list(self._sources.values()):
                    if entry.call_id == call_id:
                        self.on_failure(entry.key, detail)
            case WarmUpFailed(detail, trace):
                log.warning("analysis warm-up failed: %s\n%s", detail, trace)
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
            entry.steady = entry.voting = False
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


__all__ = ["HUNG_S", "AnalysisPool", "AnalysisStats", "StreamStats", "frame_planes"]
