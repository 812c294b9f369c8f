"""`monitor staff add` and the demo staff account of `make run`."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys

from monitor.admin.common import add_db_argument, nonempty, open_store
from monitor.errors import UserError
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def run_staff_add(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        staff = auth.add_staff(store, args.username, nonempty(args.prison, "--prison"), _password(args))
        AuditLog(store).append(
            "staff_added", {"username": staff.username}, prison=staff.prison, actor="admin"
        )
    print(f"added staff account {staff.username} at {staff.prison}")
    return 0


DEMO_STAFF = "demo"


def demo_staff(store: Store, prison: str) -> tuple[str, str]:
    """The demo staff account for `make run`: created (or given a fresh random password) for
    ``prison``; returns (username, password) to print. Earlier demo sessions end."""
    password = secrets.token_urlsafe(12)
    row = store.db.execute("SELECT prison FROM staff WHERE username = ?", (DEMO_STAFF,)).fetchone()
    if row is None:
        auth.add_staff(store, DEMO_STAFF, prison, password)
    elif row["prison"] != prison:
        raise UserError(f"staff account {DEMO_STAFF} exists for {row['prison']}, not {prison}")
    else:
        auth.set_password(store, DEMO_STAFF, password)
    return DEMO_STAFF, password


def add_staff_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username")
    parser.add_argument("--prison", required=True, help="the prison whose calls this account may see")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_db_argument(parser)
