"""Prisons' call settings: time zone, booking mode, timetable, concurrent calls, cancel cut-off.

A prison is named by the same text as ``prisoners.prison``, ``bookings.prison`` and ``staff.prison``;
its settings row is made with :data:`DEFAULTS` the first time anything asks for it, so a prison that
existed before the families' side keeps working unchanged. Changing settings is a governor's action
(checked by the staff API, ``family_staff.py``); the values are validated here, each refusal one
plain sentence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.store.database import Store, StoreError
from monitor.store.sql import Row
from policies.slots import Timetable, TimetableError, parse_timetable

MODES = ("self_select", "staff_booked")
MAX_CONCURRENT = 50


@dataclass(frozen=True, slots=True)
class Prison:
    name: str
    time_zone: str
    mode: str  # self_select: families pick a free slot; staff_booked: families ask, staff book
    concurrent_calls: int
    timetable: Timetable
    cancel_cutoff_hours: float

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.time_zone)

    def public(self) -> dict[str, object]:
        return {
            "name": self.name,
            "time_zone": self.time_zone,
            "mode": self.mode,
            "concurrent_calls": self.concurrent_calls,
            "timetable": self.timetable.to_json(),
            "cancel_cutoff_hours": self.cancel_cutoff_hours,
        }


_WEEKDAY = ["09:00", "09:30", "10:00", "10:30", "11:00", "14:00", "14:30", "15:00", "15:30", "16:00"]
#: A prison's settings until staff change them.
DEFAULTS = Prison(
    name="",
    time_zone="Europe/London",
    mode="self_select",
    concurrent_calls=2,
    timetable=parse_timetable({day: _WEEKDAY for day in ("mon", "tue", "wed", "thu", "fri")}),
    cancel_cutoff_hours=2.0,
)


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StoreError(f"time zone {name!r}: not a known time zone (e.g. Europe/London)") from None
    return name


def _row(row: Row) -> Prison:
    return Prison(
        row["name"],
        row["time_zone"],
        row["mode"],
        row["concurrent_calls"],
        parse_timetable(json.loads(row["timetable"])),
        row["cancel_cutoff_hours"],
    )


def prison(store: Store, name: str) -> Prison:
    """The prison's settings, made with the defaults if it has none yet."""
    if not name.strip():
        raise StoreError("a prison needs a name")
    row = store.db.execute("SELECT * FROM prisons WHERE name = ?", (name,)).fetchone()
    if row is not None:
        return _row(row)
    with store.transaction() as db:
        db.execute(
            "INSERT INTO prisons (name, time_zone, mode, concurrent_calls, timetable,"
            " cancel_cutoff_hours, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                name,
                DEFAULTS.time_zone,
                DEFAULTS.mode,
                DEFAULTS.concurrent_calls,
                json.dumps(DEFAULTS.timetable.to_json()),
                DEFAULTS.cancel_cutoff_hours,
                store.clock(),
            ),
        )
    return _row(store.db.execute("SELECT * FROM prisons WHERE name = ?", (name,)).fetchone())


def settings_from(
    current: Prison,
    *,
    time_zone: object = None,
    mode: object = None,
    concurrent_calls: object = None,
    timetable: object = None,
    cancel_cutoff_hours: object = None,
) -> Prison:
    """``current`` with the given settings changed, each validated (StoreError in plain words)."""
    tz = current.time_zone if time_zone is None else check_time_zone(str(time_zone))
    new_mode = current.mode if mode is None else str(mode)
    if new_mode not in MODES:
        raise StoreError(f"mode {new_mode!r}: must be self_select or staff_booked")
    concurrent = current.concurrent_calls if concurrent_calls is None else concurrent_calls
    if (
        not isinstance(concurrent, int)
        or isinstance(concurrent, bool)
        or not 1 <= concurrent <= MAX_CONCURRENT
    ):
        raise StoreError(f"concurrent calls: must be a whole number from 1 to {MAX_CONCURRENT}")
    try:
        table = current.timetable if timetable is None else parse_timetable(timetable)
    except TimetableError as exc:
        raise StoreError(f"timetable: {exc}") from None
    cutoff = current.cancel_cutoff_hours if cancel_cutoff_hours is None else cancel_cutoff_hours
    # at least an hour: a cancelled call is removed before the server loads it (15 min before)
    if (
        not isinstance(cutoff, int | float)
        or isinstance(cutoff, bool)
        or not math.isfinite(cutoff)
        or not 1 <= cutoff <= 14 * 24
    ):
        raise StoreError("cancel cut-off: must be a number of hours from 1 to 336")
    return Prison(current.name, tz, new_mode, concurrent, table, float(cutoff))


def save_prison(store: Store, settings: Prison) -> None:
    """Write a prison's settings (validated by :func:`settings_from`)."""
    prison(store, settings.name)  # the row exists
    with store.transaction() as db:
        db.execute(
            "UPDATE prisons SET time_zone = ?, mode = ?, concurrent_calls = ?, timetable = ?,"
            " cancel_cutoff_hours = ?, updated_at = ? WHERE name = ?",
            (
                settings.time_zone,
                settings.mode,
                settings.concurrent_calls,
                json.dumps(settings.timetable.to_json()),
                settings.cancel_cutoff_hours,
                store.clock(),
                settings.name,
            ),
        )
