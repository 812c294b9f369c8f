"""The append-only audit log: a hash chain of every state change, alert, warning, staff action and
join/leave, with evidence frames on disk referenced by their SHA-256.

Theory of operation
-------------------
Record ``n`` stores ``hash_n = SHA-256(hash_{n-1} + canonical_json(record_n))`` where the record is
its id, time, prison, call, kind, actor, data and evidence hash, and ``hash_0`` is 64 zeros.
Changing, removing or inserting any record breaks every hash from there on, so :func:`verify` names
the first broken record. Triggers in the schema refuse UPDATE and DELETE on the table; the chain
catches whoever drops them. (Cutting records off the *end* leaves a valid shorter chain: compare the
head hash that ``monitor audit verify`` prints with a copy kept elsewhere.)

Appending reads the head and inserts the next record inside one ``BEGIN IMMEDIATE`` transaction,
so concurrent writers (processes too) serialise and a killed writer leaves the chain whole. An
evidence frame is written to its content-addressed file (temporary file, fsync, rename) *before*
the record that references it commits. A ``state`` record also moves the ``calls`` row in the same
transaction, so the board and the log cannot disagree.

On the server's event loop records go through :meth:`AuditLog.submit` / :meth:`AuditLog.append_async`:
with an :class:`monitor.store.audit_writer.AuditWriter` they are written by its thread, in submission
order, and the returned future resolves once the record is committed (so nothing the loop is told
was written can be lost; see that module). Each completed write wakes :meth:`AuditLog.wait_change`,
which the console's alert feed waits on before reading the new records back from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from monitor.store.database import Store, StoreError
from policies.text import encodable

GENESIS = "0" * 64

#: Record kinds the console shows: the timeline kinds plus what people and devices did.
TIMELINE_KINDS = ("state", "alert", "warning", "warning_cleared", "identity", "recheck", "event")
OTHER_KINDS = ("staff_action", "joined", "left", "login")


def canonical_json(value: Any) -> str:
    """The one encoding of a record (stored and hashed). A lone surrogate (refused by the wire
    parsers) gets JSON's ASCII escapes instead, so a record can always be hashed and stored."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if encodable(text):
        return text
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: float
    prison: str
    call_id: str | None
    kind: str
    actor: str
    data: dict[str, Any]
    evidence: str | None
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """What the hash covers."""
        return {
            "id": self.id,
            "at": self.at,
            "prison": self.prison,
            "call_id": self.call_id,
            "kind": self.kind,
            "actor": self.actor,
            "data": self.data,
            "evidence": self.evidence,
        }

    def public(self) -> dict[str, Any]:
        """The form sent to the console (no hashes)."""
        return {**self.body(), "audit_id": self.id}


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    head: str
    broken_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _check(kind: str, prison: str, data: dict[str, Any]) -> None:
    if not kind or not prison:
        raise StoreError("an audit record needs a kind and a prison")
    canonical_json(data)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        row["id"],
        row["at"],
        row["prison"],
        row["call_id"],
        row["kind"],
        row["actor"],
        json.loads(row["data"]),
        row["evidence"],
        row["prev_hash"],
        row["hash"],
    )


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


class AuditLog:
    def __init__(self, store: Store, writer: RecordWriter | None = None) -> None:
        self.store = store
        self.writer = writer
        self._changed = asyncio.Event()

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
        _check(kind, prison, data)
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
        return future

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
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

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
        with open(tmp, "wb") as f:
            f.write(jpeg)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
        Blocks on the commit (fsync): on the event loop use :meth:`append_async`."""
        _check(kind, prison, data)  # refuse what cannot be hashed before taking the lock
        digest = self.save_evidence(evidence) if evidence is not None else None
        store = self.store
        with store.transaction() as db:
            head = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            prev_id, prev_hash = (0, GENESIS) if head is None else (int(head[0]), str(head[1]))
            new_id, at = prev_id + 1, store.clock()
            body = {
                "id": new_id,
                "at": at,
                "prison": prison,
                "call_id": call_id,
                "kind": kind,
                "actor": actor,
                "data": data,
                "evidence": digest,
            }
            digest_hex = chain_hash(prev_hash, body)
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
                    digest_hex,
                ),
            )
            if kind == "state" and call_id is not None and isinstance(data.get("state"), str):
                db.execute(
                    "UPDATE calls SET state = ?, updated_at = ? WHERE call_id = ?",
                    (data["state"], at, call_id),
                )
        return AuditRecord(new_id, at, prison, call_id, kind, actor, data, digest, prev_hash, digest_hex)

    def get(self, audit_id: int) -> AuditRecord | None:
        row = self.store.db.execute("SELECT * FROM audit WHERE id = ?", (audit_id,)).fetchone()
        return None if row is None else _record(row)

    def since(self, prison: str, after_id: int, limit: int = 500) -> list[AuditRecord]:
        """Records of one prison with id > after_id, oldest first."""
        rows = self.store.db.execute(
            "SELECT * FROM audit WHERE prison = ? AND id > ? ORDER BY id LIMIT ?", (prison, after_id, limit)
        ).fetchall()
        return [_record(r) for r in rows]

    def for_call(self, call_id: str) -> list[AuditRecord]:
        rows = self.store.db.execute(
            "SELECT * FROM audit WHERE call_id = ? ORDER BY id", (call_id,)
        ).fetchall()
        return [_record(r) for r in rows]

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

    def verify(self, *, check_evidence: bool = True) -> Verification:
        """Walk the whole chain; name the first record that does not hold."""
        prev_hash, prev_id, count = GENESIS, 0, 0
        for row in self.store.db.execute("SELECT * FROM audit ORDER BY id"):
            count += 1
            call = f", {row['call_id']}" if row["call_id"] else ""
            where = f"audit record {row['id']} ({row['kind']}{call})"
            if row["id"] != prev_id + 1:
                return Verification(
                    count,
                    prev_hash,
                    row["id"],
                    f"{where}: records {prev_id + 1}..{row['id'] - 1} are missing",
                )
            if row["prev_hash"] != prev_hash:
                return Verification(
                    count,
                    prev_hash,
                    row["id"],
                    f"{where}: does not link to record {prev_id} "
                    "(a record before it was changed or replaced)",
                )
            try:
                record = _record(row)
                computed = chain_hash(prev_hash, record.body())
            except (ValueError, TypeError):
                return Verification(count, prev_hash, row["id"], f"{where}: data is not valid JSON (altered)")
            if computed != row["hash"]:
                return Verification(
                    count,
                    prev_hash,
                    row["id"],
                    f"{where}: contents do not match its hash (the record was altered)",
                )
            if check_evidence and record.evidence is not None:
                path = self.evidence_path(record.evidence)
                try:
                    actual = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    return Verification(
                        count, prev_hash, row["id"], f"{where}: evidence file {path} is missing"
                    )
                if actual != record.evidence:
                    return Verification(
                        count, prev_hash, row["id"], f"{where}: evidence file {path} was altered"
                    )
            prev_hash, prev_id = row["hash"], row["id"]
        return Verification(count, prev_hash)
