"""The wire between the front process of ``monitor serve --relay-workers N`` and a relay worker.

Theory of operation. A relay worker is a child process (``python -m monitor.relay_workers.worker``)
whose stdin carries the front's messages and whose stdout carries its own (the worker moves anything
else printed to stdout onto stderr). Each message is one JSON object on one line, at most
``MAX_LINE`` bytes: its ``kind`` and its fields. Each kind is a frozen class here, whose annotated
fields say what the line must hold (every field is required, no other is allowed, each of its type;
a nested frozen dataclass is an object checked the same way); :data:`KINDS` maps the kinds to their
classes. :func:`decode` is the one place a line is parsed and checked, returning the typed message;
:func:`encode` refuses what :func:`decode` would refuse. Requests that expect an answer
(:class:`Request`) carry an ``id``; the answer is a :class:`Reply` with the same id, ``ok`` and
either ``result`` or ``code``/``message`` (a refusal meant for the user, e.g. a ``JoinRefused``).

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
import dataclasses
import json
import pickle
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from monitor.call.stats import CallStats
from monitor.workers.analysis_pool import StreamStats

#: Longest line either side sends or accepts (an SDP is a few kB, an evidence JPEG ~100 kB).
MAX_LINE = 4 * 1024 * 1024

StaffAction = Literal["pause", "resume", "end"]


class WireError(ValueError):
    """A line that is not a valid message (a bug on the other side, or a line too long)."""


class Message:
    """One line on the pipe; subclasses are frozen dataclasses with a ``KIND``."""

    __slots__ = ()
    KIND: ClassVar[str]


@dataclass(frozen=True, slots=True)
class Request(Message):
    """A message the other side answers with a :class:`Reply` of the same ``id``."""

    id: int


# ---- front -> worker -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello(Message):
    KIND: ClassVar[str] = "hello"
    config: str  # blob: the PolicyConfig
    record_dir: str | None
    ice_servers: list[dict[str, Any]]
    ice_hosts: list[str]
    analysis_workers: int


@dataclass(frozen=True, slots=True)
class AddCall(Request):
    KIND: ClassVar[str] = "add_call"
    call: str
    booking: str  # blob: the Booking
    carried: str  # blob: the monitor.call.held.CarriedOver from before a restart (may be empty)


@dataclass(frozen=True, slots=True)
class CloseCall(Message):
    KIND: ClassVar[str] = "close_call"
    call: str


@dataclass(frozen=True, slots=True)
class Join(Request):
    """A device joins ``participant``'s seat; ``conn`` names its connection from now on."""

    KIND: ClassVar[str] = "join"
    conn: int
    call: str
    participant: str


@dataclass(frozen=True, slots=True)
class Offer(Request):
    KIND: ClassVar[str] = "offer"
    conn: int
    sdp: str


@dataclass(frozen=True, slots=True)
class CaptureAttempt(Message):
    KIND: ClassVar[str] = "capture_attempt"
    conn: int
    detail: str


@dataclass(frozen=True, slots=True)
class Leave(Message):
    KIND: ClassVar[str] = "leave"
    conn: int


@dataclass(frozen=True, slots=True)
class Staff(Request):
    KIND: ClassVar[str] = "staff"
    call: str
    action: StaffAction
    note: str
    staff: str


@dataclass(frozen=True, slots=True)
class Fault(Message):
    """A fault of the server (``store_error``: the front cannot write the call's audit records)
    raised or cleared, for the call's session (``FaultRaised`` / ``FaultCleared``)."""

    KIND: ClassVar[str] = "fault"
    call: str
    reason: str  # a policies.reasons.FAULT_REASONS value
    detail: str
    raised: bool


@dataclass(frozen=True, slots=True)
class StaffIdentity(Request):
    """Staff confirm face ``track`` of ``source`` as ``participant``, or reject it (None). Refused
    (code ``refused``, the session's words) when it cannot apply."""

    KIND: ClassVar[str] = "staff_identity"
    call: str
    source: str
    track: int
    participant: str | None
    staff: str


@dataclass(frozen=True, slots=True)
class Watch(Request):
    """A console's receive-only view of a call; ``watch`` names it from now on."""

    KIND: ClassVar[str] = "watch"
    watch: int
    call: str


@dataclass(frozen=True, slots=True)
class WatchAnswer(Request):
    KIND: ClassVar[str] = "watch_answer"
    watch: int
    sdp: str


@dataclass(frozen=True, slots=True)
class WatchClose(Message):
    KIND: ClassVar[str] = "watch_close"
    watch: int


@dataclass(frozen=True, slots=True)
class Stop(Message):
    KIND: ClassVar[str] = "stop"


# ---- worker -> front -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready(Message):
    KIND: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True, slots=True)
class Reply(Message):
    KIND: ClassVar[str] = "reply"
    id: int
    ok: bool
    result: dict[str, Any]
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SendToDevice(Message):
    """A signalling frame for the device on connection ``conn``."""

    KIND: ClassVar[str] = "send"
    conn: int
    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CloseDevice(Message):
    KIND: ClassVar[str] = "close"
    conn: int


@dataclass(frozen=True, slots=True)
class HubRecord(Message):
    """A record a call published on the worker's hub (an alert with its evidence JPEG, base64)."""

    KIND: ClassVar[str] = "hub"
    call: str
    record: dict[str, Any]
    evidence: str | None


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """One call as its worker sees it: its ``stats()`` and its cameras' analysis there."""

    call: CallStats
    streams: dict[str, StreamStats]  # by source key, one per tap


