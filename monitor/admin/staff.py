"""`monitor staff add|disable|enable|password|sessions|role` and the demo staff account of `make run`.

Every change is written to the audit log (actor ``admin``) of the account's prison. Disabling an
account, giving it a new password or ``sessions --revoke`` end its open sessions at once (the
console re-reads the session before every request and action).
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from datetime import UTC, datetime

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


def _audit(store: Store, kind: str, username: str, **data: object) -> None:
    AuditLog(store).append(
        kind, {"username": username, **data}, prison=auth.account_prison(store, username), actor="admin"
    )


def run_staff_disable(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        ended = auth.set_disabled(store, args.username, True)
        _audit(store, "staff_disabled", args.username, sessions_ended=ended)
    print(f"disabled staff account {args.username} ({ended} open sessions ended)")
    return 0


def run_staff_enable(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        auth.set_disabled(store, args.username, False)
        _audit(store, "staff_enabled", args.username)
    print(f"enabled staff account {args.username}")
    return 0


def run_staff_password(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        auth.account_prison(store, args.username)  # an unknown account is refused before asking
        ended = auth.set_password(store, args.username, _password(args))
        _audit(store, "staff_password_changed", args.username, sessions_ended=ended)
    print(f"new password for staff account {args.username} ({ended} open sessions ended)")
    return 0


def run_staff_role(args: argparse.Namespace) -> int:
    """Governors change prisons' call settings and grant extra calls (the families desk); the
    store checks the role on every such action."""
    from monitor.store.family_roles import set_role

    with open_store(args, must_exist=True) as store:
        set_role(store, args.username, args.role)
        _audit(store, "staff_role_changed", args.username, role=args.role)
    print(f"staff account {args.username} is now {'a governor' if args.role == 'governor' else 'staff'}")
    return 0


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def run_staff_sessions(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        if args.revoke:
            ended = auth.revoke_sessions(store, args.username)
            _audit(store, "staff_sessions_revoked", args.username, sessions_ended=ended)
            print(f"ended {ended} open sessions of staff account {args.username}")
            return 0
        now = store.clock()
        found = auth.sessions(store, args.username)
    for session in found:
        if session.revoked_at is not None:
            status = f"ended {_when(session.revoked_at)}"
        else:
            status = "open" if session.live(now) else "expired"
        print(f"signed in {_when(session.created_at)}, until {_when(session.expires_at)}: {status}")
    if not found:
        print(f"staff account {args.username} has no sessions")
    return 0


def add_staff_account_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username")
    add_db_argument(parser)


def add_staff_password_arguments(parser: argparse.ArgumentParser) -> None:
    add_staff_account_arguments(parser)
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def add_staff_role_arguments(parser: argparse.ArgumentParser) -> None:
    add_staff_account_arguments(parser)
    parser.add_argument(
        "role", choices=("staff", "governor"), help="governor: prison settings and extra calls"
    )


def add_staff_sessions_arguments(parser: argparse.ArgumentParser) -> None:
    add_staff_account_arguments(parser)
    parser.add_argument("--revoke", action="store_true", help="end every open session of the account")


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
