"""Booking files: read the JSON, validate it (policies.booking), check the reference photos exist.

Also the `monitor booking check FILE` handler. Every problem is a one-line UserError or BookingError
naming the file and, where it applies, the field. The file and its photos are read within the
limits of ``monitor.inputs`` (size before reading, nesting before parsing, pixels before decoding).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.inputs import MAX_BOOKING_BYTES, check_photo, read_json
from policies.booking import Booking, BookingError, parse_booking
from policies.config import PolicyConfig, load_policy


def read_booking_json(path: Path) -> object:
    """The decoded JSON of a booking file (at most ``MAX_BOOKING_BYTES``, nested at most
    ``monitor.inputs.MAX_JSON_DEPTH`` deep), or a UserError naming the file and what is wrong."""
    return read_json(path, "booking file", MAX_BOOKING_BYTES)


def load_booking(path: str | Path, config: PolicyConfig) -> Booking:
    """Read, validate and check one booking file. Photo paths are relative to the file's directory."""
    path = Path(path)
    data = read_booking_json(path)
    try:
        booking = parse_booking(data, path.parent, config)
    except BookingError as exc:
        raise BookingError(f"{path}: {exc}") from None
    for field, photo in booking.reference_photo_fields():
        check_photo(f"{path}: {field}", photo)
    return booking


def summary(booking: Booking) -> str:
    """One line: call id, slot, visitors and main caller."""
    minutes = round(booking.duration_s / 60)
    return (
        f"ok: {booking.call_id} at {booking.prison}, {booking.starts_at.isoformat()} to "
        f"{booking.ends_at.isoformat()} ({minutes} min), prisoner {booking.prisoner.id}, "
        f"{len(booking.participants)} visitor(s) {', '.join(booking.visitor_ids)}, "
        f"main caller {booking.main_caller.id}"
    )


def run_check(args: argparse.Namespace) -> int:
    """`monitor booking check FILE [--policy FILE]`."""
    config = load_policy(args.policy)
    print(summary(load_booking(args.file, config)))
    return 0


__all__ = ["check_photo", "load_booking", "read_booking_json", "run_check", "summary"]
