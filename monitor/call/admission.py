"""Admission control: refuse to *start* a call the server cannot carry, rather than degrade all.

Theory of operation. Over capacity, aiortc does not drop frames: every call's media delay grows.
The relay already protects media from analysis (keep-latest taps drop analysis frames, a busy
worker is never queued behind, and the policy fails closed with ``analysis_error`` when a source
gets no analysis for its window), so the one thing left to decide is admission. A call is
*running* once one of its devices has joined; a device of a running call (a second visitor, a
reconnect) is always let in, since refusing it would break a call already under way. A device
that would start a new call is refused with :class:`OverCapacity` when the server's measured
load (:class:`Load`, from ``monitor.load.LoadProbe``) says it is full (:func:`overload`):

- its CPU share: this server and its worker processes use more than ``max_cpu`` of the machine's
  cores (0.8, Jitsi's overload threshold), counting each call started in the last ``ramp_s``
  (20 s, Jitsi's ramp-up allowance) as ``ramp_call_cores`` more, since a call's devices, media and
  security check take seconds to show in the measured figure (so a burst does not pile onto an
  idle server: BigBlueButton's load-based placement herded a burst onto its emptiest server);
- its event loop lags: p99 over 10 s over ``max_loop_lag_ms`` (50 ms, the capacity benchmark's
  target) means the calls running now are already at their limit;
- its analysis is behind: analysed frames waited on average more than ``max_analysis_wait_ms``
  (over 2.5 s) for a worker, so the security checks would decide late;
- or, only when ``--max-calls N`` is given, N calls are already running.

A server running no call is never refused for its load: what it measures then is the machine's,
not its calls', and refusing would relieve nothing. ``monitor.cluster.placement`` judges each node
of a cluster with the same :func:`overload`.

With ``--relay-workers N`` the calls run in worker processes and the front's loop says nothing
about them, so admission is per worker (:func:`choose_worker`, fed by
``monitor.relay_workers.pool.WorkerAdmission``): a new call goes to the worker with the fewest running
calls among those that *fit* -- ready, under ``max_calls`` (per worker; ``DEFAULT_MAX_CALLS`` when
not given), reporting (a snapshot within ``STALE_SNAPSHOT_S``; one that is not is stalled, and one
that has not reported yet since it became ready counts as reporting), and, if it runs any call,
its latest reported loop lag (its p99 over 10 s) within ``max_loop_lag_ms``. A worker running no
call fits whatever its lag. No worker fits: the device is refused, naming each worker's reason.

The refusal is one clear sentence for the person joining (what is wrong, that it is not their
fault, what to do), and a count for the metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: Calls one relay worker process carries with ``--relay-workers`` when ``--max-calls`` is not
#: given (its load is judged by its loop lag and this). Measured through the real server, devices
#: sending VP8 and Opus like real ones, by ``bench.capacity --modes workers --relay-workers 1``
#: (relay and its analysis worker on one dedicated core; bench/results/capacity_workers.json):
#: 3 calls passed in every run (0.61-0.64 cores, loop lag p99 7-42 ms); 4 calls passed 1 run in 4.
DEFAULT_MAX_CALLS = 3
#: The capacity benchmark's loop lag target (p99); over it the calls running are at their limit.
DEFAULT_MAX_LOOP_LAG_MS = 50.0
#: The share of the cores a server may use and still take a call (Jitsi's overload threshold).
DEFAULT_MAX_CPU = 0.8
#: Analysed frames waiting longer than this for a worker, on average over 2.5 s: analysis is
#: behind (docs/operations.md, Capacity, says how it was measured).
DEFAULT_MAX_ANALYSIS_WAIT_MS = 250.0
#: A call started this recently may not show in the measured load yet (Jitsi's ramp-up: 20 s) ...
RAMP_S = 20.0
#: ... so it counts as this many cores more: ``monitor serve`` carried 9 calls with audio on 0.63
#: of a core (0.07 each), rounded up for the security check's full-rate analysis at the start.
RAMP_CALL_CORES = 0.1
#: A relay worker reports a snapshot every second; one silent this long is stalled (or its pipe is).
STALE_SNAPSHOT_S = 5.0
TRY_LATER = "this call cannot start now, please try again in a few minutes"


class OverCapacity(Exception):
    code = "over_capacity"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """What a server may carry. ``max_calls`` None: no fixed number, the measured load decides."""

    max_calls: int | None = None
    max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS
    max_cpu: float = DEFAULT_MAX_CPU
    max_analysis_wait_ms: float = DEFAULT_MAX_ANALYSIS_WAIT_MS
    ramp_s: float = RAMP_S
    ramp_call_cores: float = RAMP_CALL_CORES

    def __post_init__(self) -> None:
        if self.max_calls is not None and self.max_calls < 1:
            raise ValueError(f"max_calls must be at least 1 (got {self.max_calls})")
        for name in ("max_loop_lag_ms", "max_cpu", "max_analysis_wait_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (got {getattr(self, name)})")
        if self.ramp_s < 0 or self.ramp_call_cores < 0:
            raise ValueError("ramp_s and ramp_call_cores must not be negative")


@dataclass(frozen=True, slots=True)
class Load:
    """A server's measured load when a new call asks to start (``None``: not measured yet)."""

    running: int  # calls running (admitted or with a device, not ended)
    recent: int = 0  # of which started within ``Limits.ramp_s``
    cores: int = 1
    cpu: float | None = None  # share of the cores used (0..1), averaged over 2.5 s
    lag_ms: float | None = None  # event loop lag, p99 over 10 s
    analysis_wait_ms: float | None = None  # mean wait of an analysed frame for its worker, over 2.5 s

    def cpu_with_ramp(self, limits: Limits) -> float:
        """The CPU share, plus the allowance for each call started within ``ramp_s``."""
        return (self.cpu or 0.0) + self.recent * limits.ramp_call_cores / max(1, self.cores)


