"""What every admin command shares: the ``--db`` flag, opening the store, non-empty text, ids (and
the stored row of a booking, ``booking_row``, from the store)."""

from __future__ import annotations

import argparse
import urllib.parse
from pathlib import Path

from monitor.errors import UserError
from monitor.store.booking_rules import booking_row
from monitor.store.database import Store, default_db
from monitor.store.sql import Location, locate
from policies.text import id_problem, text_problem

DB_HELP = (
    "SQLite file or postgresql://USER@HOST:PORT/NAME (default: $MONITOR_DB, else ./monitor.db); "
    "a PostgreSQL password goes in ~/.pgpass, $PGPASSWORD or $MONITOR_DB, never on the command line"
)


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="DB", help=DB_HELP)


def store_location(given: str | None) -> Location:
    """``--db`` (else ``$MONITOR_DB``, else ./monitor.db) as a store location. A password in
    ``--db`` is refused: a command line shows in ``ps`` and in shell histories."""
    where = locate(given or default_db())
    if given and where.has_password:
        raise UserError(
            f"--db {where.name}: do not put the password on the command line; use ~/.pgpass, "
            "$PGPASSWORD, or the whole URL in $MONITOR_DB"
        )
    return where


def open_store(args: argparse.Namespace, *, must_exist: bool = False) -> Store:
    """The store named by ``--db`` (else the default). ``must_exist``: for commands that only read
    or change what is already stored (a mistyped path must not become a new, empty store that
    `audit verify` then reports as intact; a PostgreSQL database is never created by the program)."""
    where = store_location(getattr(args, "db", None))
    if must_exist and not where.is_postgresql and not Path(where.path).exists():
        raise UserError(
            f"{where.name}: no such database (give --db or set $MONITOR_DB; "
            "`monitor prisoner add` or `monitor serve --demo` creates one)"
        )
    return Store(where)


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


__all__ = [
    "add_db_argument",
    "booking_row",
    "checked_id",
    "join_base_url",
    "nonempty",
    "open_store",
    "store_location",
]
