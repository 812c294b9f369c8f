"""The append-only audit log: a keyed hash chain of every state change, alert, warning, staff
action and join/leave, with evidence frames on disk referenced by their SHA-256.

Theory of operation
-------------------
Record ``n`` stores ``hash_n = HMAC-SHA256(key, hash_{n-1} + canonical_json(record_n))`` where the
record is its id, time, prison, call, kind, actor, data and evidence hash, and ``hash_0`` is 64
zeros. The key lives outside the database and every commit is anchored in a checkpoint file
outside it (:mod:`monitor.store.audit_chain`): changing, removing, inserting or re-chaining any
record breaks the chain or disagrees with a checkpoint, and cutting records off the end leaves
fewer records than the checkpoints counted, so :meth:`AuditLog.verify` names the first broken
record or says how many are missing after which. Triggers in the schema refuse UPDATE and DELETE
on the table; the chain and the checkpoints catch whoever drops them.

A database from before keyed chains (migration 002) holds a plain SHA-256 chain. The first record
written to it keys the chain: the plain chain is verified, every hash is recomputed with the key
(the only UPDATE the triggers allow, and only until the chain is keyed), and the plain head is kept
in ``audit_chain`` for comparison with copies taken before.

Appending reads the head and inserts the next record inside one write transaction (one writer
at a time: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's write lock, see :mod:`monitor.store.sql`), so
concurrent writers (processes, and nodes sharing a PostgreSQL database) serialise into one strict
sequence and a killed writer leaves the chain whole. An
evidence frame is written to its content-addressed file (temporary file, fsync, rename) *before*
the record that references it commits. A ``state`` record also moves the ``calls`` row in the same
transaction, so the board and the log cannot disagree. The checkpoint is appended after the commit.

On the server's event loop records go through :meth:`AuditLog.submit` / :meth:`AuditLog.append_async`:
with an :class:`monitor.store.audit_writer.AuditWriter` they are written by its thread, in submission
order, and the returned future resolves once the record is committed (so nothing the loop is told
was written can be lost; see that module, also for what happens while the disk is full). Each
completed write wakes :meth:`AuditLog.wait_change`, which the console's alert feed waits on before
reading the new records back from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from monitor.store import audit_verify
from monitor.store.audit_chain import AuditKey, Checkpoints, checkpoint_path, keyed_hash, load_key
from monitor.store.audit_record import (
    GENESIS,
    OTHER_KINDS,
    TIMELINE_KINDS,
    AuditRecord,
    StoreHealth,
    Verification,
    canonical_json,
    check_record,
    record_of,
)
from monitor.store.database import Store
from monitor.store.sql import Connection, DatabaseError

log = logging.getLogger(__name__)


class RecordWriter(Protocol):
    """What writes records off the event loop (``monitor.store.audit_writer.AuditWriter``)."""

    def submit(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        prison: str,
        call_id: str | None,
        actor: str,
        evidence: bytes | None,
    ) -> concurrent.futures.Future[AuditRecord]: ...

    def close(self, timeout: float = 30.0) -> None: ...

    def health(self) -> StoreHealth: ...

    def on_health(self, callback: Callable[[StoreHealth], None]) -> None: ...


class AuditLog:
    def __init__(self, store: Store, writer: RecordWriter | None = None) -> None:
        self.store = store
        self.writer = writer
        self._changed = asyncio.Event()
        self._latest: asyncio.Future[AuditRecord] | None = None  # the newest record submitted
        self._committed: list[Callable[[AuditRecord], None]] = []  # told of each record this log commits
        self._key: AuditKey | None = None
        self._chain: tuple[str, str] | None = None  # (key id, chain id) once read keyed
        self._keyed_in = -1  # the store transaction that keyed the chain (not cached before its commit)
        self.anchor_failures = 0  # checkpoints that could not be written (logged)

    # -- from the event loop ------------------------------------------------------------------

    def submit(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        prison: str,
        call_id: str | None = None,
        actor: str = "policy",
        evidence: bytes | None = None,
    ) -> asyncio.Future[AuditRecord]:
        """Queue one record for the writer thread (or, without one, write it now); the future
        resolves when it is committed. Records are committed in the order they were submitted."""
        check_record(kind, prison, data, call_id, actor)
        loop = asyncio.get_running_loop()
        if self.writer is None:
            done: asyncio.Future[AuditRecord] = loop.create_future()
            done.set_result(
                self.append(kind, data, prison=prison, call_id=call_id, actor=actor, evidence=evidence)
            )
            self._notify(done)
            return done
        queued = self.writer.submit(
            kind, data, prison=prison, call_id=call_id, actor=actor, evidence=evidence
        )
        future = asyncio.wrap_future(queued, loop=loop)
        future.add_done_callback(self._notify)
        self._latest = future
        return future

    async def settled(self) -> None:
        """Return once every record submitted so far is committed (or has failed): records are
        committed in submission order, so waiting for the latest is enough. A reader that must see
        what a call has just published (the state change *and* the alert after it) waits here."""
        latest = self._latest
        if latest is not None and not latest.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(latest)

    async def append_async(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        prison: str,
        call_id: str | None = None,
        actor: str = "policy",
        evidence: bytes | None = None,
    ) -> AuditRecord:
        """:meth:`append` for the event loop; returns once the record is on disk. A caller that is
        cancelled meanwhile does not cancel the write."""
        future = self.submit(kind, data, prison=prison, call_id=call_id, actor=actor, evidence=evidence)
        return await asyncio.shield(future)

    def changes(self) -> asyncio.Event:
        """Take this before reading records; :meth:`wait_change` then returns as soon as a record
        written after it (by this log) is committed."""
        return self._changed

    async def wait_change(self, marker: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(marker.wait(), timeout)

    def _notify(self, future: asyncio.Future[AuditRecord]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.wake()
            for listener in list(self._committed):
                try:
                    listener(future.result())
                except Exception:  # a listener's failure must not stop the waiters or the others
                    logging.getLogger(__name__).exception("audit commit listener %r failed", listener)

    def wake(self) -> None:
        """Wake every :meth:`wait_change`: a record was committed (by this log, or by another
        server on the same database, as a cluster's bus tells)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def on_committed(self, listener: Callable[[AuditRecord], None]) -> None:
        """Call ``listener`` on the event loop with every record this log commits from now on."""
        self._committed.append(listener)

    def health(self) -> StoreHealth:
        """Whether this log's records are being written (always ok without a writer thread: then
        every append is written, or fails, at once)."""
        return self.writer.health() if self.writer is not None else StoreHealth()

    def on_health(self, callback: Callable[[StoreHealth], None]) -> None:
        """Call ``callback`` on this event loop whenever :meth:`health` changes (the writer's
        thread notices first)."""
        if self.writer is None:
            return
        loop = asyncio.get_running_loop()

        def relay(health: StoreHealth) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, health)

        self.writer.on_health(relay)

    # -- anywhere ---------------------------------------------------------------------------------

    @property
    def evidence_dir(self) -> Path:
        return self.store.data_dir / "evidence"

    def evidence_path(self, digest: str) -> Path:
        return self.evidence_dir / digest[:2] / f"{digest}.jpg"

    def save_evidence(self, jpeg: bytes) -> str:
        """Write an evidence frame to its content-addressed file (durably); return its SHA-256."""
        digest = hashlib.sha256(jpeg).hexdigest()
        path = self.evidence_path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(jpeg)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError:  # a full disk: no partial file is left behind
            tmp.unlink(missing_ok=True)
            raise
        return digest

    def append(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        prison: str,
        call_id: str | None = None,
        actor: str = "policy",
        evidence: bytes | None = None,
    ) -> AuditRecord:
        """Append one record (and its evidence frame) atomically; returns it with its id and hash.
        Blocks on the commit (fsync): on the event loop use :meth:`append_async`. Inside an outer
        transaction it is committed, and checkpointed, with that transaction."""
        check_record(kind, prison, data, call_id, actor)  # refused before taking the lock
        digest = self.save_evidence(evidence) if evidence is not None else None
        store = self.store
        outer = store.db.in_transaction
        with store.transaction() as db:
            key = self._key_for_append(db)
            if store.audit_head is not None and store.audit_head[0] == store.transactions:
                _, prev_id, prev_hash = store.audit_head  # appended earlier in this transaction
            else:
                head = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
                prev_id, prev_hash = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
            new_id, at = prev_id + 1, store.clock()
            unhashed = AuditRecord(new_id, at, prison, call_id, kind, actor, data, digest, prev_hash, "")
            record = dataclasses.replace(
                unhashed, hash=keyed_hash(key.secret, prev_hash, canonical_json(unhashed.body()))
            )
            db.execute(
                "INSERT INTO audit (id, at, prison, call_id, kind, actor, data, evidence, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    at,
                    prison,
                    call_id,
                    kind,
                    actor,
                    canonical_json(data),
                    digest,
                    prev_hash,
                    record.hash,
                ),
            )
            store.audit_head = (store.transactions, new_id, record.hash)
            if kind == "state" and call_id is not None and isinstance(data.get("state"), str):
                db.execute(
                    "UPDATE calls SET state = ?, updated_at = ?, node = COALESCE(?, node) WHERE call_id = ?",
                    (data["state"], at, store.node, call_id),
                )
        if outer:  # checkpointed once the caller's transaction commits (the newest record)
            store.after_commit(self, functools.partial(self.anchor, record))
        else:
            self.anchor(record)
        return record

    # -- the key and the anchor -----------------------------------------------------------------

    def _key_for_append(self, db: Connection) -> AuditKey:
        """The key to chain the next record with (inside the append's transaction); keys a chain
        from before keyed chains first."""
        if self._chain is None:
            row = audit_verify.chain_row(self.store)
            if row["key_id"] is None:
                key = load_key(self.store.path, create=True)
                assert key is not None
                audit_verify.key_chain(self.store, db, key)
                self._keyed_in = self.store.transactions
                return key
            if self._keyed_in == self.store.transactions:  # keyed in this transaction: may roll back
                return self._stored_key(row["key_id"])
            self._chain = (row["key_id"], row["chain_id"])  # fixed for good once keyed (a trigger)
        return self._stored_key(self._chain[0])

    def _stored_key(self, key_id: str) -> AuditKey:
        if self._key is None or self._key.key_id != key_id:
            self._key = audit_verify.stored_key(self.store.path, key_id)
        return self._key

    def ensure_keyed(self) -> None:
        """Key a chain from before keyed chains now (``monitor serve`` does at start)."""
        with self.store.transaction() as db:
            if audit_verify.chain_row(self.store)["key_id"] is None:
                key = load_key(self.store.path, create=True)
                assert key is not None
                audit_verify.key_chain(self.store, db, key)

    def anchor(self, record: AuditRecord) -> None:
        """Checkpoint ``record`` (committed) as the head of ``record.id`` records. A checkpoint
        that cannot be written is logged and counted: the records are committed, and the next
        checkpoint covers them."""
        try:
            chain_id = self._chain[1] if self._chain else audit_verify.chain_row(self.store)["chain_id"]
            Checkpoints(checkpoint_path(self.store.path), chain_id).checkpoint(record.id, record.hash)
        except Exception as exc:  # never raised: the records are committed whatever happens here
            self.anchor_failures += 1
            log.error("audit checkpoint of record %d not written: %s", record.id, exc)

    def note_lost(self, records: int, why: str) -> None:
        """Records given up on (never written): noted in the checkpoint file, so `audit verify`
        fails, and logged either way."""
        log.critical("%d audit records were not written: %s", records, why)
        try:
            chain_id = audit_verify.chain_row(self.store)["chain_id"] or "unkeyed"
            Checkpoints(checkpoint_path(self.store.path), chain_id).lost(records, why)
        except (OSError, DatabaseError) as exc:
            log.critical("and the loss could not be noted in the checkpoint file either: %s", exc)

    def get(self, audit_id: int) -> AuditRecord | None:
        row = self.store.db.execute("SELECT * FROM audit WHERE id = ?", (audit_id,)).fetchone()
        return None if row is None else record_of(row)

    def since(self, prison: str, after_id: int, limit: int = 500) -> list[AuditRecord]:
        """Records of one prison with id > after_id, oldest first."""
        rows = self.store.db.execute(
            "SELECT * FROM audit WHERE prison = ? AND id > ? ORDER BY id LIMIT ?", (prison, after_id, limit)
        ).fetchall()
        return [record_of(r) for r in rows]

    def for_call(self, call_id: str) -> list[AuditRecord]:
        rows = self.store.db.execute(
            "SELECT * FROM audit WHERE call_id = ? ORDER BY id", (call_id,)
        ).fetchall()
        return [record_of(r) for r in rows]

    def first_since(self, prison: str, at: float) -> int | None:
        """The id of this prison's first record written at or after ``at``."""
        row = self.store.db.execute(
            "SELECT MIN(id) FROM audit WHERE prison = ? AND at >= ?", (prison, at)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def head_id(self) -> int:
        row = self.store.db.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()
        return int(row[0])

    def evidence_prison(self, digest: str) -> set[str]:
        """The prisons whose records reference this evidence frame."""
        rows = self.store.db.execute(
            "SELECT DISTINCT prison FROM audit WHERE evidence = ?", (digest,)
        ).fetchall()
        return {r[0] for r in rows}

    def verify(self, *, check_evidence: bool = True, checkpoints: Path | None = None) -> Verification:
        """Walk the whole chain and check it against its checkpoint file (``checkpoints``, default
        beside the database); name the first record that does not hold, or what is missing."""
        return audit_verify.verify(self.store, self.evidence_path if check_evidence else None, checkpoints)


__all__ = [
    "GENESIS",
    "OTHER_KINDS",
    "TIMELINE_KINDS",
    "AuditLog",
    "AuditRecord",
    "RecordWriter",
    "StoreHealth",
    "Verification",
    "canonical_json",
]
