"""A real PostgreSQL server for the tests: Debian's binaries (``make system`` installs them), a
fresh cluster in a temporary folder, listening on a free loopback port, one new database per test.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` user that
Debian's package creates (else ``nobody``) and its commands run as that user (``runuser``); under
any other user they run as that user. Authentication is ``trust`` on 127.0.0.1 only. The server
is started once per test session (``postgres`` fixture) and stopped, its folder removed, at the end.

``store_at`` (``support.fixtures``) runs a test once on a SQLite file and once on a PostgreSQL
database of this server; :func:`raw_script` lets a test do what a person holding the database can
do behind the program's back (drop triggers, rewrite rows) on either engine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from monitor.store.database import Store
from monitor.store.sql import locate

USER = "monitor"  # the cluster's superuser, which the tests connect as
_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian puts each version in its own)."""
    found = sorted(Path("/").glob(_BIN_GLOB.lstrip("/")), key=lambda p: int(p.parent.name))
    found = [p for p in found if (p / "initdb").exists() and (p / "pg_ctl").exists()]
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``durable``: flush to disk as a production server does (for measurements); the tests' own
    server does not (fsync off: databases are made and dropped in milliseconds, and no test here
    crashes the server itself)."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._run_as: list[str] = []
        self._names = itertools.count(1)
        self._template = ""
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = ["runuser", "-u", user, "--"]
        self.root.chmod(0o755)

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._run_as, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self) -> None:
        done = self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        for _ in range(5):  # another process may take the free port first: try another
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
                " -c max_connections=200 -c shared_buffers=32MB"
            )
            if not self.durable:
                options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            log = str(self.root / "log")
            done = self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
            if done.returncode == 0:
                return
        log = (self.root / "log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()}\n{log}")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @contextlib.contextmanager
    def admin(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            yield conn

    def create_database(self, *, migrated: bool = True) -> str:
        """A new, empty database; ``migrated``: with the program's schema already in it (a copy of
        a database the program migrated once, which is quicker than migrating each anew)."""
        if migrated and not self._template:
            self._template = self.create_database(migrated=False).rsplit("/", 1)[1]
            Store(self.url(self._template)).close()
        name = f"monitor_{os.getpid()}_{next(self._names)}"
        template = self._template if migrated else "template0"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def copy_database(self, url: str) -> str:
        """A new database holding what ``url``'s holds (nothing may be connected to it)."""
        name = f"monitor_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clone_store(where: str, files: Path, folder: Path, server: PostgresServer | None) -> str:
    """A copy of the store at ``where`` and of its own files (audit key and checkpoints, data folder),
    which are in ``files``, in ``folder``; for PostgreSQL, ``folder`` must then be
    ``$MONITOR_STORE_DIR``."""
    if not locate(where).is_postgresql:
        shutil.copytree(files, folder)
        return str(folder / Path(where).name)
    assert server is not None
    url = server.copy_database(where)
    old, new = where.rsplit("/", 1)[1], url.rsplit("/", 1)[1]
    folder.mkdir(parents=True)
    for entry in files.iterdir():
        if entry.name.startswith((f"{old}.", f"{old}-")):
            target = folder / (new + entry.name[len(old) :])
            if entry.is_dir():
                shutil.copytree(entry, target)
            else:
                shutil.copy2(entry, target)
    return url


def raw_script(location: str | Path, sql: str) -> None:
    """Run statements on the database directly, as its owner could (no parameters, autocommit)."""
    where = locate(location)
    if where.is_postgresql:
        with psycopg.connect(where.text, autocommit=True) as conn:
            conn.execute(sql.encode("utf-8"))
        return
    import sqlite3

    db = sqlite3.connect(where.path)
    try:
        db.executescript(sql)
    finally:
        db.close()


def drop_audit_triggers(location: str | Path) -> str:
    """The statements that remove the audit table's append-only triggers on this engine."""
    if locate(location).is_postgresql:
        on = "ON audit"
        return f"DROP TRIGGER IF EXISTS audit_no_update {on}; DROP TRIGGER IF EXISTS audit_no_delete {on};"
    return "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;"
