"""Events the session consumes. Every event carries ``t``: media seconds since the booked start.

The core never reads a clock: live calls stamp events with media time since ``starts_at`` and
replay stamps them with the video's presentation time, so both feed the same numbers in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    t: float
    note: str = ""
    staff: str = ""


@dataclass(frozen=True, slots=True)
class ParticipantJoined:
    t: float
    source: str
    role: Role = Role.VISITOR
    participant: str = ""  # booked id the join token belongs to
    analysed: bool = True  # whether this source's frames are analysed (expect observations)


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    t: float
    source: str


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
)

__all__ = [
    "AnalysisFailed",
    "CaptureAttempt",
    "Event",
    "Face",
    "Lighting",
    "Observation",
    "ParticipantJoined",
    "ParticipantLeft",
    "Role",
    "StaffEnd",
    "StaffPause",
    "StaffResume",
    "Tick",
    "Verdict",
    "Visibility",
]
