"""What every admin command shares: the ``--db`` flag, opening the store, non-empty text."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.store import BookedVisitor, BookingRow, Store, default_db_path
from policies.booking import Booking

DB_HELP = "database file (default: $MONITOR_DB, else ./monitor.db)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help=DB_HELP)


def open_store(args: argparse.Namespace) -> Store:
    return Store(args.db if getattr(args, "db", None) else default_db_path())


def nonempty(value: str, flag: str) -> str:
    if not value.strip():
        raise UserError(f"{flag} must not be empty")
    return value.strip()


def booking_row(booking: Booking, document: dict[str, Any]) -> BookingRow:
    """The store row of a validated booking; ``document`` is kept as its JSON (sorted keys)."""
    return BookingRow(
        booking.call_id,
        booking.prisoner.id,
        booking.prison,
        booking.starts_at.timestamp(),
        booking.ends_at.timestamp(),
        booking.starts_at.isoformat(),
        booking.ends_at.isoformat(),
        json.dumps(document, sort_keys=True),
        tuple(BookedVisitor(v.id, v.main_caller) for v in booking.participants),
    )
