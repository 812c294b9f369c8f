"""The store: prisoners, visitor lists, visitors, bookings, calls and join tokens, on SQLite or
PostgreSQL.

Theory of operation
-------------------
One database: a SQLite file (WAL, foreign keys on) or a PostgreSQL database, reached through
:mod:`monitor.store.sql`, which runs the same SQL on both. The schema is built by the numbered
files in ``monitor/store/migrations`` (:mod:`monitor.store.migrate`), each applied once, in order,
inside one transaction together with its row in ``schema_version``; a half-applied migration
therefore never exists. Every write goes through :meth:`Store.transaction`, which lets one writer
in at a time (SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL an advisory lock every writer takes), so
a process killed mid-write leaves the last committed state and nothing else, and a rule checked
inside a transaction still holds at its commit. Several processes (and, on PostgreSQL, several
nodes) may share the database: a writer waits for the other instead of failing.

The staff accounts and sessions live in :mod:`monitor.store.auth`, the audit chain in
:mod:`monitor.store.audit`; both use this store's connection and transactions. The clock is injected
(``clock``) so tests can move time; nothing here decides policy.

Default database: ``$MONITOR_DB`` when set (a path or a ``postgresql://`` URL), else
``./monitor.db``. Files that belong to the database (evidence frames) live in the data directory
next to it: ``monitor.db`` -> ``monitor-data/`` (for PostgreSQL see :mod:`monitor.store.sql`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Protocol

from monitor.store import migrate
from monitor.store.records import BookedVisitor, BookingRow, CallRow, JoinToken, Photo, Prisoner, Visitor
from monitor.store.sql import Connection, Location, Row, StoreError, locate, open_sqlite

Clock = Callable[[], float]


class Releasable(Protocol):
    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


DEFAULT_DB = "monitor.db"


def default_db() -> str:
    """``$MONITOR_DB`` when set (a path or a PostgreSQL URL), else ``./monitor.db``."""
    return os.environ.get("MONITOR_DB") or DEFAULT_DB


def connect(location: Location) -> Connection:
    """A connection to the store's database (no migration applied), or a StoreError saying why
    there is none."""
    if location.is_postgresql:
        from monitor.store.sql_postgres import PostgresConnection  # psycopg only when it is used

        return PostgresConnection(location)
    return open_sqlite(location)


def default_db_path() -> Path:
    """``$MONITOR_DB`` when set, else ``./monitor.db`` (a PostgreSQL URL: what its files are named after)."""
    return locate(default_db()).path


def data_dir_of(db_path: Path) -> Path:
    """The data folder of the database at ``db_path``: ``<dir>/<stem>-data``."""
    return db_path.with_name(db_path.stem + "-data")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """An open database. Use as a context manager or call :meth:`close`.

    ``location``: a SQLite file or a ``postgresql://`` URL (see :mod:`monitor.store.sql`).
    ``node``: this server's name among several sharing one database (written on the calls whose
    state it records, so that it marks only its own calls interrupted when it starts again)."""

    def __init__(
        self,
        location: str | Path | Location,
        *,
        clock: Clock = time.time,
        migrations: Traversable | None = None,
        node: str | None = None,
    ) -> None:
        self.location = locate(location)
        self.path = self.location.path  # what the store's own files are named after
        self.name = self.location.name  # for messages
        self.clock = clock
        self.node = node
        self.transactions = 0  # write transactions begun (names the one in progress)
        # (transaction, id, hash) of the audit record appended last (monitor.store.audit): the head
        # of the chain while that transaction holds the write lock, so a batch reads it only once
        self.audit_head: tuple[int, int, str] | None = None
        self._after_commit: dict[object, Callable[[], None]] = {}
        self._roles: dict[str, Releasable] = {}
        self.db: Connection = connect(self.location)
        try:
            folder = migrations or resources.files("monitor.store").joinpath("migrations")
            migrate.apply(self.db, folder, clock, self.name)
        except BaseException:
            self.db.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for lock in self._roles.values():
            lock.release()
        self.db.close()

    def holds(self, role: str) -> bool:
        """Whether this process is the one that does ``role`` (e.g. ``"mail-sender"``) among every
        process sharing the database. SQLite: always (one server per file). PostgreSQL: whoever
        holds the role's advisory lock; it is taken when free and kept while this store is open, so
        another node takes the role over when this one stops or dies."""
        if not self.location.is_postgresql:
            return True
        lock = self._roles.get(role)
        if lock is None:
            from monitor.store.sql_postgres import ROLE_SPACE, SessionLock

            lock = self._roles[role] = SessionLock(self.location, ROLE_SPACE, role, f"monitor {role}")
        try:
            return lock.try_acquire()
        except StoreError:
            return False

    @property
    def engine(self) -> str:
        return self.db.engine

    @property
    def data_dir(self) -> Path:
        """Where files that belong to this database live (evidence frames, recordings)."""
        return data_dir_of(self.path)

    def photo_path(self, photo: Photo) -> Path:
        """A reference photo's file (stored paths are relative to the data directory)."""
        return self.data_dir / photo.path

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic write: one writer at a time (see the module docstring) ... ``COMMIT``."""
        if self.db.in_transaction:  # nested: the outer transaction commits
            yield self.db
            return
        self.db.begin()
        self.transactions += 1
        try:
            yield self.db
            self.db.commit()
        except BaseException:
            self._after_commit.clear()
            self.db.rollback()
            raise
        callbacks, self._after_commit = self._after_commit, {}
        for callback in callbacks.values():
            callback()

    def after_commit(self, key: object, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the outermost transaction commits (only the last one given per
        ``key``); forgotten if it rolls back."""
        self._after_commit[key] = callback

    def schema_version(self) -> int:
        return migrate.current_version(self.db)

    # -- prisoners and visitors ---------------------------------------------------------------

    def add_prisoner(self, prisoner: Prisoner, photos: tuple[Photo, ...] = ()) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM prisoners WHERE id = ?", (prisoner.id,)).fetchone():
                raise StoreError(f"prisoner {prisoner.id} already exists")
            db.execute(
                "INSERT INTO prisoners (id, name, prison, created_at) VALUES (?, ?, ?, ?)",
                (prisoner.id, prisoner.name, prisoner.prison, self.clock()),
            )
            db.executemany(
                "INSERT INTO prisoner_photos (prisoner_id, path, sha256, embedding) VALUES (?, ?, ?, ?)",
                [(prisoner.id, p.path, p.sha256, p.embedding) for p in photos],
            )

    def prisoner(self, prisoner_id: str) -> Prisoner | None:
        row = self.db.execute(
            "SELECT id, name, prison FROM prisoners WHERE id = ?", (prisoner_id,)
        ).fetchone()
        return None if row is None else Prisoner(row["id"], row["name"], row["prison"])

    def prisoner_photos(self, prisoner_id: str) -> tuple[Photo, ...]:
        rows = self.db.execute(
            "SELECT path, sha256, embedding FROM prisoner_photos WHERE prisoner_id = ? ORDER BY id",
            (prisoner_id,),
        ).fetchall()
        return tuple(Photo(r["path"], r["sha256"], bytes(r["embedding"])) for r in rows)

    def add_visitor(self, visitor: Visitor, prisoner_id: str) -> None:
        """A new visitor with their enrolled photos, approved for ``prisoner_id``'s visitor list."""
        with self.transaction() as db:
            if self.prisoner(prisoner_id) is None:
                raise StoreError(f"--prisoner {prisoner_id}: no such prisoner")
            if db.execute("SELECT 1 FROM visitors WHERE id = ?", (visitor.id,)).fetchone():
                raise StoreError(f"visitor {visitor.id} already exists")
            if not visitor.photos:
                raise StoreError(f"visitor {visitor.id}: at least one reference photo is required")
            now = self.clock()
            db.execute(
                "INSERT INTO visitors (id, name, date_of_birth, created_at) VALUES (?, ?, ?, ?)",
                (visitor.id, visitor.name, visitor.date_of_birth, now),
            )
            db.executemany(
                "INSERT INTO visitor_photos (visitor_id, path, sha256, embedding) VALUES (?, ?, ?, ?)",
                [(visitor.id, p.path, p.sha256, p.embedding) for p in visitor.photos],
            )
            db.execute(
                "INSERT INTO visitor_list (prisoner_id, visitor_id, approved_at) VALUES (?, ?, ?)",
                (prisoner_id, visitor.id, now),
            )

    def approve_visitor(self, prisoner_id: str, visitor_id: str) -> None:
        """Put an existing visitor on another prisoner's visitor list."""
        with self.transaction() as db:
            if self.prisoner(prisoner_id) is None:
                raise StoreError(f"--prisoner {prisoner_id}: no such prisoner")
            if self.visitor(visitor_id) is None:
                raise StoreError(f"visitor {visitor_id}: no such visitor")
            db.execute(
                "INSERT INTO visitor_list (prisoner_id, visitor_id, approved_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (prisoner_id, visitor_id, self.clock()),
            )

    def visitor(self, visitor_id: str) -> Visitor | None:
        row = self.db.execute(
            "SELECT id, name, date_of_birth FROM visitors WHERE id = ?", (visitor_id,)
        ).fetchone()
        if row is None:
            return None
        photos = self.db.execute(
            "SELECT path, sha256, embedding FROM visitor_photos WHERE visitor_id = ? ORDER BY id",
            (visitor_id,),
        ).fetchall()
        return Visitor(
            row["id"],
            row["name"],
            row["date_of_birth"],
            tuple(Photo(p["path"], p["sha256"], bytes(p["embedding"])) for p in photos),
        )

    def visitor_list(self, prisoner_id: str) -> tuple[str, ...]:
        rows = self.db.execute(
            "SELECT visitor_id FROM visitor_list WHERE prisoner_id = ? ORDER BY visitor_id", (prisoner_id,)
        ).fetchall()
        return tuple(r[0] for r in rows)

    # -- bookings and calls -------------------------------------------------------------------

    def overlapping(self, prisoner_id: str, starts_at: float, ends_at: float) -> str | None:
        """The call id of a booking of this prisoner that overlaps [starts_at, ends_at), if any."""
        row = self.db.execute(
            "SELECT call_id FROM bookings WHERE prisoner_id = ? AND starts_at < ? AND ends_at > ? "
            "ORDER BY starts_at LIMIT 1",
            (prisoner_id, ends_at, starts_at),
        ).fetchone()
        return None if row is None else str(row[0])

    def count_bookings(self, prisoner_id: str, start: float, end: float) -> int:
        """Bookings of this prisoner starting in [start, end)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM bookings WHERE prisoner_id = ? AND starts_at >= ? AND starts_at < ?",
            (prisoner_id, start, end),
        ).fetchone()
        return int(row[0])

    def add_booking(self, booking: BookingRow) -> None:
        """Insert a booking (rules already checked by the caller, in this same transaction)."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM bookings WHERE call_id = ?", (booking.call_id,)).fetchone():
                raise StoreError(f"call {booking.call_id} is already booked")
            db.execute(
                "INSERT INTO bookings (call_id, prisoner_id, prison, starts_at, ends_at, starts_iso,"
                " ends_iso, document, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    booking.call_id,
                    booking.prisoner_id,
                    booking.prison,
                    booking.starts_at,
                    booking.ends_at,
                    booking.starts_iso,
                    booking.ends_iso,
                    booking.document,
                    self.clock(),
                ),
            )
            db.executemany(
                "INSERT INTO booking_visitors (call_id, visitor_id, main_caller, position)"
                " VALUES (?, ?, ?, ?)",
                [
                    (booking.call_id, v.visitor_id, int(v.main_caller), i)
                    for i, v in enumerate(booking.visitors)
                ],
            )
            db.execute(
                "INSERT INTO calls (call_id, state, interrupted, updated_at) VALUES (?, 'waiting', 0, ?)",
                (booking.call_id, self.clock()),
            )

    def _booking(self, row: Row) -> BookingRow:
        visitors = self.db.execute(
            "SELECT visitor_id, main_caller FROM booking_visitors WHERE call_id = ? ORDER BY position",
            (row["call_id"],),
        ).fetchall()
        return BookingRow(
            row["call_id"], row["prisoner_id"], row["prison"], row["starts_at"], row["ends_at"],
            row["starts_iso"], row["ends_iso"], row["document"],
            tuple(BookedVisitor(v["visitor_id"], bool(v["main_caller"])) for v in visitors),
        )  # fmt: skip

    def booking(self, call_id: str) -> BookingRow | None:
        row = self.db.execute("SELECT * FROM bookings WHERE call_id = ?", (call_id,)).fetchone()
        return None if row is None else self._booking(row)

    def bookings_between(self, start: float, end: float, prison: str | None = None) -> list[BookingRow]:
        """Bookings overlapping [start, end), optionally of one prison, by start time."""
        sql = "SELECT * FROM bookings WHERE starts_at < ? AND ends_at > ?"
        params: tuple[object, ...] = (end, start)
        if prison is not None:
            sql += " AND prison = ?"
            params += (prison,)
        rows = self.db.execute(sql + " ORDER BY starts_at, call_id", params).fetchall()
        return [self._booking(r) for r in rows]

    def call(self, call_id: str) -> CallRow | None:
        row = self.db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            return None
        return CallRow(row["call_id"], row["state"], bool(row["interrupted"]), row["updated_at"], row["node"])

    def set_call_state(self, call_id: str, state: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE calls SET state = ?, updated_at = ?, node = COALESCE(?, node) WHERE call_id = ?",
                (state, self.clock(), self.node, call_id),
            )

    def mark_interrupted(self) -> list[str]:
        """At start-up: calls left neither waiting nor ended by a dead server are flagged interrupted
        (with a ``node`` name, only the calls this node ran: other nodes' calls are running)."""
        sql = "SELECT call_id FROM calls WHERE state NOT IN ('waiting', 'ended') AND interrupted = 0"
        params: tuple[object, ...] = ()
        if self.node is not None:
            sql, params = sql + " AND node = ?", (self.node,)
        with self.transaction() as db:
            ids = [r[0] for r in db.execute(sql + " ORDER BY call_id", params).fetchall()]
            db.executemany(
                "UPDATE calls SET interrupted = 1, updated_at = ? WHERE call_id = ?",
                [(self.clock(), i) for i in ids],
            )
        return ids

    # -- join tokens --------------------------------------------------------------------------

    def issue_join_token(
        self,
        call_id: str,
        participant: str,
        role: str,
        not_before: float,
        not_after: float,
        *,
        revoke_earlier: bool = True,
    ) -> str:
        """A new random token for one person on one call and its time window (only its hash is kept).

        Earlier tokens of the same person on the same call are revoked, unless ``revoke_earlier`` is
        False (``monitor serve`` printing links again at a restart must not void links handed out)."""
        token = secrets.token_urlsafe(32)
        with self.transaction() as db:
            if revoke_earlier:
                db.execute(
                    "UPDATE join_tokens SET revoked_at = ? WHERE call_id = ? AND participant = ?"
                    " AND revoked_at IS NULL",
                    (self.clock(), call_id, participant),
                )
            db.execute(
                "INSERT INTO join_tokens (token_sha256, call_id, participant, role, not_before, not_after)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_digest(token), call_id, participant, role, not_before, not_after),
            )
        return token

    def join_token(self, token: str) -> JoinToken | None:
        """The token's grant when it is known, not revoked and inside its time window; else None."""
        row = self.db.execute(
            "SELECT * FROM join_tokens WHERE token_sha256 = ?", (token_digest(token),)
        ).fetchone()
        now = self.clock()
        if row is None or row["revoked_at"] is not None or not row["not_before"] <= now < row["not_after"]:
            return None
        return JoinToken(row["call_id"], row["participant"], row["role"], row["not_before"], row["not_after"])

    def join_token_status(self, token: str) -> tuple[JoinToken | None, str]:
        """Why a token does or does not work now: (grant, "ok"), or (None or the grant, one of
        "unknown", "revoked", "too_early", "expired"). Only for a holder of the token: it names
        nothing that the token itself does not grant."""
        row = self.db.execute(
            "SELECT * FROM join_tokens WHERE token_sha256 = ?", (token_digest(token),)
        ).fetchone()
        if row is None:
            return None, "unknown"
        grant = JoinToken(
            row["call_id"], row["participant"], row["role"], row["not_before"], row["not_after"]
        )
        now = self.clock()
        if row["revoked_at"] is not None:
            return grant, "revoked"
        if now < row["not_before"]:
            return grant, "too_early"
        if now >= row["not_after"]:
            return grant, "expired"
        return grant, "ok"

    def revoke_join_tokens(self, call_id: str, participant: str) -> int:
        """Withdraw every working join token of one person on one call; how many there were."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE join_tokens SET revoked_at = ? WHERE call_id = ? AND participant = ?"
                " AND revoked_at IS NULL AND not_after > ?",
                (self.clock(), call_id, participant, self.clock()),
            )
            return cursor.rowcount

    def revoke_join_token(self, token: str) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE join_tokens SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
                (self.clock(), token_digest(token)),
            )
        return cursor.rowcount == 1