def overload(load: Load, limits: Limits) -> str | None:
    """Why a server with ``load`` cannot take one more call (a phrase), or None when it can."""
    if limits.max_calls is not None and load.running >= limits.max_calls:
        calls = "1 call" if load.running == 1 else f"{load.running} calls"
        return f"{calls} running, the limit is {limits.max_calls}"
    if load.running == 0:
        return None
    cpu = load.cpu_with_ramp(limits)
    if cpu > limits.max_cpu:
        return f"its processors are {cpu:.0%} busy, the limit is {limits.max_cpu:.0%}"
    if load.lag_ms is not None and load.lag_ms > limits.max_loop_lag_ms:
        return f"it is running {load.lag_ms:.0f} ms late, the limit is {limits.max_loop_lag_ms:.0f} ms"
    wait = load.analysis_wait_ms
    if wait is not None and wait > limits.max_analysis_wait_ms:
        return f"its analysis is {wait:.0f} ms behind, the limit is {limits.max_analysis_wait_ms:.0f} ms"
    return None


@dataclass(frozen=True, slots=True)
class Measured:
    """What a load probe reports (``monitor.load.LoadProbe``); None: not measured (yet)."""

    cores: int = 1
    cpu: float | None = None
    lag_ms: float | None = None
    analysis_wait_ms: float | None = None


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    admitted: int  # devices that started a call
    refused: int  # devices refused over capacity
    max_calls: int | None


