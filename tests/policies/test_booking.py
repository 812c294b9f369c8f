"""Booking validation: every rule, and the exact message naming the field."""
# ruff: noqa: E501  (the table of exact messages reads best one case per line)

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from policy_helpers import CONFIG, config

from policies.booking import Booking, BookingError, Prisoner, Visitor, parse_booking
from policies.text import ID_RULE

BASE = Path("/calls/0001")


def example() -> dict[str, Any]:
    return {
        "call_id": "call-0001",
        "prison": "HMP Example",
        "prisoner": {"id": "A1234BC", "name": "John Smith", "reference_photos": ["prisoner.jpg"]},
        "starts_at": "2026-12-01T14:00:00+00:00",
        "ends_at": "2026-12-01T14:30:00+00:00",
        "participants": [
            {
                "id": "v1",
                "name": "Jane Smith",
                "date_of_birth": "1987-07-21",
                "main_caller": True,
                "reference_photos": ["jane_id.jpg", "photos/jane2.png"],
            },
            {"id": "v2", "name": "Tom Smith", "date_of_birth": "2015-01-01", "reference_photos": ["tom.jpg"]},
        ],
    }


def test_the_issue_example_parses() -> None:
    booking = parse_booking(example(), BASE, CONFIG)
    assert booking == Booking(
        call_id="call-0001",
        prison="HMP Example",
        prisoner=Prisoner("A1234BC", "John Smith", (BASE / "prisoner.jpg",)),
        starts_at=datetime(2026, 12, 1, 14, 0, tzinfo=UTC),
        ends_at=datetime(2026, 12, 1, 14, 30, tzinfo=UTC),
        participants=(
            Visitor(
                "v1", "Jane Smith", date(1987, 7, 21), True, (BASE / "jane_id.jpg", BASE / "photos/jane2.png")
            ),
            Visitor("v2", "Tom Smith", date(2015, 1, 1), False, (BASE / "tom.jpg",)),
        ),
    )
    assert booking.duration_s == 1800.0
    assert booking.main_caller.id == "v1"
    assert booking.visitor_ids == ("v1", "v2")
    assert booking.reference_photo_fields() == (
        ("prisoner.reference_photos[0]", BASE / "prisoner.jpg"),
        ("participants[0].reference_photos[0]", BASE / "jane_id.jpg"),
        ("participants[0].reference_photos[1]", BASE / "photos/jane2.png"),
        ("participants[1].reference_photos[0]", BASE / "tom.jpg"),
    )


def test_optional_fields_and_other_timezones() -> None:
    doc = example()
    del doc["prisoner"]["reference_photos"]
    doc["starts_at"] = "2026-12-01T14:00:00Z"
    doc["ends_at"] = "2026-12-01T16:00:00+01:00"  # 60 minutes later
    booking = parse_booking(doc, BASE, CONFIG)
    assert booking.prisoner.reference_photos == ()
    assert booking.duration_s == 3600.0
    assert (
        len(
            parse_booking(
                _with(example(), ["participants"], [example()["participants"][0]]), BASE, CONFIG
            ).participants
        )
        == 1
    )


