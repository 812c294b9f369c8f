"""The timeline contract: one JSON object per line, shared by `monitor replay` and live recording.

Every line has ``t`` (float seconds from the first frame of the media, i.e. the start of the
replayed piece; live: from the booked start) and ``kind``. Kinds and their required fields:

- ``state``: ``state``, ``previous``; ``reasons`` (list) when the state is ``paused`` or ``ended``.
- ``alert``: ``reason``, ``source``, ``track``, ``participant``, ``detail``, ``needs_staff``.
- ``warning``: ``reason``, ``source``, ``guidance``.
- ``warning_cleared``: ``reason``, ``source``.
- ``identity``: ``source``, ``track``, ``participant`` (null when unmatched), ``distance``.
- ``recheck``: ``passed`` (true), ``awaiting_staff``.
- ``event``: an injected client/staff event that was applied (``event`` names it).

``call_t`` (seconds since the booked ``starts_at``) is added to every line when it differs from
``t`` (replay with ``--offset``). This module is the only encoder of the format.
"""

from __future__ import annotations

import json
from typing import Any

from policies.decisions import (
    Alert,
    AlertRepeated,
    Decision,
    IdentityNoted,
    RecheckPassed,
    State,
    StateChanged,
    WarningCleared,
    WarningIssued,
)
from policies.text import encodable


def _round(t: float) -> float:
    return round(t, 3)


def decision_record(decision: Decision, offset: float = 0.0) -> dict[str, Any]:
    """The timeline object for one decision. ``offset`` is the call time of the media's first frame:
    what fell due before it (the call starting at call time 0) is in force at the first frame, so
    it is written at ``t`` 0 with its true ``call_t``."""
    record: dict[str, Any] = {"t": _round(max(decision.t - offset, 0.0) if offset else decision.t)}
    match decision:
        case StateChanged():
            record.update(kind="state", state=decision.state.value, previous=decision.previous.value)
            if decision.state in (State.PAUSED, State.ENDED) or decision.reasons:
                record["reasons"] = [r.value for r in decision.reasons]
        case Alert():
            record.update(
                kind="alert",
                reason=decision.reason.value,
                source=decision.source,
                track=decision.track,
                participant=decision.participant,
                detail=decision.detail,
                needs_staff=decision.needs_staff,
            )
        case WarningIssued():
            record.update(
                kind="warning",
                reason=decision.reason.value,
                source=decision.source,
                guidance=decision.guidance,
            )
        case WarningCleared():
            record.update(kind="warning_cleared", reason=decision.reason.value, source=decision.source)
        case IdentityNoted():
            record.update(
                kind="identity",
                source=decision.source,
                track=decision.track,
                participant=decision.participant,
                distance=None if decision.distance is None else round(decision.distance, 3),
            )
        case RecheckPassed():
            record.update(kind="recheck", passed=True, awaiting_staff=decision.awaiting_staff)
        case AlertRepeated():
            record.update(
                kind="alert_repeated",
                reason=decision.reason.value,
                source=decision.source,
                count=decision.count,
            )
    if offset:
        record["call_t"] = _round(decision.t)
    return record


def encode_line(record: dict[str, Any]) -> str:
    """One timeline line (no trailing newline); keys in a stable order for diffable files. Text is
    written as UTF-8, except that a record holding a lone surrogate (which UTF-8 cannot encode; the
    wire parsers refuse them) is written with JSON's ASCII escapes, so writing it can never fail."""
    line = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
    return line if encodable(line) else json.dumps(record, separators=(", ", ": "))


def decode_line(line: str) -> dict[str, Any]:
    """Parse one timeline line, checking the fields every line must have."""
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("t"), int | float) or "kind" not in record:
        raise ValueError(f"not a timeline line: {line[:80]!r}")
    return record
