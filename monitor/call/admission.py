"""Admission control: refuse to *start* a call the server cannot carry, rather than degrade all.

Theory of operation. Over capacity, aiortc does not drop frames: every call's media delay grows.
The relay already protects media from analysis (keep-latest taps drop analysis frames, a busy
worker is never queued behind, and the policy fails closed with ``analysis_error`` when a source
gets no analysis for its window), so the one thing left to decide is admission. A call is
*running* once one of its devices has joined; a device of a running call (a second visitor, a
reconnect) is always let in, since refusing it would break a call already under way. A device
that would start a new call is refused with :class:`OverCapacity` when

- ``max_calls`` calls are already running (the figure ``bench/capacity.py`` measures per relay
  process), or
- the event loop is already lagging: its recent lag (``loop_lag_ms``, when given a probe) is over
  ``max_loop_lag_ms``, which means the calls running now are already at their limit.

With ``--relay-workers N`` the calls run in worker processes and the front's loop says nothing
about them, so admission is per worker (:func:`choose_worker`, fed by
``monitor.relay_workers.pool.WorkerAdmission``): a new call goes to the worker with the fewest running
calls among those that *fit* -- ready, under ``max_calls`` (per worker), reporting (a snapshot
within ``STALE_SNAPSHOT_S``; one that is not is stalled, and one that has not reported yet since
it became ready counts as reporting), and, if it runs any call, its latest reported loop lag (its
p99 over 10 s) within ``max_loop_lag_ms``. A worker running no call fits whatever its lag: that
lag is the machine's, not its calls', and refusing would relieve nothing. No worker fits: the
device is refused, naming each worker's reason.

The refusal is one clear sentence for the person joining (what is wrong, that it is not their
fault, what to do), and a count for the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

#: Calls one relay process carries (``monitor serve --max-calls``; per worker with --relay-workers).
#: Measured through the real server, devices sending VP8 and Opus like real ones, by
#: ``bench.capacity --modes serve`` / ``--modes workers --relay-workers 1`` (relay and its analysis
#: worker on one dedicated core; bench/results/capacity_serve.json, capacity_workers.json): 3 calls
#: passed in every run (0.61-0.64 cores, loop lag p99 7-42 ms); 4 calls passed 1 run in 4 (0.69-0.94
#: cores, p99 31, 53, 61, 293 ms against the 50 ms target).
DEFAULT_MAX_CALLS = 3
#: The capacity benchmark's loop lag target (p99); over it the calls running are at their limit.
DEFAULT_MAX_LOOP_LAG_MS = 50.0
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
    max_calls: int = DEFAULT_MAX_CALLS
    max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS

    def __post_init__(self) -> None:
        if self.max_calls < 1:
            raise ValueError(f"max_calls must be at least 1 (got {self.max_calls})")
        if self.max_loop_lag_ms <= 0:
            raise ValueError(f"max_loop_lag_ms must be positive (got {self.max_loop_lag_ms})")


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    admitted: int  # devices that started a call
    refused: int  # devices refused over capacity
    max_calls: int


class Admission:
    """Decides whether a joining device may start its call. ``loop_lag_ms`` returns the event
    loop's recent p95 lag in milliseconds (None: not measured)."""

    def __init__(self, limits: Limits | None = None, loop_lag_ms: Callable[[], float] | None = None) -> None:
        self.limits = limits or Limits()
        self.loop_lag_ms = loop_lag_ms
        self.refused = 0
        self.admitted = 0

    def admit(self, call_id: str, running: Iterable[str]) -> None:
        """Return if ``call_id`` may have a device join; raise :class:`OverCapacity` if not."""
        active = set(running)
        if call_id in active:
            return  # never break a call already under way
        if len(active) >= self.limits.max_calls:
            self.refused += 1
            raise OverCapacity(
                f"the monitoring server is at capacity ({len(active)} calls running, the limit is "
                f"{self.limits.max_calls}); this call cannot start now, please try again in a few minutes"
            )
        lag = self.loop_lag_ms() if self.loop_lag_ms is not None else 0.0
        if lag > self.limits.max_loop_lag_ms:
            self.refused += 1
            raise OverCapacity(
                f"the monitoring server is overloaded (it is running {lag:.0f} ms late, the limit is "
                f"{self.limits.max_loop_lag_ms:.0f} ms); this call cannot start now, please try again "
                "in a few minutes"
            )
        self.admitted += 1

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
    if worker.running >= limits.max_calls:
        calls = "1 call" if worker.running == 1 else f"{worker.running} calls"
        return f"{calls} running, the limit is {limits.max_calls}"
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