def _with(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()
V0, V1 = ["participants", 0], ["participants", 1]


def visitor(n: int, **kw: Any) -> dict[str, Any]:
    return {
        "id": f"x{n}",
        "name": f"Visitor {n}",
        "date_of_birth": "1990-01-01",
        "reference_photos": ["a.jpg"],
        **kw,
    }


CASES: list[tuple[str, list[Any], Any, str]] = [
    # (id, path, new value, exact message)
    ("not-object", [], None, "booking: must be an object, got null"),
    ("unknown-top", ["room"], "5", "room: unknown field (known: call_id, prison, prisoner, starts_at, ends_at, participants)"),
    ("missing-call-id", ["call_id"], _DELETE, "call_id: missing required field"),
    ("call-id-type", ["call_id"], 7, "call_id: must be text, got a number"),
    ("call-id-empty", ["call_id"], "  ", "call_id: must not be empty"),
    ("prison-type", ["prison"], ["x"], "prison: must be text, got a list"),
    ("prisoner-type", ["prisoner"], "A1", "prisoner: must be an object, got text"),
    ("prisoner-unknown", ["prisoner", "cell"], "B2", "prisoner.cell: unknown field (known: id, name, reference_photos)"),
    ("prisoner-id", ["prisoner", "id"], _DELETE, "prisoner.id: missing required field"),
    ("prisoner-name", ["prisoner", "name"], {}, "prisoner.name: must be text, got an object"),
    ("prisoner-photos-type", ["prisoner", "reference_photos"], "p.jpg", "prisoner.reference_photos: must be a list of file names, got text"),
    ("prisoner-photo-item", ["prisoner", "reference_photos"], ["ok.jpg", 3], "prisoner.reference_photos[1]: must be text, got a number"),
    ("starts-type", ["starts_at"], 1764597600, "starts_at: must be text, got a number"),
    ("starts-bad", ["starts_at"], "tomorrow", "starts_at: must be an ISO 8601 time with a timezone, e.g. 2026-12-01T14:00:00+00:00, got 'tomorrow'"),
    ("starts-no-tz", ["starts_at"], "2026-12-01T14:00:00", "starts_at: must be an ISO 8601 time with a timezone, e.g. 2026-12-01T14:00:00+00:00, got '2026-12-01T14:00:00' (no timezone)"),
    ("ends-before", ["ends_at"], "2026-12-01T13:30:00+00:00", "ends_at: must be after starts_at (2026-12-01T14:00:00+00:00)"),
    ("ends-equal", ["ends_at"], "2026-12-01T14:00:00+00:00", "ends_at: must be after starts_at (2026-12-01T14:00:00+00:00)"),
    ("slot-45", ["ends_at"], "2026-12-01T14:45:00+00:00", "ends_at: a 45-minute slot is not allowed (allowed minutes: 30, 60)"),
    ("slot-fraction", ["ends_at"], "2026-12-01T14:30:30+00:00", "ends_at: a 30.5-minute slot is not allowed (allowed minutes: 30, 60)"),
    ("participants-type", ["participants"], {"v1": {}}, "participants: must be a list of visitors, got an object"),
    ("participants-empty", ["participants"], [], "participants: 1 to 4 visitors must be booked, got 0"),
    ("participants-5", ["participants"], [visitor(n, main_caller=n == 0) for n in range(5)], "participants: 1 to 4 visitors must be booked, got 5"),
    ("visitor-type", V0, "v1", "participants[0]: must be an object, got text"),
    ("visitor-unknown", [*V1, "age"], 11, "participants[1].age: unknown field (known: id, name, date_of_birth, main_caller, reference_photos)"),
    ("visitor-missing-photos", [*V1, "reference_photos"], _DELETE, "participants[1].reference_photos: missing required field"),
    ("visitor-no-photo", [*V1, "reference_photos"], [], "participants[1].reference_photos: at least one reference photo is required"),
    ("visitor-photo-empty", [*V1, "reference_photos"], [""], "participants[1].reference_photos[0]: must not be empty"),
    ("visitor-dob-bad", [*V1, "date_of_birth"], "01/01/2015", "participants[1].date_of_birth: must be a date YYYY-MM-DD, got '01/01/2015'"),
    ("visitor-dob-future", [*V1, "date_of_birth"], "2027-01-01", "participants[1].date_of_birth: 2027-01-01 is after the call date 2026-12-01"),
    ("visitor-main-type", [*V1, "main_caller"], "yes", "participants[1].main_caller: must be true or false, got text"),
    ("main-caller-17", [*V0, "date_of_birth"], "2009-07-21", "participants[0].date_of_birth: main caller must be 18 or older on 2026-12-01, is 17"),
    ("main-caller-18-tomorrow", [*V0, "date_of_birth"], "2008-12-02", "participants[0].date_of_birth: main caller must be 18 or older on 2026-12-01, is 17"),
    ("no-main-caller", [*V0, "main_caller"], False, "participants: exactly one visitor must be the main caller (set main_caller: true)"),
    ("two-main-callers", V1, visitor(1, main_caller=True), "participants[1].main_caller: only one main caller is allowed, participants[0] is already the main caller"),
    ("duplicate-visitor-id", [*V1, "id"], "v1", "participants[1].id: id 'v1' is already used by participants[0].id"),
    ("visitor-is-prisoner", [*V0, "id"], "A1234BC", "participants[0].id: id 'A1234BC' is already used by prisoner.id"),
    # ids become file names and URL segments: one safe set, whatever the field
    ("call-id-escapes", ["call_id"], "../escaped-call", f"call_id: must be {ID_RULE}, got '../escaped-call'"),
    ("call-id-slash", ["call_id"], "a/b", f"call_id: must be {ID_RULE}, got 'a/b'"),
    ("call-id-dot", ["call_id"], ".", f"call_id: must be {ID_RULE}, got '.'"),
    ("call-id-long", ["call_id"], "c" * 65, f"call_id: must be {ID_RULE}, got '{'c' * 65}'"),
    ("call-id-space", ["call_id"], "call 1", f"call_id: must be {ID_RULE}, got 'call 1'"),
    ("visitor-id-escapes", [*V1, "id"], "../v2", f"participants[1].id: must be {ID_RULE}, got '../v2'"),
    ("visitor-id-flag", [*V1, "id"], "-v2", f"participants[1].id: must be {ID_RULE}, got '-v2'"),
    ("prisoner-id-backslash", ["prisoner", "id"], "..\\A1", f"prisoner.id: must be {ID_RULE}, got '..\\\\A1'"),
    ("prisoner-id-unicode", ["prisoner", "id"], "A1\u00e9", f"prisoner.id: must be {ID_RULE}, got 'A1\u00e9'"),
    # free text: any Unicode but lone surrogates and control characters
    ("name-surrogate", [*V0, "name"], "Jane \ud800", "participants[0].name: contains a lone surrogate (U+D800), which is not text"),
    ("name-newline", ["prisoner", "name"], "John\nSmith", "prisoner.name: contains a control character (U+000A)"),
    ("prison-nul", ["prison"], "HMP\x00", "prison: contains a control character (U+0000)"),
    ("photo-escape", [*V1, "reference_photos"], ["tom\x1b[2J.jpg"], "participants[1].reference_photos[0]: contains a control character (U+001B)"),
    ("id-surrogate", ["call_id"], "\udfff", "call_id: contains a lone surrogate (U+DFFF), which is not text"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_is_enforced_with_a_message_naming_the_field(
    path: list[Any], value: Any, message: str
) -> None:
    doc: Any = value if not path else _with(example(), path, value)
    with pytest.raises(BookingError, match=f"^{re.escape(message)}$"):
        parse_booking(doc, BASE, CONFIG)


def test_main_caller_turning_18_on_the_call_day_is_allowed() -> None:
    doc = _with(example(), [*V0, "date_of_birth"], "2008-12-01")
    assert parse_booking(doc, BASE, CONFIG).main_caller.date_of_birth == date(2008, 12, 1)


def test_a_child_may_be_booked_and_the_call_date_is_the_local_date() -> None:
    doc = _with(example(), [*V1, "date_of_birth"], "2026-12-01")  # born on the day of the call
    assert parse_booking(doc, BASE, CONFIG).participants[1].date_of_birth == date(2026, 12, 1)
    # 00:30 on 2 December in UTC+02:00 is still 1 December in UTC: the booking's own date counts
    late = _with(example(), ["starts_at"], "2026-12-02T00:30:00+02:00")
    late = _with(late, ["ends_at"], "2026-12-02T01:00:00+02:00")
    late = _with(late, [*V0, "date_of_birth"], "2008-12-02")
    assert parse_booking(late, BASE, CONFIG).starts_at.date() == date(2026, 12, 2)


def test_leap_day_birthday() -> None:
    doc = _with(example(), [*V0, "date_of_birth"], "2008-02-29")
    doc = _with(doc, ["starts_at"], "2026-02-28T14:00:00+00:00")
    doc = _with(doc, ["ends_at"], "2026-02-28T14:30:00+00:00")
    with pytest.raises(BookingError, match=r"is 17$"):
        parse_booking(doc, BASE, CONFIG)
    doc = _with(doc, ["starts_at"], "2026-03-01T14:00:00+00:00")
    doc = _with(doc, ["ends_at"], "2026-03-01T14:30:00+00:00")
    assert parse_booking(doc, BASE, CONFIG).main_caller.id == "v1"


def test_limits_come_from_the_policy() -> None:
    strict = config(max_visitors=1, main_caller_min_age=21, allowed_slot_minutes=(45,))
    doc = _with(example(), ["ends_at"], "2026-12-01T14:45:00+00:00")
    with pytest.raises(BookingError, match=r"^participants: 1 to 1 visitors must be booked, got 2$"):
        parse_booking(doc, BASE, strict)
    doc = _with(
        doc, ["participants"], [_with(example(), [*V0, "date_of_birth"], "2006-01-01")["participants"][0]]
    )
    with pytest.raises(BookingError, match=r"must be 21 or older on 2026-12-01, is 20$"):
        parse_booking(doc, BASE, strict)
    start = datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert parse_booking(
        _with(doc, [*V0, "date_of_birth"], "1990-01-01"), BASE, strict
    ).ends_at == start + timedelta(minutes=45)


def test_booking_error_is_a_value_error() -> None:
    assert issubclass(BookingError, ValueError)


def test_ids_of_the_safe_set_are_kept_as_given() -> None:
    doc = _with(example(), ["call_id"], "Call_2026-12-01.a")
    doc = _with(doc, [*V0, "id"], "v" * 64)
    booking = parse_booking(_with(doc, ["prisoner", "id"], "0A1234BC"), BASE, CONFIG)
    assert (booking.call_id, booking.main_caller.id, booking.prisoner.id) == (
        "Call_2026-12-01.a",
        "v" * 64,
        "0A1234BC",
    )
    # names keep any other Unicode (accents, other scripts, emoji)
    named = parse_booking(_with(example(), [*V0, "name"], "Zoë Ōtsuka 王芳 🙂"), BASE, CONFIG)
    assert named.main_caller.name == "Zoë Ōtsuka 王芳 🙂"
