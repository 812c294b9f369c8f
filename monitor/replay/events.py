"""Injected events for ``monitor replay --events FILE``: what happened on the call that the video
does not show (a capture attempt, staff pausing, resuming or ending the call), one JSON object a
line, parsed and checked here and nowhere else."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from policies.events import CaptureAttempt, Event, StaffEnd, StaffPause, StaffResume

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    line: int  # 1-based line in the events file
    t: float  # media seconds from the first frame
    kind: str
    fields: dict[str, str]

    def event(self, offset: float, device: str = "") -> Event:
        """The session event, at call time; a capture attempt comes from ``device`` unless it says."""
        at = offset + self.t
        f = self.fields
        if self.kind == "capture_attempt":
            return CaptureAttempt(at, source=f.get("source", device), detail=f.get("detail", ""))
        if self.kind == "staff_pause":
            return StaffPause(at, note=f.get("note", ""), staff=f.get("staff", ""))
        if self.kind == "staff_resume":
            return StaffResume(at, staff=f.get("staff", ""))
        return StaffEnd(at, note=f.get("note", ""), staff=f.get("staff", ""))

    def record(self, offset: float) -> Record:
        rec: Record = {"t": round(self.t, 3), "kind": "event", "event": self.kind, **self.fields}
        if offset:
            rec["call_t"] = round(offset + self.t, 3)
        return rec


_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "capture_attempt": ("source", "detail"),
    "staff_pause": ("note", "staff"),
    "staff_resume": ("staff",),
    "staff_end": ("note", "staff"),
}


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
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
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
        fields: dict[str, str] = {}
        for key, value in doc.items():
            if key in ("t", "kind"):
                continue
            if key not in _EVENT_FIELDS[kind]:
                allowed = ", ".join(("t", "kind", *_EVENT_FIELDS[kind]))
                raise UserError(f"{where}: unknown field {key!r} for {kind} (allowed: {allowed})")
            if not isinstance(value, str):
                raise UserError(f"{where}: {key} must be text, got {type(value).__name__}")
            fields[key] = value
        events.append(InjectedEvent(number, float(t), kind, fields))
    events.sort(key=lambda e: e.t)
    return tuple(events)


def load_events(path: str | Path) -> tuple[InjectedEvent, ...]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: events file not found") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: events file is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read events file: {exc.strerror or exc}") from None
    return parse_events(text, str(path))


__all__ = ["InjectedEvent", "load_events", "parse_events"]
