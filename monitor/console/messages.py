"""Every message a console sends on /console/ws, parsed and validated in one place.

Client -> server (JSON objects, at most ``MAX_BYTES``; ``ref`` is an optional client tag echoed in
the answer):

- ``{"type": "hello", "after": 41}``: start the feed after audit record 41 (``null``: recent records);
- ``{"type": "pause", "call_id": "...", "note": "inappropriate behaviour"}`` (a note is required);
- ``{"type": "resume", "call_id": "..."}``: approve the resume (the recheck must still pass);
- ``{"type": "end", "call_id": "...", "note": "..."}``;
- ``{"type": "ack", "audit_id": 57}``: acknowledge an alert;
- ``{"type": "confirm_identity", "alert_id": 57, "participant": "v1"}``: the face of the
  ``identity_unconfirmed`` alert 57 is ``v1``, booked on that side (``identity.py``);
- ``{"type": "reject_identity", "alert_id": 57}``: that face is nobody booked.

On /console/watch (staff watching a call): ``{"type": "watch", "call_id": "..."}``, then
``{"type": "answer", "sdp": "..."}`` (at most ``MAX_SDP_BYTES``) for the server's offer.

Server -> client: ``welcome`` (who you are, head audit id), ``records`` (audit records, oldest
first), ``store`` (whenever it changes: ``ok``, and while not ok the ``detail``, the records
``waiting`` to be written and the ``calls`` of your prison among theirs), ``done`` / ``error``
(answers, with ``ref``). A bad message gets one ``error`` naming what is
wrong; the connection stays open.

A ``call_id`` follows ``policies.text``'s id rule and every other string its rule for free text
(no lone surrogates, no control characters; an SDP keeps its line breaks), so what a console sends
can always be written to the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from policies.text import encodable, id_problem, text_problem

MAX_BYTES = 4096
MAX_SDP_BYTES = 64 * 1024
MAX_NOTE = 500


class MessageError(ValueError):
    """A console message is malformed; the text is safe to send back to that console."""


@dataclass(frozen=True, slots=True)
class Hello:
    after: int | None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    call_id: str
    note: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    call_id: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class End:
    call_id: str
    note: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    audit_id: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmIdentity:
    alert_id: int
    participant: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class RejectIdentity:
    alert_id: int
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class WatchCall:
    call_id: str
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str
    ref: str | None = None


ClientMessage = Hello | Pause | Resume | End | Ack | ConfirmIdentity | RejectIdentity | WatchCall | Answer
FEED_TYPES = ("hello", "pause", "resume", "end", "ack", "confirm_identity", "reject_identity")
WATCH_TYPES = ("watch", "answer")

_FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("after",),
    "pause": ("call_id", "note"),
    "resume": ("call_id",),
    "end": ("call_id", "note"),
    "ack": ("audit_id",),
    "confirm_identity": ("alert_id", "participant"),
    "reject_identity": ("alert_id",),
    "watch": ("call_id",),
    "answer": ("sdp",),
}


def _text(doc: dict[str, Any], key: str, limit: int, required: bool = True, lines: bool = False) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise MessageError(f"{key}: must be text")
    value = value.strip()
    if required and not value:
        raise MessageError(f"{key}: must not be empty")
    if len(value) > limit:
        raise MessageError(f"{key}: at most {limit} characters")
    problem = text_problem(value, lines=lines)
    if problem is not None:
        raise MessageError(f"{key}: {problem}")
    return value


def _id(doc: dict[str, Any], key: str) -> str:
    """An id field (a call, a booked person): ``policies.text``'s id rule."""
    value = _text(doc, key, 100)
    problem = id_problem(value)
    if problem is not None:
        raise MessageError(f"{key}: {problem}")
    return value


def _call_id(doc: dict[str, Any]) -> str:
    return _id(doc, "call_id")


def _int(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:  # SQLite INTEGER
        raise MessageError(f"{key}: must be a whole number >= 0")
    return value


def parse(raw: str | bytes, allowed: tuple[str, ...] = FEED_TYPES) -> ClientMessage:
    """One message of the ``allowed`` types (the feed's by default), or a MessageError."""
    if isinstance(raw, bytes):
        raise MessageError("send text frames (JSON), not binary")
    limit = MAX_SDP_BYTES if "answer" in allowed else MAX_BYTES
    if len(raw.encode("utf-8")) > limit:
        raise MessageError(f"message too large (at most {limit} bytes)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep (e.g. 2000 '[')
        raise MessageError("not valid JSON") from None
    if not isinstance(doc, dict):
        raise MessageError("a message must be a JSON object")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        raise MessageError(f"type: must be one of {', '.join(allowed)}")
    for key in doc:
        if key not in (*_FIELDS[kind], "type", "ref"):
            raise MessageError(f"{key}: unknown field for {kind}")
    ref = doc.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 64):
        raise MessageError("ref: must be text of at most 64 characters")
    if ref is not None and (problem := text_problem(ref)) is not None:
        raise MessageError(f"ref: {problem}")
    match kind:
        case "hello":
            after = doc.get("after")
            return Hello(None if after is None else _int(after, "after"), ref)
        case "pause":
            return Pause(_call_id(doc), _text(doc, "note", MAX_NOTE), ref)
        case "resume":
            return Resume(_call_id(doc), ref)
        case "end":
            return End(_call_id(doc), _text(doc, "note", MAX_NOTE, required=False), ref)
        case "watch":
            return WatchCall(_call_id(doc), ref)
        case "answer":
            return Answer(_text(doc, "sdp", MAX_SDP_BYTES, lines=True), ref)
        case "confirm_identity":
            return ConfirmIdentity(_int(doc.get("alert_id"), "alert_id"), _id(doc, "participant"), ref)
        case "reject_identity":
            return RejectIdentity(_int(doc.get("alert_id"), "alert_id"), ref)
        case _:
            return Ack(_int(doc.get("audit_id"), "audit_id"), ref)


def encode(kind: str, **fields: Any) -> str:
    """A server frame; a lone surrogate in a record's text (which the parsers refuse, so only from
    an older record) is sent as JSON's ASCII escape instead of failing the whole feed."""
    text = json.dumps({"type": kind, **fields}, ensure_ascii=False)
    return text if encodable(text) else json.dumps({"type": kind, **fields})
