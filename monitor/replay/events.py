"""Injected events for ``monitor replay --events FILE``: what happened on the call that the video
does not show (a capture attempt; staff pausing, resuming or ending the call; staff confirming a
face track as a booked person or rejecting it as nobody booked), one JSON object a line, parsed and
checked here and nowhere else."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.inputs import MAX_EVENTS_BYTES, decode_json, read_text
from policies.events import (
    CaptureAttempt,
    Event,
    StaffConfirmIdentity,
    StaffEnd,
    StaffPause,
    StaffRejectIdentity,
    StaffResume,
)
from policies.text import id_problem, text_problem

Record = dict[str, Any]
Value = str | int


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    line: int  # 1-based line in the events file
    t: float  # media seconds from the first frame
    kind: str
    fields: dict[str, Value]

    def _text(self, key: str, default: str = "") -> str:
        return str(self.fields.get(key, default))

    def event(self, offset: float, device: str = "") -> Event:
        """The session event, at call time; a capture attempt or a staff identity verdict is about
        ``device`` (the recording's) unless the line names a ``source``."""
        at = offset + self.t
        source = self._text("source", device)
        match self.kind:
            case "capture_attempt":
                return CaptureAttempt(at, source=source, detail=self._text("detail"))
            case "staff_pause":
                return StaffPause(at, note=self._text("note"), staff=self._text("staff"))
            case "staff_resume":
                return StaffResume(at, staff=self._text("staff"))
            case "staff_confirm_identity":
                track, participant = int(self.fields["track"]), self._text("participant")
                return StaffConfirmIdentity(at, source, track, participant, staff=self._text("staff"))
            case "staff_reject_identity":
                return StaffRejectIdentity(at, source, int(self.fields["track"]), staff=self._text("staff"))
        return StaffEnd(at, note=self._text("note"), staff=self._text("staff"))

    def record(self, offset: float) -> Record:
        rec: Record = {"t": round(self.t, 3), "kind": "event", "event": self.kind, **self.fields}
        if offset:
            rec["call_t"] = round(offset + self.t, 3)
        return rec


@dataclass(frozen=True, slots=True)
class _Field:
    kind: type  # str, or int (a face track: a whole number >= 0)
    required: bool = False


_TEXT, _TRACK, _WHO = _Field(str), _Field(int, required=True), _Field(str, required=True)

_EVENT_FIELDS: dict[str, dict[str, _Field]] = {
    "capture_attempt": {"source": _TEXT, "detail": _TEXT},
    "staff_pause": {"note": _TEXT, "staff": _TEXT},
    "staff_resume": {"staff": _TEXT},
    "staff_end": {"note": _TEXT, "staff": _TEXT},
    "staff_confirm_identity": {"track": _TRACK, "participant": _WHO, "source": _TEXT, "staff": _TEXT},
    "staff_reject_identity": {"track": _TRACK, "source": _TEXT, "staff": _TEXT},
}


def _value(where: str, kind: str, key: str, value: object) -> Value:
    spec = _EVENT_FIELDS[kind][key]
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(
                f"{where}: {key} must be a face track number (a whole number >= 0), got {value!r}"
            )
        return value
    if not isinstance(value, str):
        raise UserError(f"{where}: {key} must be text, got {type(value).__name__}")
    if spec.required and not value.strip():
        raise UserError(f"{where}: {key} must not be empty")
    # a source or a participant is an id; notes, details and names are free text
    problem = id_problem(value) if key in ("source", "participant") else text_problem(value)
    if problem is not None:
        raise UserError(f"{where}: {key}: {problem}")
    return value


def parse_events(text: str, origin: str) -> tuple[InjectedEvent, ...]:
    """JSON lines ``{"t": 12.0, "kind": "capture_attempt", ...}``; blank lines are skipped.

    Raises UserError naming ``origin:line`` and what is wrong. The result is sorted by ``t``
    (stable, so events at the same time keep their file order).
    """
    events: list[InjectedEvent] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{origin}:{number}"
        doc = decode_json(raw, where)  # depth and size checked before json recurses
        if not isinstance(doc, dict):
            raise UserError(f"{where}: each line must be a JSON object")
        kind = doc.get("kind")
        if kind not in _EVENT_FIELDS:
            raise UserError(f"{where}: kind must be one of {', '.join(_EVENT_FIELDS)}, got {kind!r}")
        t = doc.get("t")
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise UserError(f"{where}: t must be a number of seconds from the first frame, got {t!r}")
        if t < 0:
            raise UserError(f"{where}: t must not be negative, got {t!r}")
        allowed = _EVENT_FIELDS[kind]
        fields: dict[str, Value] = {}
        for key, value in doc.items():
            if key in ("t", "kind"):
                continue
            if key not in allowed:
                names = ", ".join(("t", "kind", *allowed))
                raise UserError(f"{where}: unknown field {key!r} for {kind} (allowed: {names})")
            fields[key] = _value(where, kind, key, value)
        missing = [key for key, spec in allowed.items() if spec.required and key not in fields]
        if missing:
            raise UserError(f"{where}: {kind} needs {' and '.join(missing)}")
        events.append(InjectedEvent(number, float(t), kind, fields))
    events.sort(key=lambda e: e.t)
    return tuple(events)


def load_events(path: str | Path) -> tuple[InjectedEvent, ...]:
    """The events file at ``path`` (at most ``MAX_EVENTS_BYTES``, checked before reading)."""
    path = Path(path)
    return parse_events(read_text(path, "events file", MAX_EVENTS_BYTES), str(path))


__all__ = ["InjectedEvent", "load_events", "parse_events"]
