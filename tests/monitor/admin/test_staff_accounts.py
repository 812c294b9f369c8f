"""`monitor staff disable|enable|password|sessions [--revoke]|role` on a real store: each takes effect
on open sessions at once, is audited (actor ``admin``), and bad input gets one clear line."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from support.postgres import PostgresServer

from monitor.cli import main
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store

PASSWORD = "correct horse battery"


def run(db: str | Path, *argv: str, stdin: str | None = None) -> int:
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        return main([*argv, "--db", str(db)])
    finally:
        sys.stdin = sys.__stdin__


@pytest.fixture
def db(store_at: str) -> str:
    path = store_at
    assert run(path, "staff", "add", "alice", "--prison", "HMP Example", stdin=PASSWORD + "\n") == 0
    return path


def sign_in(db: str, password: str = PASSWORD) -> str | None:
    with Store(db) as store:
        return auth.login(store, "alice", password, "10.0.0.1").token


def signed_in(db: str, token: str | None) -> bool:
    with Store(db) as store:
        return auth.session_staff(store, token) is not None


def test_sessions_are_listed_and_revoked(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = sign_in(db), sign_in(db)
    capsys.readouterr()
    assert run(db, "staff", "sessions", "alice") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(
        line.startswith("signed in ") and line.endswith(": open") for line in lines
    )
    assert run(db, "staff", "sessions", "alice", "--revoke") == 0
    assert capsys.readouterr().out == "ended 2 open sessions of staff account alice\n"
    assert not signed_in(db, first) and not signed_in(db, second)  # a stolen cookie stops working
    assert run(db, "staff", "sessions", "alice") == 0
    assert all(": ended " in line for line in capsys.readouterr().out.splitlines())


def test_disable_enable_and_a_new_password(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    token = sign_in(db)
    assert run(db, "staff", "disable", "alice") == 0
    assert capsys.readouterr().out == "disabled staff account alice (1 open sessions ended)\n"
    assert not signed_in(db, token) and sign_in(db) is None
    assert run(db, "staff", "enable", "alice") == 0
    token = sign_in(db)
    assert token is not None and signed_in(db, token)
    assert run(db, "staff", "password", "alice", "--password-stdin", stdin="a brand new password\n") == 0
    assert capsys.readouterr().out.endswith("new password for staff account alice (1 open sessions ended)\n")
    assert not signed_in(db, token)
    assert sign_in(db) is None and sign_in(db, "a brand new password") is not None
    with Store(db) as store:
        log = AuditLog(store)
        rows = store.db.execute("SELECT kind, actor, prison, data FROM audit ORDER BY id").fetchall()
        assert [(r[0], r[1], r[2]) for r in rows] == [
            ("staff_added", "admin", "HMP Example"),
            ("staff_disabled", "admin", "HMP Example"),
            ("staff_enabled", "admin", "HMP Example"),
            ("staff_password_changed", "admin", "HMP Example"),
        ]
        assert "brand new" not in " ".join(r[3] for r in rows)  # no password in the log
        assert log.verify().ok


def test_a_staff_account_is_made_a_governor_and_back(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.store.family_roles import role

    capsys.readouterr()
    assert run(db, "staff", "role", "alice", "governor") == 0
    assert capsys.readouterr().out == "staff account alice is now a governor\n"
    with Store(db) as store:
        alice = auth.login(store, "alice", PASSWORD, "10.0.0.1").staff
        assert alice is not None and role(store, alice) == "governor"
    assert run(db, "staff", "role", "alice", "staff") == 0
    with Store(db) as store:
        assert role(store, alice) == "staff"
        rows = store.db.execute("SELECT kind, data FROM audit WHERE kind = 'staff_role_changed'").fetchall()
        assert [(r[0], r[1]) for r in rows] == [
            ("staff_role_changed", '{"role":"governor","username":"alice"}'),
            ("staff_role_changed", '{"role":"staff","username":"alice"}'),
        ]


@pytest.mark.parametrize(
    ("argv", "stdin", "problem"),
    [
        (("staff", "disable", "nobody"), None, "staff account nobody: no such account"),
        (("staff", "enable", "nobody"), None, "staff account nobody: no such account"),
        (("staff", "sessions", "nobody", "--revoke"), None, "staff account nobody: no such account"),
        (("staff", "password", "nobody", "--password-stdin"), "long enough pass\n", "no such account"),
        (("staff", "password", "alice", "--password-stdin"), "short\n", "at least 10 characters"),
        (("staff", "role", "nobody", "governor"), None, "staff account nobody: no such account"),
    ],
)
def test_bad_input_gets_one_clear_line(
    db: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], stdin: str | None, problem: str
) -> None:
    capsys.readouterr()
    assert run(db, *argv, stdin=stdin) == 1
    err = capsys.readouterr().err
    assert err.startswith("monitor: error: ") and problem in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_commands_refuse_a_database_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres: PostgresServer
) -> None:
    assert run(tmp_path / "typo.db", "staff", "disable", "alice") == 1
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "typo.db").exists()
    # PostgreSQL: a database the program never creates, and a password never on the command line
    assert run(postgres.url("typo"), "staff", "disable", "alice") == 1
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL: " in err and '"typo" does not exist' in err and err.count("\n") == 1
    assert run(postgres.url("typo").replace("monitor@", "monitor:hunter2@"), "staff", "disable", "alice") == 1
    err = capsys.readouterr().err
    assert "do not put the password on the command line" in err and "hunter2" not in err
