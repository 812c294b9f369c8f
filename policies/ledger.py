"""What a session keeps about each device and each finding, and the security check over them.

The session (``session.py``) owns the call's state, its clock and the transition table. The
ledger owns the facts it judges by: every source (a device's camera) with whether it is connected
and analysed and its latest observation, the findings in progress per (source, reason), the
identity verdicts already reported per face track, and which sides have no device left. It
answers the security check (:meth:`Ledger.is_clean`) and lists the timed work of its sources and
findings (:meth:`Ledger.due`); it never changes the call's state and emits nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

from policies.config import PolicyConfig
from policies.decisions import IdentityNoted
from policies.events import Face, Observation, Role, Verdict
from policies.findings import Culprit, is_clean
from policies.reasons import Reason

# What a finding is, for the staff alert (the culprit's kind is appended in brackets).
WHAT = {
    Reason.UNBOOKED_FACE: "a face that matches nobody booked on this call is in view",
    Reason.TOO_MANY_FACES: "more faces in view than people booked for this side",
    Reason.FACE_NOT_VISIBLE: "a face is only partly visible or turned away",
    Reason.NO_FACE: "nobody in view",
    Reason.POOR_LIGHTING: "lighting too poor to recognise faces",
    Reason.ANALYSIS_ERROR: "no analysis results",
    Reason.IDENTITY_UNCONFIRMED: "a face in view can be neither confirmed as someone booked nor ruled out",
}


class Due(IntEnum):
    """Kinds of timed work, in the order they fire when due at the same time."""

    START = 0
    TIME_UP = 1
    STALL = 2
    STALE = 3
    SIDE_GONE = 4
    CLEAR = 5
    WARN = 6
    PAUSE = 7
    RECHECK = 8


#: Timed work: (when, what kind, (source or side, reason value)).
DueWork = tuple[float, Due, tuple[str, str]]


@dataclass
class Source:
    role: Role
    participant: str | None  # who the device belongs to (from the join token), when known
    analysed: bool
    since: float  # clock time of the (re)join or first observation
    connected: bool = True
    latest: Observation | None = None  # since the (re)join
    last_seen: float | None = None
    stale: bool = False  # latest observation too old to count for the security check
    stalled: bool = False  # no observation for the analysis time-out (analysis_error)
    failure: str = ""  # detail of the latest AnalysisFailed


@dataclass
class Finding:
    first_seen: float
    warn_after: float | None
    pause_after: float
    culprit: Culprit
    absent_since: float | None = None
    warned: bool = False
    fired: bool = False


Key = tuple[str, Reason]


def side_source(role: Role) -> str:
    """The source name used for a side's own findings (a side with no device left)."""
    return f"side:{role.value}"


@dataclass
class Ledger:
    visitors: tuple[str, ...]
    prisoner: str | None
    sources: dict[str, Source] = field(default_factory=dict)
    findings: dict[Key, Finding] = field(default_factory=dict)
    identities: dict[tuple[str, int], tuple[Verdict, str | None]] = field(default_factory=dict)
    sides_joined: list[Role] = field(default_factory=list)
    side_left: dict[Role, float] = field(default_factory=dict)
    #: (source, track) -> the booked person staff confirmed the face to be, or None: rejected
    overrides: dict[tuple[str, int], str | None] = field(default_factory=dict)
    #: faults of the server in force -> (detail, whether they keep the security check from passing)
    faults: dict[Reason, tuple[str, bool]] = field(default_factory=dict)

    def connected(self, name: str) -> bool:
        return name in self.sources and self.sources[name].connected

    def booked_on(self, role: Role) -> tuple[str, ...] | None:
        if role is Role.VISITOR:
            return self.visitors
        return None if self.prisoner is None else (self.prisoner,)

    def is_clean(self) -> bool:
        """The security check: no fault that blocks it, at least one analysed, connected source,
        and every such source's fresh latest observation clean for the people booked on its side."""
        if any(blocking for _, blocking in self.faults.values()):
            return False
        analysed = [s for s in self.sources.values() if s.connected and s.analysed]
        return bool(analysed) and all(
            s.latest is not None
            and not (s.stale or s.stalled)
            and is_clean(self.judged(s.latest), self.booked_on(s.role))
            for s in analysed
        )

    def judged(self, obs: Observation) -> Observation:
        """``obs`` with the identity verdicts staff gave for its face tracks in place of analysis's."""
        if not any((obs.source, face.track) in self.overrides for face in obs.faces):
            return obs
        return replace(obs, faces=tuple(self._judged_face(obs.source, face) for face in obs.faces))

    def _judged_face(self, source: str, face: Face) -> Face:
        if (source, face.track) not in self.overrides:
            return face
        participant = self.overrides[(source, face.track)]
        verdict = Verdict.UNBOOKED if participant is None else Verdict.MATCH
        return replace(face, verdict=verdict, participant=participant)

    def register(self, name: str, role: Role, participant: str | None, analysed: bool, now: float) -> Source:
        src = Source(role, participant, analysed, since=now)
        self.sources[name] = src
        if role not in self.sides_joined:
            self.sides_joined.append(role)
        return src

    def note_identities(self, obs: Observation, now: float) -> list[IdentityNoted]:
        """The verdicts of ``obs``'s face tracks that changed since they were last reported."""
        noted: list[IdentityNoted] = []
        for face in sorted(obs.faces, key=lambda f: f.track):
            if face.verdict is Verdict.PENDING:
                continue
            participant = face.participant if face.verdict is Verdict.MATCH else None
            known = (face.verdict, participant)
            if self.identities.get((obs.source, face.track)) != known:
                self.identities[(obs.source, face.track)] = known
                noted.append(IdentityNoted(now, obs.source, face.track, participant, face.distance))
        return noted

    def due(self, cfg: PolicyConfig) -> list[DueWork]:
        """The timed work of the sources, the sides and the findings."""
        due: list[DueWork] = []
        for name, src in self.sources.items():
            if src.connected and src.analysed and not src.stalled:
                since = src.since if src.last_seen is None else src.last_seen
                due.append((max(since, 0.0) + cfg.analysis_timeout_s, Due.STALL, (name, "")))
            if src.latest is not None and src.last_seen is not None and not src.stale:
                due.append((src.last_seen + cfg.recheck_fresh_within_s, Due.STALE, (name, "")))
        for role, left in self.side_left.items():
            if (side_source(role), Reason.NO_FACE) not in self.findings:
                due.append((left + cfg.reconnect_grace_s, Due.SIDE_GONE, (role.value, "")))
        for (name, reason), f in self.findings.items():
            key = (name, reason.value)
            if f.absent_since is not None:
                due.append((f.absent_since + cfg.clear_after_s, Due.CLEAR, key))
            if f.warn_after is not None and not f.warned:
                due.append((f.first_seen + f.warn_after, Due.WARN, key))
            if not f.fired:
                due.append((max(f.first_seen + f.pause_after, 0.0), Due.PAUSE, key))
        return due
