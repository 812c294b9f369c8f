"""Every signalling message on the wire, parsed and validated in one place.

Theory of operation: a device speaks JSON text frames over one WebSocket. The first message must
be ``join`` (with the link's token); then ``offer`` (an SDP offer; the server answers), and client
events (``capture_attempt``, ``leave``, ``ping``). :func:`parse_client` turns one raw frame into a
frozen message object or raises :class:`ProtocolError` carrying a stable ``code`` and a message
that names what is wrong; the server sends that back as an ``error`` frame (:func:`error`) and
carries on, so one bad client never disturbs anything else. Server-to-client frames are built by
the small ``*_frame`` functions below so their shapes live next to the parser.

Every string is held to ``policies.text``'s rule for free text (no lone surrogate: JSON's
``"\ud800"`` decodes to a string UTF-8 cannot encode, which would stop the call's records being
written; no control characters; the SDP may have its line breaks), and a join token to the
characters a link's token has, so nothing a device sends reaches a record it could break.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from policies.text import encodable, text_problem

#: Largest client frame we parse. An SDP offer with 10 m-lines is ~10 KB; the WebSocket layer
#: closes (1009) above ``MAX_FRAME_BYTES``, between the two a clear error frame is sent.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 1024 * 1024
MAX_TOKEN_CHARS = 128
#: A join token is URL-safe base64 (``secrets.token_urlsafe``), as it travels in the link's path.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
MAX_DETAIL_CHARS = 500
#: The server re-checks the join link of every connected device this often (seconds): a device whose
#: link was withdrawn since it joined gets a ``bad_token`` error frame and is disconnected.
LINK_RECHECK_S = 5.0


class ProtocolError(ValueError):
    """A client frame we cannot accept. ``code`` is stable for programs, the text for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Join:
    token: str


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class CaptureAttemptMsg:
    """The device saw a recording/screenshot attempt (best effort in a browser)."""

    detail: str


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientMessage = Join | Offer | CaptureAttemptMsg | Leave | Ping

_FIELDS: dict[str, tuple[str, ...]] = {
    "join": ("token",),
    "offer": ("sdp",),
    "capture_attempt": ("detail",),
    "leave": (),
    "ping": (),
}


def _text(
    body: dict[str, Any], name: str, kind: str, limit: int, required: bool = True, lines: bool = False
) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ProtocolError("bad_message", f"{kind}.{name}: must be a string")
    if required and not value:
        raise ProtocolError("bad_message", f"{kind}.{name}: must not be empty")
    if len(value) > limit:
        raise ProtocolError("bad_message", f"{kind}.{name}: longer than {limit} characters")
    problem = text_problem(value, lines=lines)
    if problem is not None:
        raise ProtocolError("bad_message", f"{kind}.{name}: {problem}")
    return value


def parse_client(raw: str | bytes) -> ClientMessage:
    """One client frame -> message, or :class:`ProtocolError` naming the problem."""
    if isinstance(raw, bytes):
        raise ProtocolError("bad_message", "binary frames are not accepted: send JSON text")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("bad_message", "message must be a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "message has no 'type' string")
    if kind not in _FIELDS:
        known = ", ".join(_FIELDS)
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r} (known: {known})")
    extra = sorted(set(body) - {"type", *_FIELDS[kind]})
    if extra:
        raise ProtocolError("bad_message", f"{kind}: unknown field(s) {', '.join(extra)[:80]}")
    if kind == "join":
        token = _text(body, "token", kind, MAX_TOKEN_CHARS)
        if not _TOKEN.fullmatch(token):
            raise ProtocolError(
                "bad_token", "this join link is not valid (join.token: letters, digits, '-' and '_' only)"
            )
        return Join(token)
    if kind == "offer":
        sdp = _text(body, "sdp", kind, MAX_MESSAGE_BYTES, lines=True)
        if not sdp.startswith("v=0"):
            raise ProtocolError("bad_sdp", "offer.sdp: not an SDP description (must start with 'v=0')")
        return Offer(sdp)
    if kind == "capture_attempt":
        return CaptureAttemptMsg(_text(body, "detail", kind, MAX_DETAIL_CHARS, required=False))
    if kind == "leave":
        return Leave()
    return Ping()


# ---- server -> client -------------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    text = json.dumps(frame, ensure_ascii=False)
    return text if encodable(text) else json.dumps(frame)  # ASCII escapes: always sendable


def error(code: str, message: str, *, opens_at: str | None = None) -> dict[str, Any]:
    """``opens_at``: for ``too_early``, when the link starts to work (ISO 8601)."""
    frame = {"type": "error", "code": code, "message": message}
    return frame if opens_at is None else {**frame, "opens_at": opens_at}


def joined(
    *,
    call_id: str,
    role: str,
    participant: str,
    name: str,
    slots: list[dict[str, str]],
    state: str,
    starts_at: str,
    ends_at: str,
    seconds_left: float,
    ice_servers: list[dict[str, Any]],
) -> dict[str, Any]:
    """Sent after a good join. ``slots``: the remote people this device receives, in the order of
    the video/audio transceiver pairs its offer must contain (first pair also sends the camera)."""
    return {
        "type": "joined",
        "call_id": call_id,
        "role": role,
        "participant": participant,
        "name": name,
        "slots": slots,
        "state": state,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "seconds_left": round(seconds_left, 1),
        "ice_servers": ice_servers,
    }


def answer(sdp: str) -> dict[str, Any]:
    return {"type": "answer", "sdp": sdp}


def state(
    state: str, reasons: list[str], explanation: str, needs: str, seconds_left: float
) -> dict[str, Any]:
    """The call's state for participants: ``explanation`` says why, ``needs`` what the check needs."""
    return {
        "type": "state",
        "state": state,
        "reasons": reasons,
        "explanation": explanation,
        "needs": needs,
        "seconds_left": round(max(0.0, seconds_left), 1),
    }


def warning(reason: str, guidance: str) -> dict[str, Any]:
    return {"type": "warning", "reason": reason, "guidance": guidance}


def warning_cleared(reason: str) -> dict[str, Any]:
    return {"type": "warning_cleared", "reason": reason}


def ended(reasons: list[str], explanation: str) -> dict[str, Any]:
    return {"type": "ended", "reasons": reasons, "explanation": explanation}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def redirect(url: str) -> dict[str, Any]:
    """The call runs on another server of the cluster: connect to ``url`` (its signalling
    WebSocket) and join there with the same token. The connection is closed after this frame."""
    return {"type": "redirect", "url": url}
