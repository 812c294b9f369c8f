"""What every admin command shares: the ``--db`` flag, opening the store, non-empty text, ids."""

from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.store.database import BookedVisitor, BookingRow, Store, default_db_path
from policies.booking import Booking
from policies.text import id_problem, text_problem

DB_HELP = "database file (default: $MONITOR_DB, else ./monitor.db)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help=DB_HELP)


def open_store(args: argparse.Namespace, *, must_exist: bool = False) -> Store:
    """The store named by ``--db`` (else the default). ``must_exist``: for commands that only read
    or change what is already stored (a mistyped path must not become a new, empty store that
    `audit verify` then reports as intact)."""
    path = args.db if getattr(args, "db", None) else default_db_path()
    if must_exist and not Path(path).exists():
        raise UserError(
            f"{path}: no such database (give --db or set $MONITOR_DB; "
            "`monitor prisoner add` or `monitor serve --demo` creates one)"
        )
    return Store(path)


def join_base_url(value: str) -> str:
    """``--base-url``: where the server answers, e.g. ``https://calls.example.org``; the join links
    printed are ``<base-url>/join/<token>``, so anything else would print links that cannot work."""
    parsed = urllib.parse.urlsplit(value)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:  # not a number, or out of range
        port_ok = False
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or not port_ok
        or parsed.query
        or parsed.fragment
    ):
        raise UserError(f"--base-url {value!r}: must be the server's address, e.g. https://calls.example.org")
    return value.rstrip("/")


def nonempty(value: str, flag: str) -> str:
    if not value.strip():
        raise UserError(f"{flag} must not be empty")
    problem = text_problem(value.strip())
    if problem is not None:
        raise UserError(f"{flag}: {problem}")
    return value.strip()


def checked_id(value: str, flag: str) -> str:
    """An id given on the command line (it becomes file names and URL segments): the one id rule
    of ``policies.text``, or a UserError naming the flag."""
    problem = id_problem(value)
    if problem is not None:
        raise UserError(f"{flag}: {problem}")
    return value


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
