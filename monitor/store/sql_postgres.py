"""The store on PostgreSQL (psycopg 3): the :class:`~monitor.store.sql.Connection` for
``postgresql://`` stores, and the advisory locks that let several processes and nodes share one
database: the write lock, the per-node serve lock and the roles one node holds at a time.

Theory of operation
-------------------
*Statements.* The store's SQL uses ``?`` placeholders; :func:`pyformat` turns each ``?`` outside a
quoted string into ``%s`` and doubles every ``%`` (psycopg's own placeholder sign), once per distinct
statement (cached). Rows come back as :class:`PgRow` (by name, case-blind, or by position), truth
values go in as 0/1 (the schema's integer flags, as on SQLite) and every psycopg error leaves as one
of ``sql.py``'s. The connection is in autocommit: a read is its own short transaction and never
holds a snapshot open between requests.

*One writer at a time.* :meth:`PostgresConnection.begin` is ``BEGIN`` (read committed) followed by
``pg_advisory_xact_lock(LOCKS, WRITE)``, sent as one query: every write transaction (migrations
too), in every process of every node, takes this one lock first and holds it to its commit
(PostgreSQL makes the commit visible before it releases the lock), so each write transaction sees
every earlier one complete, exactly as SQLite's ``BEGIN IMMEDIATE`` does on one machine. That keeps
every check-then-write in the store correct as written, the last free slot of a prison included,
and orders the audit chain: an append reads the head and inserts the next record under the lock, so
the chain is one strict sequence whatever the number of writers. A finer lock would buy little:
every audit record (most of the writes) must follow the one before it anyway, so appends serialise
on the chain's head whatever locks the other writes take, and a second lock beside it invites
deadlocks (a cancelled call's rows are locked before its audit record is appended). Measured append
rates for one and four writers are in docs/operations.md. Waiting for the lock is bounded by
``lock_timeout`` (``BUSY_TIMEOUT_S``, as SQLite's busy timeout), and a session that stalls inside a
transaction is ended by ``idle_in_transaction_session_timeout`` so a frozen node cannot hold every
writer off.

*Connections that fail.* A connection found broken (the server restarted, the network dropped) is
opened again before the next statement outside a transaction. A read outside a transaction that
found it broken is tried once more on the new one; a write, or anything inside a transaction, fails
with :class:`~monitor.store.sql.OperationalError` (a write may have committed before the loss, and a
transaction is never carried on outside the lock), which the audit writer retries. TCP keepalives on
both sides notice a dead peer within about 30 s, so a dead node's locks are released.

*Session locks.* :class:`SessionLock` holds an advisory lock on a name with a connection of its own,
until released or until that connection ends: :class:`NodeLock` (``monitor serve --node NAME``, for
the server's life) and the roles of ``Store.holds`` (the mail sender: one node at a time).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import Int8Dumper

from monitor.store.sql import (
    BUSY_TIMEOUT_S,
    POSTGRESQL,
    Connection,
    Cursor,
    DatabaseError,
    IntegrityError,
    Location,
    OperationalError,
    ProgrammingError,
    StoreError,
)

log = logging.getLogger(__name__)

#: the advisory lock space of this program: (LOCKS, what) in PostgreSQL's two-key form
LOCKS = 0x6D6F6E69  # "moni"
WRITE = 1  # every write transaction (migrations too)
NODE_SPACE = 0x6D6F6E6E  # ``monitor serve`` of one node: (NODE_SPACE, node_key(name)), for its life
ROLE_SPACE = 0x6D6F6E72  # a task one node of the cluster does at a time (Store.holds): its name
IDLE_IN_TRANSACTION_S = 60
_SESSION = (
    f"SET lock_timeout = '{int(BUSY_TIMEOUT_S * 1000)}ms';"
    f" SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_S}s';"
    " SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3;"
    " SET TIME ZONE 'UTC'"
)
_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({LOCKS}, {WRITE})".encode("ascii")
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def pyformat(sql: str) -> str:
    """``?`` outside quotes -> ``%s``; every ``%`` -> ``%%`` (psycopg reads ``%`` everywhere)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote is not None:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        else:
            out.append("%s" if ch == "?" else ch)
    return "".join(out)


