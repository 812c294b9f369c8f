"""Events the session consumes. Every event carries ``t``: media seconds since the booked start.

The core never reads a clock: live calls stamp events with media time since ``starts_at`` and
replay stamps them with the video's presentation time, so both feed the same numbers in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies.reasons import Reason


class Role(StrEnum):
    VISITOR = "visitor"
    PRISONER = "prisoner"


class Verdict(StrEnum):
    """What identity analysis concluded about one face track (after voting)."""

    MATCH = "match"  # confidently one booked person (``participant`` says who)
    UNBOOKED = "unbooked"  # confidently nobody booked on this side
    PENDING = "pending"  # not decided yet (new track, poor quality, no vote yet)


class Visibility(StrEnum):
    FULL = "full"
    PARTIAL = "partial"  # part of the face is out of the picture (or its mesh was lost)
    TURNED_AWAY = "turned_away"  # head turned so the face cannot be checked
    COVERED = "covered"  # a hand or an object in front of part of the face


class Lighting(StrEnum):
    OK = "ok"
    DARK = "dark"
    OVEREXPOSED = "overexposed"
    UNEVEN = "uneven"
    BACKLIT = "backlit"


@dataclass(frozen=True, slots=True)
class Face:
    """One face in one analysed frame."""

    track: int
    verdict: Verdict
    participant: str | None = None  # set when verdict is MATCH (and the best guess otherwise)
    distance: float | None = None  # embedding distance to ``participant`` (lower is closer)
    visibility: Visibility = Visibility.FULL
    lighting: Lighting = Lighting.OK
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # x, y, w, h in 0..1 of the frame
    samples: int = 0  # identity samples behind the verdict (the track's vote window)


@dataclass(frozen=True, slots=True)
class Observation:
    """What analysis saw in one frame of one source (a device's camera)."""

    t: float
    source: str  # device / stream id, unique within the call
    role: Role = Role.VISITOR
    faces: tuple[Face, ...] = ()
    persons_without_face: int = 0  # bodies/heads in view with no checkable face (back of head)
    lighting: Lighting = Lighting.OK  # whole-frame lighting, when no face can be judged
    # the picture behind the faces: guidance only (never a pause, never part of the security check)
    camera_moving: bool = False  # the background keeps shifting: the camera is held, not resting
    busy_background: bool = False  # what is behind the people is cluttered or patterned


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes with nothing else to say (drives windows, time-outs and the fixed end)."""

    t: float


@dataclass(frozen=True, slots=True)
class AnalysisFailed:
    """Analysis of ``source`` raised or its worker died. The session fails closed after a window."""

    t: float
    source: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CaptureAttempt:
    """The calling app saw a recording or screenshot attempt."""

    t: float
    source: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StaffPause:
    """A member of staff pauses the call (resuming it needs a staff approval too)."""

    t: float
    note: str = ""
    staff: str = ""


@dataclass(frozen=True, slots=True)
class StaffResume:
    """Staff approve resuming; the call resumes once the security recheck also passes."""

    t: float
    staff: str = ""


@dataclass(frozen=True, slots=True)
class StaffEnd:
    """A member of staff ends the call."""

    t: float
    note: str = ""
    staff: str = ""


@dataclass(frozen=True, slots=True)
class ParticipantJoined:
    """A device joined (or rejoined) on a booked person's link."""

    t: float
    source: str
    role: Role = Role.VISITOR
    participant: str = ""  # booked id the join token belongs to
    analysed: bool = True  # whether this source's frames are analysed (expect observations)


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    """A device left or lost its connection."""

    t: float
    source: str


@dataclass(frozen=True, slots=True)
class StaffConfirmIdentity:
    """A member of staff looked at face ``track`` of ``source`` and says it is ``participant``
    (booked on that source's side). It holds for that track for the rest of the call."""

    t: float
    source: str
    track: int
    participant: str
    staff: str = ""


@dataclass(frozen=True, slots=True)
class StaffRejectIdentity:
    """A member of staff says face ``track`` of ``source`` is nobody booked on the call."""

    t: float
    source: str
    track: int
    staff: str = ""


@dataclass(frozen=True, slots=True)
class FaultRaised:
    """The server cannot do something the call depends on: write its audit records
    (``store_error``) or its recording (``recording_error``). Raised again while it lasts, it
    only updates the detail."""

    t: float
    reason: Reason  # one of policies.reasons.FAULT_REASONS
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """The fault ``reason`` is over (the records or the recording are written again)."""

    t: float
    reason: Reason


@dataclass(frozen=True, slots=True)
class PauseCarriedOver:
    """The call is rebuilt (its server or worker restarted) while it was paused for ``reasons``:
    those that need staff approval hold the new session paused until staff approve."""

    t: float
    reasons: tuple[Reason, ...]
    detail: str = ""


Event = (
    Observation
    | Tick
    | AnalysisFailed
    | CaptureAttempt
    | StaffPause
    | StaffResume
    | StaffEnd
    | ParticipantJoined
    | ParticipantLeft
    | StaffConfirmIdentity
    | StaffRejectIdentity
    | FaultRaised
    | FaultCleared
    | PauseCarriedOver
)

__all__ = [
    "AnalysisFailed",
    "CaptureAttempt",
    "Event",
    "Face",
    "FaultCleared",
    "FaultRaised",
    "Lighting",
    "Observation",
    "ParticipantJoined",
    "ParticipantLeft",
    "PauseCarriedOver",
    "Role",
    "StaffConfirmIdentity",
    "StaffEnd",
    "StaffPause",
    "StaffRejectIdentity",
    "StaffResume",
    "Tick",
    "Verdict",
    "Visibility",
]
