"""Booking files: read the JSON, validate it (policies.booking), check the reference photos exist.

Also the `monitor booking check FILE` handler. Every problem is a one-line UserError or BookingError
naming the file and, where it applies, the field.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from policies.booking import Booking, BookingError, parse_booking
from policies.config import PolicyConfig, load_policy

# Leading bytes of the image formats the analysis can decode (OpenCV): JPEG, PNG, BMP, WebP, TIFF.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def read_booking_json(path: Path) -> object:
    """The decoded JSON of a booking file, or a UserError naming the file and what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: booking file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a booking file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read booking file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: booking file is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # from _no_duplicate_keys
        raise UserError(f"{path}: not valid booking JSON: {exc}") from None


def check_photo(field: str, photo: Path) -> None:
    """Raise UserError unless ``photo`` is a readable image file."""
    try:
        with photo.open("rb") as handle:
            head = handle.read(12)
    except FileNotFoundError:
        raise UserError(f"{field}: reference photo not found: {photo}") from None
    except IsADirectoryError:
        raise UserError(f"{field}: reference photo is a directory: {photo}") from None
    except OSError as exc:
        raise UserError(f"{field}: cannot read reference photo {photo}: {exc.strerror or exc}") from None
    is_webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if not (is_webp or head.startswith(_IMAGE_MAGIC)):
        raise UserError(f"{field}: {photo} is not an image file (JPEG, PNG, BMP, WebP or TIFF)")


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