class Admission:
    """Decides whether a joining device may start its call. ``measure`` returns the server's
    measured load now (``monitor.load.LoadProbe``); ``loop_lag_ms`` alone, the event loop's recent
    lag in milliseconds; neither: only ``max_calls`` (if any) limits."""

    def __init__(
        self,
        limits: Limits | None = None,
        loop_lag_ms: Callable[[], float] | None = None,
        *,
        measure: Callable[[], Measured] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self.loop_lag_ms = loop_lag_ms
        self.measure = measure
        self.clock = clock
        self.refused = 0
        self.admitted = 0
        self._started: deque[float] = deque()  # when each call admitted within ramp_s started

    def recent(self) -> int:
        """Calls admitted within ``ramp_s``."""
        horizon = self.clock() - self.limits.ramp_s
        while self._started and self._started[0] < horizon:
            self._started.popleft()
        return len(self._started)

    def load(self, running: int) -> Load:
        measured = self.measure() if self.measure is not None else Measured()
        lag = measured.lag_ms
        if lag is None and self.loop_lag_ms is not None:
            lag = self.loop_lag_ms()
        # the ramp-up allowance belongs to admission by measured load; without a probe only the
        # fixed limit and the loop lag decide (a test server starting many calls is not busy)
        recent = self.recent() if self.measure is not None else 0
        return Load(running, recent, measured.cores, measured.cpu, lag, measured.analysis_wait_ms)

    def admit(self, call_id: str, running: Iterable[str]) -> None:
        """Return if ``call_id`` may have a device join; raise :class:`OverCapacity` if not."""
        active = set(running)
        if call_id in active:
            return  # never break a call already under way
        why = overload(self.load(len(active)), self.limits)
        if why is not None:
            self.refused += 1
            raise OverCapacity(f"the monitoring server is at capacity ({why}); {TRY_LATER}")
        self.admitted += 1
        self._started.append(self.clock())

    def stats(self) -> AdmissionStats:
        return AdmissionStats(self.admitted, self.refused, self.limits.max_calls)


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """What admission knows of one relay worker when a new call asks to start."""

    index: int
    ready: bool  # alive and ready for calls
    running: int  # calls running there (admitted or with a device, not ended)
    lag_ms: float | None  # its latest snapshot's loop lag (p99, 10 s); None: none since it started
    quiet_s: float  # seconds since that snapshot (since it became ready, when there is none)
    holds_call: bool = False  # the joining call is placed there now (kept there on a tie)


def unfit(worker: WorkerLoad, limits: Limits) -> str | None:
    """Why ``worker`` cannot take a new call, or None when it can."""
    if not worker.ready:
        return "restarting"
    max_calls = limits.max_calls if limits.max_calls is not None else DEFAULT_MAX_CALLS
    if worker.running >= max_calls:
        calls = "1 call" if worker.running == 1 else f"{worker.running} calls"
        return f"{calls} running, the limit is {max_calls}"
    if worker.quiet_s > STALE_SNAPSHOT_S:
        return f"not reporting for {worker.quiet_s:.0f} s"
    lag = worker.lag_ms or 0.0
    if worker.running > 0 and lag > limits.max_loop_lag_ms:
        return f"running {lag:.0f} ms late, the limit is {limits.max_loop_lag_ms:.0f} ms"
    return None


def choose_worker(loads: Sequence[WorkerLoad], limits: Limits, *, movable: bool = True) -> int:
    """The index of the worker a new call starts on: the fewest running calls among the workers
    that fit (the one holding the call first on a tie, then the lowest index). ``movable`` False:
    only the worker holding the call may take it (its session has begun there). Raises
    :class:`OverCapacity` naming each candidate's reason when none fits."""
    candidates = [w for w in loads if movable or w.holds_call]
    fit = [w for w in candidates if unfit(w, limits) is None]
    if fit:
        return min(fit, key=lambda w: (w.running, not w.holds_call, w.index)).index
    if not candidates or not any(w.ready for w in candidates):
        raise OverCapacity(f"the monitoring server is restarting its call processes; {TRY_LATER}")
    why = "; ".join(f"relay worker {w.index}: {unfit(w, limits)}" for w in candidates)
    raise OverCapacity(f"the monitoring server is at capacity ({why}); {TRY_LATER}")
