"""Decisions the session emits. Adapters act on them (gates, participant UI, staff alerts, store)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies.reasons import Reason


class State(StrEnum):
    WAITING = "waiting"  # before the booked start
    VERIFYING = "verifying"  # started; first security check not yet passed
    LIVE = "live"
    PAUSED = "paused"
    ENDED = "ended"  # terminal


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The call changed state (media flows only while it is live)."""

    t: float
    state: State
    previous: State
    reasons: tuple[Reason, ...] = ()  # why, when the new state is PAUSED or ENDED


@dataclass(frozen=True, slots=True)
class Alert:
    """For staff: a rule fired (a pause, or something staff must see)."""

    t: float
    reason: Reason
    source: str = ""
    track: int | None = None
    participant: str | None = None
    detail: str = ""
    needs_staff: bool = False  # resuming from this reason needs a member of staff to approve


@dataclass(frozen=True, slots=True)
class WarningIssued:
    """For the participant on ``source``: what to fix, in plain words, before anything is paused."""

    t: float
    reason: Reason
    source: str
    guidance: str


@dataclass(frozen=True, slots=True)
class WarningCleared:
    """What a warning was about is fixed: the participant's guidance goes away."""

    t: float
    reason: Reason
    source: str


@dataclass(frozen=True, slots=True)
class IdentityNoted:
    """A face track's identity verdict became known or changed."""

    t: float
    source: str
    track: int
    participant: str | None  # None when the face matches nobody booked
    distance: float | None


@dataclass(frozen=True, slots=True)
class RecheckPassed:
    """While paused, the security check passed. ``awaiting_staff`` when staff must still approve."""

    t: float
    awaiting_staff: bool


@dataclass(frozen=True, slots=True)
class AlertRepeated:
    """The alert of an episode still in force was raised again: ``count`` times in all so far.
    Sent when the count reaches 2, 4, 8, ... and, with the exact count, when the episode ends, so
    a flood of repeats is counted on its one alert instead of becoming thousands of alerts."""

    t: float
    reason: Reason
    source: str
    count: int


Decision = (
    StateChanged | Alert | AlertRepeated | WarningIssued | WarningCleared | IdentityNoted | RecheckPassed
)
