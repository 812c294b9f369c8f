"""Free call slots from a prison's timetable: the booking window, concurrency, the prisoner's own
calls, and the days the clocks change."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from policies.slots import (
    SLOT_MINUTES,
    Slot,
    Timetable,
    TimetableError,
    free_slots,
    parse_timetable,
    timetable_slots,
)

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = {day: ["09:00", "09:30", "14:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def test_a_timetable_parses_sorted_and_writes_back() -> None:
    table = parse_timetable({"wed": ["14:00", "09:00"], "sat": []})
    assert table.starts[2] == (time(9, 0), time(14, 0))
    assert table.to_json() == {"wed": ["09:00", "14:00"]}
    assert parse_timetable(table.to_json()) == table
    assert parse_timetable({}) == Timetable(((),) * 7)


BAD = [
    ([], "the timetable must list start times per day"),
    ({"monday": []}, "'monday' is not a day; use mon, tue, wed, thu, fri, sat, sun"),
    ({"mon": "09:00"}, "mon: give a list of start times"),
    ({"mon": ["9:00"]}, "mon: '9:00' is not a time; write times as HH:MM, e.g. 09:30"),
    ({"tue": ["24:00"]}, "tue: '24:00' is not a time"),
    ({"tue": ["+1:00"]}, "tue: '+1:00' is not a time"),
    ({"tue": [900]}, "tue: 900 is not a time"),
    ({"wed": ["09:00", "09:15"]}, "wed: calls at 09:00 and 09:15 overlap (each call is 30 minutes)"),
    ({"thu": ["23:45"]}, "thu: a call at 23:45 would end after midnight (last start 23:30)"),
    ({"fri": [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)] + ["00:00"]}, "fri: at most 48 calls"),
]  # fmt: skip


@pytest.mark.parametrize(("doc", "message"), BAD, ids=[b[1][:30] for b in BAD])
def test_a_bad_timetable_is_refused_in_plain_words(doc: object, message: str) -> None:
    with pytest.raises(TimetableError) as caught:
        parse_timetable(doc)
    assert str(caught.value).startswith(message)


def test_the_slots_of_the_next_seven_days_start_after_now() -> None:
    table = parse_timetable(WEEKDAYS)
    now = at("2026-11-02T09:10")  # a Monday, after the 09:00 call started
    slots = free_slots(table, LONDON, now, 7, booked=[], concurrent=2)
    starts = [s.starts_at for s in slots]
    assert starts[0] == at("2026-11-02T09:30") and starts[-1] == at("2026-11-09T09:00")
    assert len(starts) == 2 + 4 * 3 + 1  # Monday's two left, Tue-Fri, next Monday 09:00 (before 09:10)
    assert all(s.ends_at - s.starts_at == timedelta(minutes=SLOT_MINUTES) for s in slots)
    assert all(s.places == 2 for s in slots)
    assert free_slots(table, LONDON, now, 1, booked=[], concurrent=2)[-1].starts_at == at("2026-11-03T09:00")


def test_a_slot_is_full_when_the_prison_runs_as_many_calls_as_it_can() -> None:
    table = parse_timetable({"tue": ["09:00", "09:30"]})
    now = at("2026-11-02T12:00")
    nine = (at("2026-11-03T09:00"), at("2026-11-03T09:30"))
    # a 60-minute call booked at 09:00 overlaps both slots; an adjacent one overlaps neither
    long_call = (at("2026-11-03T09:00"), at("2026-11-03T10:00"))
    before = (at("2026-11-03T08:30"), at("2026-11-03T09:00"))
    one = free_slots(table, LONDON, now, 7, booked=[nine, before], concurrent=2)
    assert one == [
        Slot(at("2026-11-03T09:00"), at("2026-11-03T09:30"), 1),
        Slot(at("2026-11-03T09:30"), at("2026-11-03T10:00"), 2),
    ]
    full = free_slots(table, LONDON, now, 7, booked=[nine, long_call], concurrent=2)
    assert [s.starts_at for s in full] == [at("2026-11-03T09:30")]
    assert full[0].places == 1


def test_the_prisoners_own_calls_block_a_slot_whatever_the_places() -> None:
    table = parse_timetable({"tue": ["09:00", "09:30"]})
    own = (at("2026-11-03T09:00"), at("2026-11-03T09:30"))
    slots = free_slots(table, LONDON, at("2026-11-02T12:00"), 7, booked=[own], concurrent=5, blocked=[own])
    assert [s.starts_at for s in slots] == [at("2026-11-03T09:30")]


def test_a_skipped_hour_has_no_slot_and_a_repeated_hour_one() -> None:
    table = parse_timetable({"sun": ["00:30", "01:30", "02:00"]})
    # 2027-03-28: the clocks go from 01:00 to 02:00 GMT -> BST; 01:30 does not exist that day
    spring = timetable_slots(table, LONDON, at("2027-03-27T12:00"), at("2027-03-29T00:00"))
    assert [s.strftime("%H:%M %Z") for s, _ in spring] == ["00:30 GMT", "02:00 BST"]
    # 2027-10-31: 01:00-02:00 BST happens, then 01:00-02:00 GMT; the 01:30 slot is the first one
    autumn = timetable_slots(table, LONDON, at("2027-10-30T12:00"), at("2027-11-01T00:00"))
    assert [s.strftime("%H:%M %Z") for s, _ in autumn] == ["00:30 BST", "01:30 BST", "02:00 GMT"]
    start, end = autumn[1]
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=30)
    # a call booked 00:40-01:10 UTC (01:40 BST to 01:10 GMT) overlaps the 01:30 BST slot, although
    # its wall-clock end is before the slot's wall-clock start
    booked = (
        datetime(2027, 10, 31, 0, 40, tzinfo=UTC).astimezone(LONDON),
        datetime(2027, 10, 31, 1, 10, tzinfo=UTC).astimezone(LONDON),
    )
    slots = free_slots(table, LONDON, at("2027-10-30T12:00"), 2, booked=[booked], concurrent=1)
    assert [s.starts_at.strftime("%H:%M %Z") for s in slots] == ["00:30 BST", "02:00 GMT"]


def test_now_in_another_time_zone_is_the_same_moment() -> None:
    table = parse_timetable({"mon": ["09:00"]})
    now_utc = datetime(2026, 11, 2, 8, 59, tzinfo=UTC)  # 08:59 in London (GMT)
    slots = free_slots(table, LONDON, now_utc, 1, booked=[], concurrent=1)
    assert [s.starts_at for s in slots] == [at("2026-11-02T09:00")]
