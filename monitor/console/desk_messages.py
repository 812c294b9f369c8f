"""Every message of the console's families desk (/console/desk), parsed and validated in one place.

Client -> server: JSON objects (text frames, at most ``MAX_BYTES``), each with a ``type`` and an
optional ``ref`` (text up to 64 characters, echoed in the answer). Ids are the ones the server
listed (``fam-...``, ``per-...``, ``con-...``, ``req-...``; prisoners by their prison number).

- ``overview``: the queues: accounts to verify, people and contacts to approve, call requests;
- ``verify`` / ``refuse_account``: ``account`` (+ ``reason``);
- ``approve_person`` / ``refuse_person``: ``person`` (+ ``reason``);
- ``approve_contact`` / ``refuse_contact``: ``contact`` (+ ``reason``);
- ``book_request``: ``request``, ``starts_at`` (``YYYY-MM-DDTHH:MM``, the prison's local time);
  ``decline_request``: ``request``, ``reason``;
- ``settings``: the prison's call settings and your role; ``change_settings`` (governors):
  any of ``mode``, ``time_zone``, ``concurrent_calls``, ``timetable``, ``cancel_cutoff_hours``;
- ``allowances``: ``month`` (``YYYY-MM``): the prisoners' calls that month and the grants;
  ``grant`` (governors): ``prisoner``, ``month``, ``extra_calls``, ``reason``.

Server -> client: one answer per message, ``{"type": "ok", ...}`` or ``{"type": "error", "code":
..., "message": ...}`` in plain words; nothing changes on an error. Staff and governor rules are the
store's (``monitor.store.family_staff``): this module only checks shapes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_BYTES = 16 * 1024
MAX_REASON = 2000  # the store allows 500 and says so; this only bounds what is read
_ID = re.compile(r"^[a-z]+-[0-9a-f]{12}$")
_PRISONER = re.compile(r"^[A-Za-z0-9-]{1,40}$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
SETTINGS = ("mode", "time_zone", "concurrent_calls", "timetable", "cancel_cutoff_hours")


class MessageError(ValueError):
    """A desk message is malformed; the text is safe to send back."""

    ref: str | None = None  # the message's ref, when it could be read


@dataclass(frozen=True, slots=True)
class Read:
    """``overview``, ``settings``: nothing to decide."""

    kind: str


@dataclass(frozen=True, slots=True)
class Decide:
    """A decision about one thing: ``kind`` says which (``verify``, ``refuse_person``, ...)."""

    kind: str
    target: str  # the account, person, contact or request id
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BookRequest:
    request: str
    starts_at: datetime  # naive: the prison's local time


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    changes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Allowances:
    month: str


@dataclass(frozen=True, slots=True)
class Grant:
    prisoner: str
    month: str
    extra_calls: int
    reason: str


Message = Read | Decide | BookRequest | ChangeSettings | Allowances | Grant

#: type -> (its target field, whether a reason is needed)
DECISIONS: dict[str, tuple[str, bool]] = {
    "verify": ("account", False),
    "refuse_account": ("account", True),
    "approve_person": ("person", False),
    "refuse_person": ("person", True),
    "approve_contact": ("contact", False),
    "refuse_contact": ("contact", True),
    "decline_request": ("request", True),
}
_FIELDS: dict[str, tuple[str, ...]] = {
    "overview": (),
    "settings": (),
    **{kind: (target, "reason") if reason else (target,) for kind, (target, reason) in DECISIONS.items()},
    "book_request": ("request", "starts_at"),
    "change_settings": SETTINGS,
    "allowances": ("month",),
    "grant": ("prisoner", "month", "extra_calls", "reason"),
}


def _text(doc: dict[str, Any], key: str, limit: int) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise MessageError(f"{key}: must be text")
    if any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t" for c in value):
        raise MessageError(f"{key}: contains characters that are not text")
    value = " ".join(value.split())
    if len(value) > limit:
        raise MessageError(f"{key}: at most {limit} characters")
    return value


def is_id(value: str) -> bool:
    """An id as the server makes them (``per-3f9a2c41d07b``)."""
    return bool(_ID.match(value))


def _id(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _ID.match(value):
        raise MessageError(f"{key}: not one from the list")
    return value


def _month(doc: dict[str, Any]) -> str:
    value = doc.get("month")
    if not isinstance(value, str) or not _MONTH.match(value):
        raise MessageError("month: give a month as YYYY-MM, e.g. 2030-06")
    return value


def _message(kind: str, doc: dict[str, Any]) -> Message:
    if kind in ("overview", "settings"):
        return Read(kind)
    if kind in DECISIONS:
        target, needs_reason = DECISIONS[kind]
        reason = _text(doc, "reason", MAX_REASON) if needs_reason else None
        return Decide(kind, _id(doc, target), reason)
    if kind == "book_request":
        value = doc.get("starts_at")
        if not isinstance(value, str) or not _LOCAL_TIME.match(value):
            raise MessageError("starts_at: give a date and a time, e.g. 2030-06-05T10:00")
        try:
            starts_at = datetime.fromisoformat(value)
        except ValueError:
            raise MessageError(f"starts_at: {value} is not a real date and time") from None
        return BookRequest(_id(doc, "request"), starts_at)
    if kind == "change_settings":
        changes = {key: doc[key] for key in SETTINGS if key in doc}
        if not changes:
            raise MessageError(f"change_settings: give at least one of {', '.join(SETTINGS)}")
        return ChangeSettings(changes)
    if kind == "allowances":
        return Allowances(_month(doc))
    prisoner = doc.get("prisoner")
    if not isinstance(prisoner, str) or not _PRISONER.match(prisoner):
        raise MessageError("prisoner: a prison number from the list")
    extra = doc.get("extra_calls")
    if not isinstance(extra, int) or isinstance(extra, bool):
        raise MessageError("extra_calls: a whole number")
    return Grant(prisoner, _month(doc), extra, _text(doc, "reason", MAX_REASON))


def parse(raw: str | bytes) -> tuple[Message, str | None]:
    """One desk message and its ``ref``; a MessageError (with ``.ref`` when it was readable)."""
    if isinstance(raw, bytes):
        raise MessageError("send text frames (JSON), not binary")
    if len(raw.encode("utf-8")) > MAX_BYTES:
        raise MessageError(f"message too large (at most {MAX_BYTES} bytes)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise MessageError("not valid JSON") from None
    if not isinstance(doc, dict):
        raise MessageError("a message must be a JSON object")
    ref = doc.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 64):
        raise MessageError("ref: must be text of at most 64 characters")
    kind = doc.get("type")
    try:
        if not isinstance(kind, str) or kind not in _FIELDS:
            raise MessageError(f"type: must be one of {', '.join(_FIELDS)}")
        for key in doc:
            if key not in (*_FIELDS[kind], "type", "ref"):
                raise MessageError(f"{key}: unknown field for {kind}")
        optional = kind == "change_settings"
        for key in _FIELDS[kind]:
            if key not in doc and not optional:
                raise MessageError(f"{key}: missing")
        return _message(kind, doc), ref
    except MessageError as exc:
        exc.ref = ref
        raise


def ok(ref: str | None, **fields: Any) -> str:
    return json.dumps(
        {"type": "ok", **({"ref": ref} if ref is not None else {}), **fields}, ensure_ascii=False
    )


def error(ref: str | None, code: str, message: str) -> str:
    payload: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        payload["ref"] = ref
    return json.dumps(payload, ensure_ascii=False)