@dataclass(frozen=True, slots=True)
class Snapshot(Message):
    """The worker's calls, once a second, and how the worker is doing (loop lag p99)."""

    KIND: ClassVar[str] = "snapshot"
    calls: tuple[CallSnapshot, ...]
    lag_ms: float
    analysis_restarts: int


@dataclass(frozen=True, slots=True)
class CallEnded(Message):
    KIND: ClassVar[str] = "ended"
    call: str


#: kind -> its message class
KINDS: dict[str, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        AddCall,
        CloseCall,
        Join,
        Offer,
        CaptureAttempt,
        Leave,
        Staff,
        Fault,
        StaffIdentity,
        Watch,
        WatchAnswer,
        WatchClose,
        Stop,
        Ready,
        Reply,
        SendToDevice,
        CloseDevice,
        HubRecord,
        Snapshot,
        CallEnded,
    )
}


# ---- checking ------------------------------------------------------------------------------------


_SCHEMAS: dict[type, dict[str, Any]] = {}


def _schema(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their types (annotations resolved), in order."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        hints = typing.get_type_hints(cls)
        schema = _SCHEMAS[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return schema


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _read(hint: Any, value: Any, where: str) -> Any:
    """``value`` (from JSON, or a message about to be sent) checked against ``hint``, as typed:
    nested dataclasses are built from their objects, tuples from arrays."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # the wire's unions are X | None
        return _read(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise WireError(f"{where}: expected one of {args}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return _read_object(typing.cast(type, hint), value, where)
    if origin is tuple:  # tuple[X, ...]: a JSON array
        if not isinstance(value, list | tuple):
            raise WireError(f"{where}: expected list, got {type(value).__name__}")
        return tuple(_read(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin in (list, dict):
        if not isinstance(value, origin):
            raise WireError(f"{where}: expected {origin.__name__}, got {type(value).__name__}")
        if origin is list and args[0] is not Any:
            return [_read(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
        if origin is dict and args[1] is not Any:
            for key in value:
                if not isinstance(key, str):
                    raise WireError(f"{where}: expected text keys, got {key!r}")
            return {key: _read(args[1], item, f"{where}[{key!r}]") for key, item in value.items()}
        return value
    if isinstance(value, bool) and hint is not bool:  # bool is an int: not for int fields
        raise WireError(f"{where}: expected {_name(hint)}, got bool")
    accepted = (int, float) if hint is float else (hint,)
    if not isinstance(value, accepted):
        raise WireError(f"{where}: expected {_name(hint)}, got {type(value).__name__}")
    return float(value) if hint is float else value


def _read_object(cls: type, value: Any, where: str) -> Any:
    """A dataclass from its JSON object (decoding) or as itself (encoding), every field checked."""
    schema = _schema(cls)
    if isinstance(value, cls):
        fields = {name: getattr(value, name) for name in schema}
    elif isinstance(value, dict):
        fields = value
        extra = set(fields) - set(schema)
        if extra:
            raise WireError(f"{where}: unexpected fields {sorted(extra)}")
        for name in schema:
            if name not in fields:
                raise WireError(f"{where}: missing field {name!r}")
    else:
        raise WireError(f"{where}: expected an object, got {type(value).__name__}")
    return cls(**{name: _read(hint, fields[name], f"{where}.{name}") for name, hint in schema.items()})


def _plain(value: Any) -> Any:
    """What ``json`` cannot write itself: a nested dataclass, as its fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _schema(type(value))}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(message: Message) -> bytes:
    kind = getattr(message, "KIND", "")
    if KINDS.get(kind) is not type(message):
        raise WireError(f"{type(message).__name__} is not a message kind")
    _read_object(type(message), message, kind)
    fields = {name: getattr(message, name) for name in _schema(type(message))}
    line = json.dumps({"kind": kind, **fields}, separators=(",", ":"), default=_plain).encode() + b"\n"
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
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise WireError(f"unknown message kind {kind!r}")
    message: Message = _read_object(cls, data, kind)
    return message


def blob(value: Any) -> str:
    return base64.b64encode(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def unblob(text: str) -> Any:
    return pickle.loads(base64.b64decode(text))


def reply(
    request_id: int, result: dict[str, Any] | None = None, *, code: str = "", message: str = ""
) -> Reply:
    """The reply to request ``request_id``: ``ok`` unless ``code`` is given."""
    return Reply(request_id, not code, result or {}, code, message)


class Channel:
    """One side of the pipe: ``send`` writes a message (waiting only while the pipe is full),
    ``recv`` returns the next message, or None at end of file."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._lock = asyncio.Lock()

    async def send(self, message: Message) -> None:
        line = encode(message)
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
    "AddCall",
    "CallEnded",
    "CallSnapshot",
    "CaptureAttempt",
    "Channel",
    "CloseCall",
    "CloseDevice",
    "Fault",
    "Hello",
    "HubRecord",
    "Join",
    "Leave",
    "Message",
    "Offer",
    "Ready",
    "Reply",
    "Request",
    "SendToDevice",
    "Snapshot",
    "Staff",
    "StaffAction",
    "StaffIdentity",
    "Stop",
    "Watch",
    "WatchAnswer",
    "WatchClose",
    "WireError",
    "blob",
    "decode",
    "encode",
    "reply",
    "unblob",
]
