"""What every admin command shares: the ``--db`` flag, opening the store, non-empty text."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.errors import UserError
from monitor.store import Store, default_db_path

DB_HELP = "database file (default: $MONITOR_DB, else ./monitor.db)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help=DB_HELP)


def open_store(args: argparse.Namespace) -> Store:
    return Store(args.db if getattr(args, "db", None) else default_db_path())


def nonempty(value: str, flag: str) -> str:
    if not value.strip():
        raise UserError(f"{flag} must not be empty")
    return value.strip()