def node_key(name: str) -> int:
    """A node name as an advisory lock key (signed 32 bits, as PostgreSQL wants it)."""
    return int.from_bytes(zlib.crc32(name.encode("utf-8")).to_bytes(4, "big"), "big", signed=True)


class PgRow:
    """A row read by name (case-blind, the first column of that name) or position."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key.lower()]]
            except KeyError:
                raise IndexError(f"no column named {key}") from None
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PgRow) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def keys(self) -> list[str]:
        return sorted(self._index, key=self._index.__getitem__)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self.keys(), self._values, strict=True))!r})"


def _rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    index: dict[str, int] = {}
    for i, column in enumerate(cursor.description or ()):
        index.setdefault(column.name.lower(), i)
    return lambda values: PgRow(values, index)


class _BoolAsInt(Int8Dumper):
    """True/False as 1/0: the schema keeps flags in integer columns on both engines."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _error(exc: psycopg.Error) -> DatabaseError:
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc).strip()
    if isinstance(exc, pg.IntegrityError):
        return IntegrityError(message)
    if isinstance(exc, psycopg.OperationalError | pg.InternalError):
        return OperationalError(message)
    if isinstance(exc, psycopg.ProgrammingError | psycopg.DataError | psycopg.NotSupportedError):
        return ProgrammingError(message)
    if isinstance(exc, psycopg.InterfaceError):
        return OperationalError(message)  # the connection is closed: opened again next time
    return DatabaseError(message)


def open_raw(location: Location, *, application: str = "monitor") -> psycopg.Connection[Any]:
    """A psycopg connection in autocommit with the store's session settings, or a StoreError."""
    try:
        conn = psycopg.connect(
            location.text,
            application_name=application[:63],
            autocommit=True,
            row_factory=_rows,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StoreError(f"{location.name}: cannot connect to PostgreSQL: {reason}") from None
    try:
        conn.adapters.register_dumper(bool, _BoolAsInt)
        conn.execute(_SESSION)
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"{location.name}: cannot set up the session: {_error(exc)}") from None
    return conn


class PostgresConnection(Connection):
    engine = POSTGRESQL

    def __init__(self, location: Location) -> None:
        self.location = location
        self.raw = open_raw(location)
        self._writing = False  # between begin() and commit() or rollback()

    def _live(self) -> psycopg.Connection[Any]:
        """The connection, opened again first if it broke outside a transaction (inside one, the
        transaction is lost: it fails, and is never carried on outside the write lock)."""
        if self.raw.broken or self.raw.closed:
            if self._writing:
                raise OperationalError("the connection was lost during a write transaction (rolled back)")
            log.warning("%s: connection lost; connecting again", self.location.name)
            try:
                self.raw = open_raw(self.location)
            except StoreError as exc:
                raise OperationalError(str(exc)) from None
        return self.raw

    def _run(self, query: str, params: Sequence[Any], *, read: bool = False) -> Cursor:
        """Run one statement; a read outside a transaction that finds the connection lost is tried
        once more on a new one (a write is not: it may have been committed before the loss)."""
        try:
            cursor: Cursor = self._live().execute(query, params)
        except psycopg.Error as exc:
            if not (read and self.raw.broken and not self._writing):
                raise _error(exc) from exc
            try:
                cursor = self._live().execute(query, params)
            except psycopg.Error as again:
                raise _error(again) from again
        return cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        query = pyformat(sql)
        if self.in_transaction:
            return self._run(query, params)
        if not _WRITES.match(query):
            return self._run(query, params, read=True)
        self.begin()  # a write on its own is a write transaction, like any other
        try:
            cursor = self._run(query, params)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        query = pyformat(sql)
        own = not self.in_transaction
        if own:
            self.begin()
        try:
            with self._live().cursor() as cursor:
                cursor.executemany(query, rows)
        except psycopg.Error as exc:
            if own:
                self.rollback()
            raise _error(exc) from exc
        if own:
            self.commit()

    @property
    def in_transaction(self) -> bool:
        status = self.raw.info.transaction_status
        return status in (TransactionStatus.INTRANS, TransactionStatus.INERROR, TransactionStatus.ACTIVE)

    def begin(self) -> None:
        try:  # one round trip: no parameters, so both statements go as one simple query
            self._live().execute(_BEGIN_WRITE)
        except psycopg.Error as exc:
            self.rollback()
            raise _error(exc) from exc
        except BaseException:
            self.rollback()
            raise
        self._writing = True

    def commit(self) -> None:
        if self.raw.info.transaction_status == TransactionStatus.INERROR:
            # PostgreSQL would answer COMMIT with a silent ROLLBACK: say so instead
            self.rollback()
            raise OperationalError("the transaction failed earlier and was rolled back")
        try:
            self._run("COMMIT", ())
        finally:
            self._writing = self.in_transaction  # a COMMIT that failed is rolled back

    def rollback(self) -> None:
        self._writing = False
        if self.raw.broken or self.raw.closed or not self.in_transaction:
            return  # a lost connection's transaction is rolled back by the server
        try:
            self.raw.execute("ROLLBACK")
        except psycopg.Error as exc:
            log.warning("%s: rollback failed: %s", self.location.name, _error(exc))

    def script(self, sql: str) -> None:
        try:
            self._live().execute(sql.encode("utf-8"))  # bytes, no parameters: sent as it is
        except psycopg.Error as exc:
            raise _error(exc) from exc

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        try:
            with self._live().pipeline():
                yield
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def close(self) -> None:
        self.raw.close()


