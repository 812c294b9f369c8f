"""A throwaway PostgreSQL server: Debian's binaries, a fresh cluster in a temporary folder, listening
on a free loopback port, trust authentication, databases made and dropped on demand. The tests'
``postgres`` fixture (``tests/support/postgres.py``) and ``bench/store.py`` run one.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` user that
Debian's package creates (else ``nobody``) and its commands run as that user (``runuser``); under
any other user they run as that user.
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
