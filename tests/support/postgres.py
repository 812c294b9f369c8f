"""A real PostgreSQL server for the tests (``tools/postgres_server.py``: Debian's binaries, which
``make system`` installs, a fresh cluster in a temporary folder on a free loopback port), started
once per test session by the ``postgres`` fixture (``support.fixtures``), one new database per test.

``store_at`` (``support.fixtures``) runs a test once on a SQLite file and once on a PostgreSQL
database of this server; :func:`raw_script` lets a test do what a person holding the database can
do behind the program's back (drop triggers, rewrite rows) on either engine; :func:`clone_store`
copies a store and its own files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from monitor.store.sql import locate
from tools.postgres_server import PostgresServer, binaries

__all__ = ["PostgresServer", "binaries", "clone_store", "drop_audit_triggers", "raw_script"]


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
