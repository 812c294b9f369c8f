"""The wire between the front process of ``monitor serve --relay-workers N`` and a relay worker.

Theory of operation. A relay worker is a child process (``python -m monitor.relay_workers.worker``) whose
stdin carries the front's messages and whose stdout carries its own (the worker moves anything
else printed to stdout onto stderr). Each message is one JSON object on one line, at most
``MAX_LINE`` bytes, with a ``kind`` from :data:`KINDS`, the table that says which fields each kind
has and of which types; :func:`decode` is the one place a line is parsed and checked, and
:func:`encode` refuses what :func:`decode` would refuse. Requests that expect an answer carry an
``id``; the answer is a ``reply`` with the same id, ``ok`` and either ``result`` or
``code``/``message`` (a refusal meant for the user, e.g. a ``JoinRefused``).

Two values are opaque ``blob`` strings: the booking and the policy (base64 of a pickle). The pipe
is private to two processes of this program (the front spawns the worker), so nothing from outside
ever reaches the unpickler; a pickle carries the exact frozen dataclasses, paths and datetimes,
where a JSON round trip would re-validate a booking that was already validated.

End of file on the pipe means the other side is gone: the worker then closes its calls and exits
(so a front killed with SIGKILL leaves no orphan), the front treats the worker as dead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
from dataclasses import dataclass
from typing import Any

#: Longest line either side sends or accepts (an SDP is a few kB, an evidence JPEG ~100 kB).
MAX_LINE = 4 * 1024 * 1024

_STR, _INT, _NUM, _BOOL, _DICT, _LIST = (str,), (int,), (int, float), (bool,), (dict,), (list,)
_OPT_STR = (str, type(None))

#: kind -> {field: accepted types}. Every field listed is required; no other field is allowed.
KINDS: dict[str, dict[str, tuple[type, ...]]] = {
    # front -> worker
    "hello": {
        "config": _STR,
        "record_dir": _OPT_STR,
        "ice_servers": _LIST,
        "ice_hosts": _LIST,
        "analysis_workers": _INT,
    },
    "add_call": {"id": _INT, "call": _STR, "booking": _STR},
    "close_call": {"call": _STR},
    "join": {"id": _INT, "conn": _INT, "call": _STR, "participant": _STR},
    "offer": {"id": _INT, "conn": _INT, "sdp": _STR},
    "capture_attempt": {"conn": _INT, "detail": _STR},
    "leave": {"conn": _INT},
    "staff": {"id": _INT, "call": _STR, "action": _STR, "note": _STR, "staff": _STR},
    "watch": {"id": _INT, "watch": _INT, "call": _STR},
    "watch_answer": {"id": _INT, "watch": _INT, "sdp": _STR},
    "watch_close": {"watch": _INT},
    "stop": {},
    # worker -> front
    "ready": {"pid": _INT},
    "reply": {"id": _INT, "ok": _BOOL, "result": _DICT, "code": _STR, "message": _STR},
    "send": {"conn": _INT, "frame": _DICT},
    "close": {"conn": _INT},
    "hub": {"call": _STR, "record": _DICT, "evidence": _OPT_STR},
    "snapshot": {"calls": _DICT, "lag_ms": _NUM, "analysis_restarts": _INT},
    "ended": {"call": _STR},
}
STAFF_ACTIONS = ("pause", "resume", "end")


class WireError(ValueError):
    """A line that is not a valid message (a bug on the other side, or a line too long)."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    fields: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def _check(kind: Any, fields: dict[str, Any]) -> None:
    if not isinstance(kind, str) or kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    schema = KINDS[kind]
    extra = set(fields) - set(schema)
    if extra:
        raise WireError(f"{kind}: unexpected fields {sorted(extra)}")
    for name, types in schema.items():
        if name not in fields:
            raise WireError(f"{kind}: missing field {name!r}")
        value = fields[name]
        if isinstance(value, bool) and bool not in types:  # bool is an int: not for int fields
            raise WireError(f"{kind}.{name}: expected {types[0].__name__}, got bool")
        if not isinstance(value, types):
            raise WireError(f"{kind}.{name}: expected {types[0].__name__}, got {type(value).__name__}")
    if kind == "staff" and fields["action"] not in STAFF_ACTIONS:
        raise WireError(f"staff.action: expected one of {STAFF_ACTIONS}, got {fields['action']!r}")


def encode(kind: str, **fields: Any) -> bytes:
    _check(kind, fields)
    line = json.dumps({"kind": kind, **fields}, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise WireError(f"{kind}: message of {len(line)} bytes is over the {MAX_LINE} byte limit")
    return line


def decode(line: bytes) -> Message:
    if len(line) > MAX_LINE:
        raise WireError(f"line of {len(line)} bytes is over the {MAX_LINE} byte limit")
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("a message is a JSON object")
    kind = data.pop("kind", None)
    _check(kind, data)
    return Message(kind, data)


def blob(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def unblob(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


def reply(
    request_id: int, result: dict[str, Any] | None = None, *, code: str = "", message: str = ""
) -> bytes:
    """The reply to request ``request_id``: ``ok`` unless ``code`` is given."""
    return encode("reply", id=request_id, ok=not code, result=result or {}, code=code, message=message)


class Channel:
    """One side of the pipe: ``send`` writes a line (waiting only while the pipe is full),
    ``recv`` returns the next message, or None at end of file."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._lock = asyncio.Lock()

    async def send(self, line: bytes) -> None:
        async with self._lock:  # drain() is not safe to await from several tasks at once
            self.writer.write(line)
            await self.writer.drain()

    async def recv(self) -> Message | None:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            raise WireError(f"a line over the {MAX_LINE} byte limit") from exc
        return decode(line)

    def close(self) -> None:
        self.writer.close()


__all__ = [
    "KINDS",
    "MAX_LINE",
    "Channel",
    "Message",
    "WireError",
    "blob",
    "decode",
    "encode",
    "reply",
    "unblob",
]
