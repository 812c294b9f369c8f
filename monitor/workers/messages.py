"""The messages between the analysis pool and its worker processes, one frozen class per kind.

The pipe is private to two processes of this program (the pool spawns the worker), so messages
cross it pickled, as they are: a booking, a ``Role`` and an ``Observation`` keep their exact types.
Each side dispatches on the class with ``match``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.events import Observation, Role

# ---- pool -> worker ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrol:
    """Embed a call's reference photos (``enrol_booking``), for the sources opened later."""

    call_id: str
    booking: Any  # policies.booking.Booking


@dataclass(frozen=True, slots=True)
class Open:
    """Build the analysis pipeline of one source of an enrolled call."""

    key: str
    call_id: str
    source: str
    role: Role


@dataclass(frozen=True, slots=True)
class Close:
    key: str


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop a call's enrolment."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Analyse:
    """One frame of a source: I420 planes, (h*3/2, w) uint8, at media time ``t``."""

    key: str
    t: float
    planes: np.ndarray


@dataclass(frozen=True, slots=True)
class Crash:
    """Die abruptly, as a segfaulting model would (fault tests and drills)."""


@dataclass(frozen=True, slots=True)
class Stop:
    pass


ToWorker = Enrol | Open | Close | Forget | Analyse | Crash | Stop

# ---- worker -> pool ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker has warmed up (``warmup_s`` spent on it; -1: the warm-up failed)."""

    warmup_s: float


@dataclass(frozen=True, slots=True)
class Result:
    key: str
    observation: Observation
    spent_s: float  # analysis time of the frame
    steady: bool  # the frame was steady (FrameResult.steady)
    voting: bool = False  # a face in it awaits its identity votes (FrameResult.voting)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frame of a source that is not open (its ``Open`` failed, and was reported)."""

    key: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Opening a source or analysing its frame raised (``during``: which, for the log)."""

    key: str
    during: str
    detail: str
    trace: str


@dataclass(frozen=True, slots=True)
class EnrolFailed:
    call_id: str
    detail: str
    trace: str


@dataclass(frozen=True, slots=True)
class WarmUpFailed:
    """The worker still serves (and fails per frame if it is broken)."""

    detail: str
    trace: str


FromWorker = Ready | Result | Skipped | Failed | EnrolFailed | WarmUpFailed

__all__ = [
    "Analyse",
    "Close",
    "Crash",
    "Enrol",
    "EnrolFailed",
    "Failed",
    "Forget",
    "FromWorker",
    "Open",
    "Ready",
    "Result",
    "Skipped",
    "Stop",
    "ToWorker",
    "WarmUpFailed",
]
