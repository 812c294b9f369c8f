"""Booking model: an already-parsed booking document -> a validated, frozen :class:`Booking`.

Pure: it takes the decoded JSON value and the directory the booking came from, and never touches
the file system (``monitor/bookings.py`` reads the file and checks the photos exist). Every
:class:`BookingError` message starts with the path of the offending field, e.g.
``participants[2].date_of_birth: main caller must be 18 or older on 2026-12-01, is 17``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from policies.config import PolicyConfig
from policies.family import age_on
from policies.text import id_problem, text_problem

T = TypeVar("T")


class BookingError(ValueError):
    """A booking document breaks a rule; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class Prisoner:
    id: str
    name: str
    reference_photos: tuple[Path, ...] = ()  # optional: the prison side is not always analysed


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    name: str
    date_of_birth: date
    main_caller: bool
    reference_photos: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Booking:
    call_id: str
    prison: str
    prisoner: Prisoner
    starts_at: datetime
    ends_at: datetime
    participants: tuple[Visitor, ...]

    @property
    def duration_s(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds()

    @property
    def main_caller(self) -> Visitor:
        return next(v for v in self.participants if v.main_caller)

    @property
    def visitor_ids(self) -> tuple[str, ...]:
        return tuple(v.id for v in self.participants)

    def reference_photo_fields(self) -> tuple[tuple[str, Path], ...]:
        """Every reference photo and the field naming it, e.g. ``participants[1].reference_photos[0]``."""
        fields = [
            (f"prisoner.reference_photos[{i}]", p) for i, p in enumerate(self.prisoner.reference_photos)
        ]
        for n, visitor in enumerate(self.participants):
            fields += [
                (f"participants[{n}].reference_photos[{i}]", p)
                for i, p in enumerate(visitor.reference_photos)
            ]
        return tuple(fields)


_TOP = ("call_id", "prison", "prisoner", "starts_at", "ends_at", "participants")
_PRISONER = ("id", "name", "reference_photos")
_VISITOR = ("id", "name", "date_of_birth", "main_caller", "reference_photos")
_OPTIONAL = {"prisoner": {"reference_photos"}, "visitor": {"main_caller"}}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _object(value: object, where: str, known: tuple[str, ...], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BookingError(f"{where}: must be an object, got {_type_name(value)}")
    for key in value:
        if key not in known:
            raise BookingError(f"{_join(where, str(key))}: unknown field (known: {', '.join(known)})")
    for key in known:
        if key not in value and key not in optional:
            raise BookingError(f"{_join(where, key)}: missing required field")
    return value


def _join(where: str, key: str) -> str:
    return key if where == "booking" else f"{where}.{key}"


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise BookingError(f"{where}: must be text, got {_type_name(value)}")
    if not value.strip():
        raise BookingError(f"{where}: must not be empty")
    problem = text_problem(value)
    if problem is not None:
        raise BookingError(f"{where}: {problem}")
    return value


def _id(value: object, where: str) -> str:
    """An id (it becomes file names and URL segments): the one rule of ``policies.text``."""
    text = _text(value, where)
    problem = id_problem(text)
    if problem is not None:
        raise BookingError(f"{where}: {problem}")
    return text


def _parse(value: object, where: str, parse: Callable[[str], T], rule: str) -> T:
    text = _text(value, where)
    try:
        return parse(text)
    except ValueError:
        raise BookingError(f"{where}: must be {rule}, got {text!r}") from None


def _time(value: object, where: str) -> datetime:
    rule = "an ISO 8601 time with a timezone, e.g. 2026-12-01T14:00:00+00:00"
    moment = _parse(value, where, datetime.fromisoformat, rule)
    if moment.utcoffset() is None:
        raise BookingError(f"{where}: must be {rule}, got {value!r} (no timezone)")
    return moment


def _photos(value: object, where: str, base_dir: Path, required: bool) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise BookingError(f"{where}: must be a list of file names, got {_type_name(value)}")
    if required and not value:
        raise BookingError(f"{where}: at least one reference photo is required")
    return tuple(base_dir / _text(item, f"{where}[{i}]") for i, item in enumerate(value))


def _visitor(value: object, where: str, base_dir: Path, call_day: date, config: PolicyConfig) -> Visitor:
    doc = _object(value, where, _VISITOR, _OPTIONAL["visitor"])
    born = _parse(doc["date_of_birth"], f"{where}.date_of_birth", date.fromisoformat, "a date YYYY-MM-DD")
    if born > call_day:
        raise BookingError(f"{where}.date_of_birth: {born} is after the call date {call_day}")
    main = doc.get("main_caller", False)
    if not isinstance(main, bool):
        raise BookingError(f"{where}.main_caller: must be true or false, got {_type_name(main)}")
    age = age_on(born, call_day)
    if main and age < config.main_caller_min_age:
        raise BookingError(
            f"{where}.date_of_birth: main caller must be {config.main_caller_min_age} or older "
            f"on {call_day}, is {age}"
        )
    return Visitor(
        id=_id(doc["id"], f"{where}.id"),
        name=_text(doc["name"], f"{where}.name"),
        date_of_birth=born,
        main_caller=main,
        reference_photos=_photos(doc["reference_photos"], f"{where}.reference_photos", base_dir, True),
    )


def parse_booking(data: object, base_dir: Path, config: PolicyConfig) -> Booking:
    """Validate a decoded booking document. Photo paths are resolved against ``base_dir``."""
    doc = _object(data, "booking", _TOP, set())
    call_id = _id(doc["call_id"], "call_id")
    prison = _text(doc["prison"], "prison")
    pdoc = _object(doc["prisoner"], "prisoner", _PRISONER, _OPTIONAL["prisoner"])
    prisoner = Prisoner(
        id=_id(pdoc["id"], "prisoner.id"),
        name=_text(pdoc["name"], "prisoner.name"),
        reference_photos=_photos(
            pdoc.get("reference_photos", []), "prisoner.reference_photos", base_dir, False
        ),
    )
    starts_at = _time(doc["starts_at"], "starts_at")
    ends_at = _time(doc["ends_at"], "ends_at")
    if ends_at <= starts_at:
        raise BookingError(f"ends_at: must be after starts_at ({starts_at.isoformat()})")
    minutes = (ends_at - starts_at).total_seconds() / 60
    if minutes not in config.allowed_slot_minutes:
        allowed = ", ".join(str(m) for m in config.allowed_slot_minutes)
        raise BookingError(f"ends_at: a {minutes:g}-minute slot is not allowed (allowed minutes: {allowed})")

    raw = doc["participants"]
    if not isinstance(raw, list):
        raise BookingError(f"participants: must be a list of visitors, got {_type_name(raw)}")
    if not 1 <= len(raw) <= config.max_visitors:
        raise BookingError(
            f"participants: 1 to {config.max_visitors} visitors must be booked, got {len(raw)}"
        )
    call_day = starts_at.date()
    visitors = tuple(
        _visitor(item, f"participants[{n}]", base_dir, call_day, config) for n, item in enumerate(raw)
    )

    seen = {prisoner.id: "prisoner.id"}
    for n, visitor in enumerate(visitors):
        where = f"participants[{n}].id"
        if visitor.id in seen:
            raise BookingError(f"{where}: id {visitor.id!r} is already used by {seen[visitor.id]}")
        seen[visitor.id] = where
    mains = [n for n, v in enumerate(visitors) if v.main_caller]
    if not mains:
        raise BookingError(
            "participants: exactly one visitor must be the main caller (set main_caller: true)"
        )
    if len(mains) > 1:
        raise BookingError(
            f"participants[{mains[1]}].main_caller: only one main caller is allowed, "
            f"participants[{mains[0]}] is already the main caller"
        )
    return Booking(call_id, prison, prisoner, starts_at, ends_at, visitors)


__all__ = ["Booking", "BookingError", "Prisoner", "Visitor", "parse_booking"]
