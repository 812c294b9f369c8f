"""One database interface for the two engines: where the store is (:func:`locate`), a connection
that runs the same SQL on SQLite or PostgreSQL (opened by ``database.connect``), rows read by name
or position, and the engines' errors named alike.

Theory of operation
-------------------
The store's SQL is written once, in the dialect both engines accept: ``?`` placeholders,
``INSERT ... ON CONFLICT DO NOTHING``, ``RETURNING id`` for a new row's id, 0/1 for truth values,
no engine's own functions. A :class:`Connection` runs it: on SQLite as it is (``sqlite3``, WAL,
foreign keys on); on PostgreSQL (``monitor/store/sql_postgres.py``, psycopg 3) with ``?`` turned
into ``%s`` in one place. Both give rows that read as ``row["name"]`` or ``row[0]`` (names
case-blind, as ``sqlite3.Row``), and both raise the errors below instead of their own, so nothing
above this module knows which engine it runs on.

A write transaction (:meth:`Connection.begin`) lets one writer in at a time, whichever process or
node it is in, and sees everything committed before it: SQLite's ``BEGIN IMMEDIATE``; on
PostgreSQL ``BEGIN`` (read committed) then a transaction-scoped advisory lock that every write
transaction takes first (``sql_postgres.py`` says why one lock). So a rule checked inside the
transaction (the last free slot of a prison, an account's e-mail address) still holds at its
commit, and the audit chain's head read there is the head its record follows. A write outside a
transaction is made one; reads never wait for writers.

Where a store is: a file path is a SQLite database; ``postgresql://user@host:port/name`` (or
``postgres://``) is a PostgreSQL database. Files that belong to a store (the audit key and
checkpoints, evidence frames, documents; SQLite's serve lock) sit beside a SQLite file; a PostgreSQL
database ``name`` keeps them as a file ``name.pg`` would, in ``$MONITOR_STORE_DIR`` (default the
current folder): ``name.pg.audit-key``, ``name.pg.audit-checkpoints``, ``name-data/``, ...
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from monitor.errors import UserError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
PG_SCHEMES = ("postgresql", "postgres")
STORE_DIR_ENV = "MONITOR_STORE_DIR"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another's transaction, on either engine


class StoreError(UserError):
    """The database cannot be opened or a stored rule was broken (one clear line)."""


class DatabaseError(Exception):
    """The database engine failed; the message is the engine's."""


class IntegrityError(DatabaseError):
    """A constraint or trigger refused the change (retrying cannot help)."""


class ProgrammingError(DatabaseError):
    """The SQL or its data are wrong: a bug (retrying cannot help)."""


class OperationalError(DatabaseError):
    """The database cannot do it now (locked too long, disk full, connection lost): may pass."""


class Row(Protocol):
    """One result row: ``row["column"]`` (case-blind) or ``row[0]``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """What an executed statement gives back."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...  # Row | None (``Any``, as sqlite3's, so callers index it freely)

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Location:
    engine: str  # SQLITE or POSTGRESQL
    text: str  # as given (what --db takes; a URL keeps any password)
    path: Path  # SQLite: the file; PostgreSQL: what the store's own files are named after
    name: str  # for messages: the file, or the URL without a password

    @property
    def is_postgresql(self) -> bool:
        return self.engine == POSTGRESQL

    @property
    def has_password(self) -> bool:
        return self.is_postgresql and urlsplit(self.text).password is not None


def locate(given: str | Path | Location) -> Location:
    """Where a store is: a PostgreSQL URL, else a SQLite file path."""
    if isinstance(given, Location):
        return given
    text = str(given)
    scheme, sep, _ = text.partition("://")
    if not sep or scheme.lower() not in PG_SCHEMES:
        return Location(SQLITE, text, Path(text), text)
    parts = urlsplit(text)
    database = unquote(parts.path.lstrip("/"))
    shown = f"{scheme}://{parts.username + '@' if parts.username else ''}{parts.hostname or ''}"
    try:
        shown += f":{parts.port}" if parts.port else ""
    except ValueError:
        raise StoreError(f"{scheme}://...: the port is not a number from 1 to 65535") from None
    shown += f"/{database}"
    if not database or "/" in database or database.startswith("."):
        raise StoreError(f"{shown}: name the database, e.g. postgresql://monitor@db.example.org:5432/monitor")
    folder = Path(os.environ.get(STORE_DIR_ENV) or ".")
    return Location(POSTGRESQL, text, folder / f"{database}.pg", shown)


class Connection(abc.ABC):
    """One connection to the store's database (see the module docstring)."""

    engine: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool: ...

    @abc.abstractmethod
    def begin(self) -> None:
        """Start a write transaction: wait (up to ``BUSY_TIMEOUT_S``) until no other writer is in one."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def script(self, sql: str) -> None:
        """Run several statements (no parameters), inside the caller's transaction."""

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements inside go to the server without waiting for each answer (PostgreSQL's
        pipeline mode; a failure is raised by the first read or at the end). SQLite has no server
        to wait for: there it changes nothing."""
        yield

    @abc.abstractmethod
    def close(self) -> None: ...


def _sqlite_error(exc: sqlite3.Error) -> DatabaseError:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        return OperationalError(str(exc))
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError | sqlite3.DataError):
        return ProgrammingError(str(exc))
    return DatabaseError(str(exc))


class SQLiteConnection(Connection):
    engine = SQLITE

    def __init__(self, path: Path) -> None:
        self.raw = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        self.raw.row_factory = sqlite3.Row
        try:
            self.raw.execute("PRAGMA journal_mode=WAL")
            self.raw.execute("PRAGMA foreign_keys=ON")
            self.raw.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            self.raw.close()
            raise _sqlite_error(exc) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin(self) -> None:
        self.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:  # SQLite rolls back by itself after some errors (disk full)
            self.execute("ROLLBACK")

    def script(self, sql: str) -> None:
        # executescript commits first; the migrations run it on their own ``BEGIN IMMEDIATE`` script
        try:
            self.raw.executescript(sql)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    def close(self) -> None:
        self.raw.close()


def open_sqlite(location: Location) -> Connection:
    """A connection to a SQLite store, or a StoreError saying why there is none."""
    if location.path.parent and not location.path.parent.exists():
        raise StoreError(f"{location.name}: directory {location.path.parent} does not exist")
    try:
        return SQLiteConnection(location.path)
    except (DatabaseError, sqlite3.Error) as exc:
        raise StoreError(f"{location.name}: cannot open database: {exc}") from None


__all__ = [
    "BUSY_TIMEOUT_S",
    "POSTGRESQL",
    "SQLITE",
    "STORE_DIR_ENV",
    "Connection",
    "Cursor",
    "DatabaseError",
    "IntegrityError",
    "Location",
    "OperationalError",
    "ProgrammingError",
    "Row",
    "StoreError",
    "locate",
    "open_sqlite",
]
