"""Every message of the family WebSocket (/family/ws), parsed and validated in one place.

Client -> server: JSON objects (text frames, at most ``MAX_BYTES``), each with a ``type`` and an
optional ``ref`` (any text up to 64 characters, echoed in the answer). Dates are ``YYYY-MM-DD``,
times ISO 8601; ids are the ones the server gave (``per-...``, ``con-...``, ``call-...``, ``req-...``).
Only ``register`` may be sent without a session; everything else needs the ``family_session``
cookie at the handshake.

- ``register``: ``email``, ``password``, ``name``, ``date_of_birth``, ``address`` (the holder's own);
- ``status``: everything the pages show (account, what is missing, people, contacts, calls, requests);
- ``add_person``: ``name``, ``date_of_birth``, ``address``;
- ``id_shows_address``: ``value`` (true: no separate proof of address is needed);
- ``upload``: ``kind`` (``id_document``, ``proof_of_address`` or ``face_photo``), ``person``,
  ``bytes`` (the size), ``content_type`` (shown back, never trusted); after its ``ok`` the file goes
  as one binary frame of exactly that size;
- ``add_contact``: ``name``, ``prison_number``, ``date_of_birth`` of the person in prison;
- ``slots``: ``contact``: the free times of the next days;
- ``book``: ``contact``, ``starts_at`` (a time as listed), ``people`` (ids), ``main`` (an id);
- ``request_call``: ``contact``, ``people``, ``main``, ``preferred`` (1-3 local times
  ``YYYY-MM-DDTHH:MM`` at the prison), ``note`` (optional);
- ``withdraw_request``: ``request``; ``cancel``: ``call_id``; ``join_link``: ``call_id``, ``person``.

Server -> client: exactly one answer per message, ``{"type": "ok", ...}`` or ``{"type": "error",
"code": ..., "message": ...}`` (plain words naming what is wrong; nothing changed). An ``upload``
is answered ``ok`` with ``"ready": true`` (send the bytes now) and the binary frame then gets the
answer about the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from monitor.mail.messages import MailError, mail_address
from monitor.store.auth import MIN_PASSWORD
from policies.text import text_problem

MAX_BYTES = 16 * 1024
MAX_NAME = 100
MAX_ADDRESS = 300
MAX_PASSWORD = 200
MAX_NOTE = 500
MAX_PEOPLE = 8
UPLOAD_KINDS = ("id_document", "proof_of_address", "face_photo")
_ID = re.compile(r"^[a-z]+-[0-9a-f]{12}$")
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


class MessageError(ValueError):
    """A message is malformed; ``code`` and the plain-words text go back to the page."""

    def __init__(self, message: str, code: str = "bad_message") -> None:
        super().__init__(message)
        self.code = code
        self.ref: str | None = None  # the message's ref, when it had a valid one


@dataclass(frozen=True, slots=True)
class Register:
    email: str
    password: str
    name: str
    date_of_birth: date
    address: str


@dataclass(frozen=True, slots=True)
class Status:
    pass


@dataclass(frozen=True, slots=True)
class AddPerson:
    name: str
    date_of_birth: date
    address: str


@dataclass(frozen=True, slots=True)
class IdShowsAddress:
    value: bool


@dataclass(frozen=True, slots=True)
class Upload:
    kind: str
    person: str
    size: int
    content_type: str


@dataclass(frozen=True, slots=True)
class AddContact:
    name: str
    prison_number: str
    date_of_birth: date


@dataclass(frozen=True, slots=True)
class Slots:
    contact: str


@dataclass(frozen=True, slots=True)
class Book:
    contact: str
    starts_at: datetime
    people: tuple[str, ...]
    main: str


@dataclass(frozen=True, slots=True)
class RequestCall:
    contact: str
    people: tuple[str, ...]
    main: str
    preferred: tuple[datetime, ...]  # naive: local time at the prison
    note: str


@dataclass(frozen=True, slots=True)
class WithdrawRequest:
    request: str


@dataclass(frozen=True, slots=True)
class Cancel:
    call_id: str


@dataclass(frozen=True, slots=True)
class JoinLink:
    call_id: str
    person: str


Message = (
    Register
    | Status
    | AddPerson
    | IdShowsAddress
    | Upload
    | AddContact
    | Slots
    | Book
    | RequestCall
    | WithdrawRequest
    | Cancel
    | JoinLink
)

_FIELDS: dict[str, tuple[str, ...]] = {
    "register": ("email", "password", "name", "date_of_birth", "address"),
    "status": (),
    "add_person": ("name", "date_of_birth", "address"),
    "id_shows_address": ("value",),
    "upload": ("kind", "person", "bytes", "content_type"),
    "add_contact": ("name", "prison_number", "date_of_birth"),
    "slots": ("contact",),
    "book": ("contact", "starts_at", "people", "main"),
    "request_call": ("contact", "people", "main", "preferred", "note"),
    "withdraw_request": ("request",),
    "cancel": ("call_id",),
    "join_link": ("call_id", "person"),
}
_OPTIONAL = {"note", "content_type"}
#: the only messages a socket without a session may send
PUBLIC = ("register",)
LABELS = {
    "email": "e-mail address",
    "date_of_birth": "date of birth",
    "prison_number": "prison number",
    "starts_at": "time",
    "call_id": "call",
}


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def _text(doc: dict[str, Any], key: str, limit: int, *, empty_ok: bool = False) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise MessageError(f"{_label(key)}: must be text")
    if text_problem(value, lines=True) is not None:  # the house rule for free text (policies/text.py)
        raise MessageError(f"{_label(key)}: contains characters that are not text")
    value = " ".join(value.split())
    if not value and not empty_ok:
        raise MessageError(f"{_label(key)}: please fill this in")
    if len(value) > limit:
        raise MessageError(f"{_label(key)}: at most {limit} characters")
    return value


def _id(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _ID.match(value):
        raise MessageError(f"{_label(key)}: not one of yours (choose from the list)")
    return value


def _date(doc: dict[str, Any], key: str) -> date:
    value = doc.get(key)
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise MessageError(f"{_label(key)}: give a date as YYYY-MM-DD") from None
    if day.year < 1900:
        raise MessageError(f"{_label(key)}: {value} is too long ago")
    return day


def _people(doc: dict[str, Any]) -> tuple[str, ...]:
    value = doc.get("people")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PEOPLE:
        raise MessageError("people: choose who joins the call")
    return tuple(_id({"people": v}, "people") for v in value)


def _preferred(doc: dict[str, Any]) -> tuple[datetime, ...]:
    value = doc.get("preferred")
    if not isinstance(value, list) or not value:
        raise MessageError("preferred: give at least one time that suits you")
    times = []
    for item in value:
        if not isinstance(item, str) or not _LOCAL_TIME.match(item):
            raise MessageError("preferred: give times as a date and a time, e.g. 2030-06-05T10:00")
        try:
            times.append(datetime.fromisoformat(item))
        except ValueError:
            raise MessageError(f"preferred: {item} is not a real date and time") from None
    return tuple(times)


def _starts_at(doc: dict[str, Any]) -> datetime:
    value = doc.get("starts_at")
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MessageError("time: choose a time from the list") from None
    if moment.utcoffset() is None:
        raise MessageError("time: choose a time from the list")
    return moment


def _upload(doc: dict[str, Any]) -> Upload:
    kind = doc.get("kind")
    if kind not in UPLOAD_KINDS:
        raise MessageError("kind: a file is an id_document, a proof_of_address or a face_photo")
    size = doc.get("bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise MessageError("bytes: the file's size in bytes, a whole number")
    content_type = doc.get("content_type", "")
    if not isinstance(content_type, str) or len(content_type) > 100:
        raise MessageError("content type: must be text of at most 100 characters")
    return Upload(str(kind), _id(doc, "person"), size, content_type)


def parse(raw: str | bytes) -> tuple[Message, str | None]:
    """One client message and its ``ref``, or a MessageError."""
    if isinstance(raw, bytes):
        raise MessageError("send a file only after announcing it with an upload message", "unexpected_file")
    if len(raw.encode("utf-8")) > MAX_BYTES:
        raise MessageError(f"message too large (at most {MAX_BYTES} bytes)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise MessageError("not valid JSON") from None
    if not isinstance(doc, dict):
        raise MessageError("a message must be a JSON object")
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MessageError(f"type: must be one of {', '.join(_FIELDS)}")
    ref = doc.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 64):
        raise MessageError("ref: must be text of at most 64 characters")
    try:
        for key in doc:
            if key not in (*_FIELDS[kind], "type", "ref"):
                raise MessageError(f"{key}: unknown field for {kind}")
        for key in _FIELDS[kind]:
            if key not in doc and key not in _OPTIONAL:
                raise MessageError(f"{_label(key)}: missing")
        return _message(kind, doc), ref
    except MessageError as exc:
        exc.ref = ref
        raise


def _message(kind: str, doc: dict[str, Any]) -> Message:
    match kind:
        case "register":
            email = _text(doc, "email", 254).lower()
            try:  # the rule the mail queue applies, so every address taken here can be mailed
                mail_address(email)
            except MailError:
                raise MessageError("e-mail address: this does not look like an e-mail address") from None
            password = doc.get("password")
            if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
                raise MessageError(f"password: use {MIN_PASSWORD} to {MAX_PASSWORD} characters")
            return Register(
                email,
                password,
                _text(doc, "name", MAX_NAME),
                _date(doc, "date_of_birth"),
                _text(doc, "address", MAX_ADDRESS),
            )
        case "status":
            return Status()
        case "add_person":
            return AddPerson(
                _text(doc, "name", MAX_NAME), _date(doc, "date_of_birth"), _text(doc, "address", MAX_ADDRESS)
            )
        case "id_shows_address":
            if not isinstance(doc["value"], bool):
                raise MessageError("value: must be true or false")
            return IdShowsAddress(doc["value"])
        case "upload":
            return _upload(doc)
        case "add_contact":
            return AddContact(
                _text(doc, "name", MAX_NAME), _text(doc, "prison_number", 20), _date(doc, "date_of_birth")
            )
        case "slots":
            return Slots(_id(doc, "contact"))
        case "book":
            return Book(_id(doc, "contact"), _starts_at(doc), _people(doc), _id(doc, "main"))
        case "request_call":
            return RequestCall(
                _id(doc, "contact"),
                _people(doc),
                _id(doc, "main"),
                _preferred(doc),
                _text(doc, "note", MAX_NOTE, empty_ok=True),
            )
        case "withdraw_request":
            return WithdrawRequest(_id(doc, "request"))
        case "cancel":
            return Cancel(_id(doc, "call_id"))
        case _:
            return JoinLink(_id(doc, "call_id"), _id(doc, "person"))


def ok(ref: str | None, **fields: Any) -> str:
    return json.dumps(
        {"type": "ok", **({"ref": ref} if ref is not None else {}), **fields}, ensure_ascii=False
    )


def error(ref: str | None, code: str, message: str) -> str:
    payload = {"type": "error", "code": code, "message": message}
    if ref is not None:
        payload["ref"] = ref
    return json.dumps(payload, ensure_ascii=False)
