"""This process's measured load: how late its event loop wakes up.

A periodic sleep that wakes late tells how busy the loop is (everything a call does runs on it).
``monitor serve`` reports it on /metrics and admits calls by it; a relay worker reports it to the
front with its snapshots.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

LAG_INTERVAL_S = 0.1
LAG_WINDOW_S = 60.0


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

    def quantile(self, q: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
