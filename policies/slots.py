"""Call slots: a prison's weekly timetable -> the slots a family may book in the next days.

Pure: the caller passes the prison's time zone (a ``tzinfo``), the moment it is now and the
bookings; nothing here reads a clock or a file.

A timetable is a JSON object of weekdays to local start times, e.g. ``{"mon": ["09:00", "09:30"],
"wed": ["14:00"]}``: each start is a call of ``SLOT_MINUTES``. A slot is *free* when it starts
after now and before now + the booking window, fewer than ``concurrent`` of the prison's bookings
overlap it, and nothing in ``blocked`` (the prisoner's own calls) overlaps it. A local time that
does not exist on a day (the hour skipped when clocks go forward) has no slot that day; a local
time that happens twice (clocks go back) has one, the first.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLOT_MINUTES = 30
MAX_SLOTS_PER_DAY = 48
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")

#: A booked call: (starts_at, ends_at), aware datetimes.
Interval = tuple[datetime, datetime]


class TimetableError(ValueError):
    """A timetable breaks a rule; the message says which day and what is wrong, in plain words."""


@dataclass(frozen=True, slots=True)
class Timetable:
    """Local start times of calls per weekday (Monday first), each sorted."""

    starts: tuple[tuple[time, ...], ...]

    def to_json(self) -> dict[str, list[str]]:
        days = zip(DAYS, self.starts, strict=True)
        return {day: [t.strftime("%H:%M") for t in times] for day, times in days if times}


@dataclass(frozen=True, slots=True)
class Slot:
    starts_at: datetime  # in the prison's time zone
    ends_at: datetime
    places: int  # calls the prison can still run at that time (> 0 for a free slot)


def _start(value: object, day: str) -> time:
    if not isinstance(value, str) or not _HH_MM.fullmatch(value):
        raise TimetableError(f"{day}: {value!r} is not a time; write times as HH:MM, e.g. 09:30")
    return time(int(value[:2]), int(value[3:]))


def parse_timetable(doc: object) -> Timetable:
    """A validated timetable from its JSON value, or a TimetableError."""
    if not isinstance(doc, dict):
        raise TimetableError('the timetable must list start times per day, e.g. {"mon": ["09:00"]}')
    for key in doc:
        if key not in DAYS:
            raise TimetableError(f"{key!r} is not a day; use {', '.join(DAYS)}")
    per_day: list[tuple[time, ...]] = []
    for day in DAYS:
        values = doc.get(day, [])
        if not isinstance(values, list):
            raise TimetableError(f'{day}: give a list of start times, e.g. ["09:00", "09:30"]')
        if len(values) > MAX_SLOTS_PER_DAY:
            raise TimetableError(f"{day}: at most {MAX_SLOTS_PER_DAY} calls a day")
        times = sorted(_start(v, day) for v in values)
        last_start = time(23, 60 - SLOT_MINUTES)
        for earlier, later in itertools.pairwise(times):
            gap = (later.hour - earlier.hour) * 60 + later.minute - earlier.minute
            if gap < SLOT_MINUTES:
                raise TimetableError(
                    f"{day}: calls at {earlier:%H:%M} and {later:%H:%M} overlap "
                    f"(each call is {SLOT_MINUTES} minutes)"
                )
        if times and times[-1] > last_start:
            raise TimetableError(
                f"{day}: a call at {times[-1]:%H:%M} would end after midnight (last start {last_start:%H:%M})"
            )
        per_day.append(tuple(times))
    return Timetable(tuple(per_day))


def _exists(moment: datetime) -> bool:
    """False for a wall-clock time skipped when the clocks go forward."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


def timetable_slots(
    timetable: Timetable, tz: tzinfo, after: datetime, before: datetime, minutes: int = SLOT_MINUTES
) -> list[tuple[datetime, datetime]]:
    """Every timetable call starting in (after, before), in ``tz``, by start time."""
    after, before = after.astimezone(UTC), before.astimezone(UTC)
    found = []
    day: date = after.astimezone(tz).date()
    last: date = before.astimezone(tz).date()
    while day <= last:
        for start in timetable.starts[day.weekday()]:
            local = datetime.combine(day, start, tzinfo=tz)
            if _exists(local) and after < local.astimezone(UTC) < before:
                ends = (local.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(tz)
                found.append((local, ends))
        day += timedelta(days=1)
    return found


def _overlaps(start: datetime, end: datetime, other: Interval) -> bool:
    # in UTC: aware datetimes that share a tzinfo compare by wall time, wrong in the repeated hour
    return other[0].astimezone(UTC) < end.astimezone(UTC) and other[1].astimezone(UTC) > start.astimezone(UTC)


def free_slots(
    timetable: Timetable,
    tz: tzinfo,
    now: datetime,
    days: int,
    booked: Sequence[Interval],
    concurrent: int,
    blocked: Sequence[Interval] = (),
    minutes: int = SLOT_MINUTES,
) -> list[Slot]:
    """The free slots of the next ``days`` days: ``booked`` are the prison's calls (any prisoner),
    ``concurrent`` how many it can run at once, ``blocked`` the prisoner's own calls."""
    free = []
    for start, end in timetable_slots(timetable, tz, now, now + timedelta(days=days), minutes):
        if any(_overlaps(start, end, b) for b in blocked):
            continue
        places = concurrent - sum(1 for b in booked if _overlaps(start, end, b))
        if places > 0:
            free.append(Slot(start, end, places))
    return free


__all__ = [
    "DAYS",
    "SLOT_MINUTES",
    "Interval",
    "Slot",
    "Timetable",
    "TimetableError",
    "free_slots",
    "parse_timetable",
    "timetable_slots",
]
