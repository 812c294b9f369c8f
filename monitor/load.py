"""This process's measured load: how late its event loop wakes up, how busy its CPUs are, and how
long analysed frames wait for a worker.

A periodic sleep that wakes late tells how busy the loop is (everything a call does runs on it).
``monitor serve`` reports it on /metrics and admits calls by it; a relay worker reports it to the
front with its snapshots.

:class:`LoadProbe` adds what admission and cluster placement judge a node by (``monitor.call.
admission.overload``): the share of the machine's cores that this server and its worker processes
use, and the mean time an analysed frame waited for its analysis worker. Like LiveKit's agents it
samples every 0.5 s and averages over the last 2.5 s, so one busy moment does not refuse a call
and a load that stays is seen within seconds. The CPU figure is the server's own (this process
plus the worker processes it names, read from ``/proc/<pid>/stat``), not the machine's: another
program on the machine shows in the loop lag instead.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

LAG_INTERVAL_S = 0.1
LAG_WINDOW_S = 60.0
#: How often the load probe samples, and the window it averages over (LiveKit's agents: 0.5 s, 2.5 s).
LOAD_SAMPLE_S = 0.5
LOAD_WINDOW_S = 2.5
#: The window of the loop lag quantile admission judges (a relay worker reports the same, p99 over 10 s).
ADMISSION_LAG_WINDOW_S = 10.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class LoopLag:
    """How late a periodic sleep wakes up: the event loop's lag, over a sliding window."""

    def __init__(self, interval: float = LAG_INTERVAL_S, window_s: float = LAG_WINDOW_S) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=max(1, int(window_s / interval)))
        self.last = 0.0
        self.max_ever = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def record(self, lag: float) -> None:
        lag = max(0.0, lag)
        self.last = lag
        self.max_ever = max(self.max_ever, lag)
        self.samples.append(lag)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - before - self.interval)

    def window_max(self) -> float:
        return max(self.samples, default=0.0)

    def quantile(self, q: float, seconds: float | None = None) -> float:
        """The ``q`` quantile of the window (of its last ``seconds`` only, when given)."""
        samples = list(self.samples)
        if seconds is not None:
            samples = samples[-max(1, int(seconds / self.interval)) :]
        if not samples:
            return 0.0
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()  # after the command name, which may hold spaces
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return None


def worker_pids() -> list[int]:
    """This process's worker processes (the analysis pool's, spawned by multiprocessing)."""
    return [p.pid for p in multiprocessing.active_children() if p.pid is not None]


#: One analysis stream's cumulative figures: (frames analysed, seconds its frames waited for a worker).
AnalysisTotals = Mapping[str, tuple[int, float]]


class LoadProbe:
    """This server's load, sampled every ``sample_s`` and averaged over ``window_s``.

    ``pids``: the worker processes whose CPU counts with this one's (default: its multiprocessing
    children); ``analysis``: each stream's cumulative (analysed, waited seconds), from the analysis
    pool's ``stats()``; ``lag``: the loop lag probe (its p99 over ``ADMISSION_LAG_WINDOW_S``)."""

    def __init__(
        self,
        lag: LoopLag | None = None,
        *,
        pids: Callable[[], Iterable[int]] = worker_pids,
        analysis: Callable[[], AnalysisTotals] | None = None,
        cores: int | None = None,
        sample_s: float = LOAD_SAMPLE_S,
        window_s: float = LOAD_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lag = lag if lag is not None else LoopLag()
        self._own_lag = lag is None
        self.pids = pids
        self.analysis = analysis
        self.cores = cores or _cores()
        self.sample_s = sample_s
        self.clock = clock
        # (time, cpu seconds of the process tree, frames analysed, seconds waited), newest last
        self._samples: deque[tuple[float, float, int, float]] = deque(
            maxlen=max(2, round(window_s / sample_s) + 1)
        )
        self._cpu_of: dict[int, float] = {}  # worker pid -> its CPU seconds at the latest sample
        self._cpu_total = 0.0  # CPU seconds of the tree, carried across workers that come and go
        self._analysis_of: dict[str, tuple[int, float]] = {}
        self._analysed = 0
        self._waited = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._own_lag:
            self.lag.start()
        if self._task is None:
            self.sample()
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._own_lag:
            self.lag.stop()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sample_s)
            self.sample()

    def sample(self) -> None:
        """Note the CPU and analysis counters now (the probe's task does, every ``sample_s``)."""
        workers: dict[int, float] = {}
        for pid in self.pids():
            used = cpu_seconds(pid)
            if used is not None:
                workers[pid] = used
        # a worker's growth since the last sample (a new worker: all it used); a gone one adds nothing
        grown = sum(max(0.0, used - self._cpu_of.get(pid, 0.0)) for pid, used in workers.items())
        self._cpu_of = workers
        own = time.process_time()
        self._cpu_total += grown
        tree = own + self._cpu_total
        if self.analysis is not None:
            streams = dict(self.analysis())
            for key, (analysed, waited) in streams.items():
                was_analysed, was_waited = self._analysis_of.get(key, (0, 0.0))
                self._analysed += max(0, analysed - was_analysed)
                self._waited += max(0.0, waited - was_waited)
            self._analysis_of = streams
        self._samples.append((self.clock(), tree, self._analysed, self._waited))

    def cpu(self) -> float | None:
        """The share of the cores this server used over the window (0..1); None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, c0, _, _), (t1, c1, _, _) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return max(0.0, (c1 - c0) / (t1 - t0) / self.cores)

    def analysis_wait_ms(self) -> float | None:
        """The mean time a frame analysed over the window waited for its worker, in ms; None when
        none was analysed."""
        if len(self._samples) < 2:
            return None
        (_, _, a0, w0), (_, _, a1, w1) = self._samples[0], self._samples[-1]
        return (w1 - w0) / (a1 - a0) * 1000.0 if a1 > a0 else None

    def lag_ms(self) -> float:
        """The event loop's lag, p99 over the last ``ADMISSION_LAG_WINDOW_S``, in ms."""
        return self.lag.quantile(0.99, ADMISSION_LAG_WINDOW_S) * 1000.0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