class SessionLock:
    """An advisory lock on a name, held by a connection of its own until released. PostgreSQL
    releases it when that connection ends, however the process ends (keepalives notice a machine
    that vanished), so a dead holder never keeps the others out for long."""

    def __init__(self, location: Location, space: int, name: str, application: str) -> None:
        self.location = location
        self.space = space
        self.name = name
        self.application = application
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False

    def _alive(self) -> bool:
        return self._conn is not None and not self._conn.broken and not self._conn.closed

    def try_acquire(self) -> bool:
        """Take the lock if it is free (True), else False; a StoreError when the database cannot be
        reached. A lock whose connection was lost is taken again (or found taken by another): a held
        lock's session is asked whether it is still there, since only using a connection finds it lost."""
        if self._held and self._alive():
            assert self._conn is not None
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                log.warning("%s: the session holding %r was lost", self.location.name, self.name)
        if not self._alive():
            self.release()
            self._conn = open_raw(self.location, application=self.application)
        assert self._conn is not None
        try:
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.space, node_key(self.name)))
            got = row.fetchone()
        except psycopg.Error as exc:
            self.release()
            raise StoreError(
                f"{self.location.name}: cannot take the lock {self.name!r}: {_error(exc)}"
            ) from None
        self._held = bool(got is not None and got[0])
        return self._held

    def holder(self) -> str | None:
        """Where the session holding the lock is connected from (None: not known, or not held)."""
        try:
            with open_raw(self.location, application=self.application) as conn:
                row = conn.execute(
                    "SELECT a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                    " AND l.classid::bigint = %s AND l.objid::bigint = %s",
                    (self.space & 0xFFFFFFFF, node_key(self.name) & 0xFFFFFFFF),
                ).fetchone()
        except (psycopg.Error, StoreError):
            return None
        return None if row is None else str(row[0] or "a local socket")

    def release(self) -> None:
        self._held = False
        if self._conn is not None:
            self._conn.close()  # ending the session releases the lock
            self._conn = None


class NodeLock:
    """``monitor serve``'s lock on PostgreSQL: a :class:`SessionLock` on the node's name, for the
    server's life. Several nodes share the database; two servers that claim one node name do not."""

    def __init__(self, location: Location, node: str) -> None:
        self.location = location
        self.node = node
        self._lock = SessionLock(location, NODE_SPACE, node, f"monitor serve {node}")

    def acquire(self) -> None:
        if self._lock.try_acquire():
            return
        self._lock.release()
        holder = self._lock.holder()
        where = "" if holder is None else f" (connected from {holder})"
        raise StoreError(
            f"{self.location.name}: another `monitor serve` with node name {self.node!r}{where} is using "
            "this database; stop it first, or give this one another --node"
        )

    def release(self) -> None:
        self._lock.release()


__all__ = ["NodeLock", "PgRow", "PostgresConnection", "SessionLock", "node_key", "open_raw", "pyformat"]
