"""A start of `monitor serve` that cannot serve changes nothing: a second `make run` on the same
database is refused by the first one's lock, and one on a busy port by the port, both before the
store is touched (no password rotated, no call booked, no audit record, no file made). The lock
dies with its process: after a SIGKILL the next start works.

Real processes (`python -m monitor.cli serve --demo`), a real SQLite store read back with sqlite3;
two nodes on one real PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from support.postgres import PostgresServer

from monitor.store.database import Store
from monitor.store.sql import STORE_DIR_ENV

ROOT = Path(__file__).resolve().parents[3]
MONITOR = [sys.executable, "-m", "monitor.cli"]


def start_demo(
    db: Path | str, port: int = 0, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`monitor serve --demo` running, and its console line (URL, demo user name and password)."""
    process = subprocess.Popen(
        [
            *MONITOR,
            "serve",
            "--demo",
            "--port",
            str(port),
            "--db",
            str(db),
            "--analysis-workers",
            "1",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        record = json.loads(line)
        if "console" in record:
            return process, record


def snapshot(db: Path) -> dict[str, Any]:
    """Everything a start could change, read without taking part (read-only, no WAL writes)."""
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = ("staff", "staff_sessions", "bookings", "calls", "join_tokens", "audit", "login_attempts")
        found: dict[str, Any] = {t: raw.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    finally:
        raw.close()
    found["files"] = sorted(p.name for p in db.parent.iterdir())
    found["checkpoints"] = db.with_name(db.name + ".audit-checkpoints").read_text()
    return found


def settled(db: Path) -> dict[str, Any]:
    """The snapshot once the running server has written what it writes at start (its call goes
    from waiting to verifying): the same twice in a row, half a second apart."""
    last = snapshot(db)
    for _ in range(40):
        time.sleep(0.5)
        now = snapshot(db)
        if now == last and now["audit"]:
            return now
        last = now
    raise AssertionError("the running server kept writing")


def refused(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [*MONITOR, "serve", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_second_start_on_the_same_database_or_port_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "first" / "monitor.db"
    db.parent.mkdir()
    first, console = start_demo(db)
    try:
        port = urllib.parse.urlsplit(console["console"]).port
        assert port
        before = settled(db)
        # `make run` again, same database (any port): the lock of the running server refuses it
        error = refused("--demo", "--port", "0", "--db", str(db), "--analysis-workers", "1")
        assert f"another `monitor serve` (pid {first.pid}) is using this database" in error
        # same port, another database: the port refuses it, and that database is never even made
        other = tmp_path / "other" / "monitor.db"
        other.parent.mkdir()
        error = refused("--demo", "--port", str(port), "--db", str(other), "--analysis-workers", "1")
        assert f"cannot listen on 127.0.0.1:{port}" in error
        assert list(other.parent.iterdir()) == []
        # and the first server's store is as it was: the demo password still signs in
        assert snapshot(db) == before
    finally:
        stop(first, signal.SIGKILL)  # the lock goes with the process, however it ends
    again, console_again = start_demo(db)
    try:
        assert console_again["username"] == "demo"
    finally:
        stop(again)
    assert again.returncode == 0


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--smtp", "nonsense"], "--smtp 'nonsense': expected HOST:PORT"),
        (["--smtp", "127.0.0.1:25"], "--smtp needs --mail-from ADDRESS"),
        (["--mail-from", "not an address"], "--mail-from 'not an address'"),
    ],
)
def test_bad_mail_flags_are_refused_before_the_store_is_made(
    tmp_path: Path, flags: list[str], words: str
) -> None:
    db = tmp_path / "store" / "monitor.db"
    db.parent.mkdir()
    error = refused("--demo", "--port", "0", "--db", str(db), *flags)
    assert words in error
    assert list(db.parent.iterdir()) == []


@pytest.mark.slow
def test_two_nodes_serve_one_postgresql_database(tmp_path: Path, postgres: PostgresServer) -> None:
    """Two `monitor serve` nodes on one PostgreSQL database: a second server with the same node
    name is refused, another name shares the database, and the one audit chain both wrote to
    verifies."""
    url = postgres.create_database()
    env = {**os.environ, STORE_DIR_ENV: str(tmp_path)}
    first, console = start_demo(url, 0, "--node", "node-a", env=env)
    try:
        error = refused("--demo", "--port", "0", "--db", url, "--node", "node-a", env=env)
        assert "another `monitor serve` with node name 'node-a'" in error
        second, console_b = start_demo(url, 0, "--node", "node-b", env=env)
        try:
            assert console_b["username"] == console["username"] == "demo"
            assert (
                urllib.parse.urlsplit(console_b["console"]).port
                != urllib.parse.urlsplit(console["console"]).port
            )
        finally:
            stop(second)
        assert second.returncode == 0
        with Store(url) as store:
            nodes = {row[0] for row in store.db.execute("SELECT node FROM calls WHERE node IS NOT NULL")}
            assert nodes <= {"node-a", "node-b"} and nodes
    finally:
        stop(first)
    assert first.returncode == 0
    verified = subprocess.run(
        [*MONITOR, "audit", "verify", "--db", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stderr


def test_the_metrics_token_comes_from_a_file_never_the_command_line(tmp_path: Path) -> None:
    from monitor.cli import build_parser
    from monitor.errors import UserError
    from monitor.server.command import metrics_token

    token_file = tmp_path / "metrics-token"
    token_file.write_text("s3cret-metrics-token-0123\n")
    args = build_parser().parse_args(["serve", "--demo", "--metrics-token-file", str(token_file)])
    assert metrics_token(args) == "s3cret-metrics-token-0123"
    with pytest.raises(SystemExit):  # a token in argv would show in `ps`: there is no such flag
        build_parser().parse_args(["serve", "--demo", "--metrics-token", "s3cret"])
    token_file.write_text("short\n")
    with pytest.raises(UserError, match="one line of 16 or more characters"):
        metrics_token(args)
    token_file.unlink()
    with pytest.raises(UserError, match="cannot read it"):
        metrics_token(args)
    # checked before the store is touched: a bad token file makes no database
    db = tmp_path / "monitor.db"
    error = refused("--demo", "--port", "0", "--db", str(db), "--metrics-token-file", str(token_file))
    assert "--metrics-token-file" in error and not db.exists()
