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
- the event loop is already lagging: its recent p95 lag (from ``monitor.metrics``' probe) is over
  ``max_loop_lag_ms``, which means the calls running now are already at their limit.

The refusal is one clear sentence for the person joining (what is wrong, that it is not their
fault, what to do), and a count for the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Calls per relay process measured by bench/capacity.py on the 2-core test machine (forwarding).
DEFAULT_MAX_CALLS = 8
DEFAULT_MAX_LOOP_LAG_MS = 50.0


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
