"""Builders shared by the policy tests: faces, observations, sessions driven to a known state."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from policies.config import PolicyConfig, load_policy
from policies.decisions import (
    Alert,
    AlertRepeated,
    Decision,
    RecheckPassed,
    StateChanged,
    WarningCleared,
    WarningIssued,
)
from policies.events import (
    Event,
    Face,
    Lighting,
    Observation,
    ParticipantJoined,
    Role,
    StaffEnd,
    StaffPause,
    Tick,
    Verdict,
    Visibility,
)
from policies.session import Session

#: the shipped policy, with the unbooked-face window at 1.0 s, the value these rule tests were
#: written for (their times are whole windows); test_config.py pins the shipped defaults
CONFIG = replace(load_policy(), unbooked_face_pause_after_s=1.0)
VISITORS = ("v1", "v2")
PRISONER = "P1"
DURATION = 1800.0


def config(**overrides: Any) -> PolicyConfig:
    return replace(CONFIG, **overrides)


def session(cfg: PolicyConfig = CONFIG, duration: float = DURATION) -> Session:
    return Session(cfg, duration, VISITORS, PRISONER)


def match(track: int = 1, who: str = "v1", **kw: Any) -> Face:
    return Face(track, Verdict.MATCH, who, 0.3, **kw)


def unbooked(track: int = 9, **kw: Any) -> Face:
    return Face(track, Verdict.UNBOOKED, None, 0.7, **kw)


def pending(track: int = 5, samples: int = 3) -> Face:
    """A face identity sampled ``samples`` times without deciding (3: undecided, in doubt)."""
    return Face(track, Verdict.PENDING, samples=samples)


def partial(track: int = 1, who: str = "v1") -> Face:
    return match(track, who, visibility=Visibility.PARTIAL)


def dark(track: int = 1, who: str = "v1") -> Face:
    return match(track, who, lighting=Lighting.DARK)


def obs(t: float, *faces: Face, source: str = "dev1", role: Role = Role.VISITOR, **kw: Any) -> Observation:
    return Observation(t, source, role, tuple(faces), **kw)


def frames(start: float, stop: float, *faces: Face, step: float = 0.1, **kw: Any) -> list[Observation]:
    """Observations every ``step`` s in [start, stop) (times rounded to the millisecond)."""
    count = math.ceil((stop - start) / step - 1e-9)
    return [obs(round(start + i * step, 3), *faces, **kw) for i in range(count)]


def feed(s: Session, events: Iterable[Event]) -> list[Decision]:
    out: list[Decision] = []
    for event in events:
        out.extend(s.handle(event))
    return out


def kinds(decisions: Iterable[Decision]) -> list[str]:
    return [type(d).__name__ for d in decisions]


def live_session(cfg: PolicyConfig = CONFIG) -> Session:
    """dev1 (visitor v1) joined at -1 and clean since -1: live at 1.0, now 1.0, analysis due at 6.0."""
    s = session(cfg)
    feed(s, [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1"), *frames(-1.0, 1.01, match(), step=0.5)])
    assert s.state == "live" and s.now == 1.0
    return s


def verifying_session() -> Session:
    """dev1 joined, its face not yet identified (PENDING): verifying at 1.0, nothing due before 6.0."""
    s = session()
    feed(s, [ParticipantJoined(-1.0, "dev1", Role.VISITOR, "v1"), *frames(0.5, 1.01, pending(), step=0.5)])
    assert s.state == "verifying" and s.now == 1.0
    return s


def waiting_session() -> Session:
    s = session()
    feed(s, [ParticipantJoined(-10.0, "dev1", Role.VISITOR, "v1")])
    assert s.state == "waiting"
    return s


def paused_session() -> Session:
    s = live_session()
    feed(s, [StaffPause(1.2, "language")])
    assert s.state == "paused"
    return s


def ended_session() -> Session:
    s = live_session()
    feed(s, [StaffEnd(1.2)])
    assert s.state == "ended"
    return s


def ticks(start: float, stop: float, step: float = 1.0) -> list[Tick]:
    return [Tick(round(start + i * step, 3)) for i in range(round((stop - start) / step))]


def timeline(decisions: list) -> list[tuple]:
    """Decisions as comparable tuples: (t, kind, detail...)."""
    out: list[tuple] = []
    for d in decisions:
        match d:
            case StateChanged():
                out.append((d.t, "state", d.state.value, tuple(r.value for r in d.reasons)))
            case Alert():
                out.append((d.t, "alert", d.reason.value, d.source, d.track, d.needs_staff))
            case WarningIssued():
                out.append((d.t, "warning", d.reason.value, d.source))
            case WarningCleared():
                out.append((d.t, "cleared", d.reason.value, d.source))
            case RecheckPassed():
                out.append((d.t, "recheck", d.awaiting_staff))
            case AlertRepeated():
                out.append((d.t, "repeated", d.reason.value, d.source, d.count))
            case _:
                out.append((d.t, "identity", d.source, d.track, d.participant))
    return out
