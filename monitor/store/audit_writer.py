"""One thread that writes the server's audit records: off the event loop, in order, bounded, and
never losing one.

Theory of operation
-------------------
The event loop hands each record to :meth:`AuditWriter.submit` and gets a future back. One writer
thread, with its own connection to the same database (a connection must not be shared between
threads mid-transaction), appends the queued records in submission order (``AuditLog.append``:
evidence file written and fsynced, then the record), one transaction per batch of up to ``BATCH``,
then checkpoints the new head outside the database (``audit_chain.py``). A future is resolved only
after ``COMMIT`` returns, and SQLite runs ``synchronous=FULL`` (PostgreSQL flushes its log at
commit unless its operator turned ``synchronous_commit`` off): a record acknowledged to its caller
is on disk. Order is the submission order because there is one thread and one queue; the chain is
computed inside the write transaction, so writers in other processes (admin commands) and on
other nodes still interleave safely.

*Bounded, with back-pressure.* The queue holds at most ``max_records`` records and ``max_bytes``
bytes (evidence frames included), counting the batch being written. A submit that finds it full
waits until the writer has made room: on the server that blocks the event loop, which then stops
reading the devices' sockets, so the senders are slowed rather than any record dropped. Floods are
thinned before they get here (the policy counts repeated capture attempts on one alert; client
events are rate-limited per connection), so a working disk makes the loop wait at most a commit.

*Failures.* A batch that fails for a reason that may pass (disk full, an I/O error, the database
locked too long, the connection to PostgreSQL lost, the key or the evidence folder missing:
``OSError``, the database's operational errors, ``StoreError``) is rolled back, the connection
closed, and the same batch retried after a back-off (``retry_first_s`` doubling up to
``retry_max_s``) for as long as it takes; its records and everything submitted meanwhile stay
queued (bounded as above). Meanwhile :meth:`health` is not ok
and names the calls with records waiting; :meth:`on_health` listeners are told as soon as that
changes, so the calls can pause (``FaultRaised(store_error)``) and staff be told. Health is ok again
once every record submitted before the writes recovered is written. A record that can never be
written (the data are checked at submit, so this is a bug) fails alone: its future gets the error
and the loss is noted in the checkpoint file, so ``monitor audit verify`` fails. :meth:`close`
writes what is queued; if the store is still failing at its deadline, what is left is given up:
each record logged in full (CRITICAL) and the loss noted.

The thread starts on the first record and exits after ``IDLE_S`` without work (closing its connection).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.store.audit import AuditLog, AuditRecord, StoreHealth
from monitor.store.audit_chain import Checkpoints, checkpoint_path
from monitor.store.audit_record import canonical_json, check_record
from monitor.store.database import Clock, Store, StoreError
from monitor.store.sql import DatabaseError, IntegrityError, Location, ProgrammingError, locate

log = logging.getLogger(__name__)

IDLE_S = 1.0
BATCH = 64
MAX_RECORDS = 10_000
MAX_BYTES = 64 * 2**20
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0
_PERMANENT = (IntegrityError, ProgrammingError)


def may_pass(error: BaseException) -> bool:
    """Whether a failed write is worth retrying (the disk, the file system, a lock, the setup)."""
    if isinstance(error, _PERMANENT):
        return False
    return isinstance(error, OSError | DatabaseError | StoreError)


@dataclass
class _Job:
    seq: int
    kind: str
    data: dict[str, Any]
    prison: str
    call_id: str | None
    actor: str
    evidence: bytes | None
    size: int
    future: concurrent.futures.Future[AuditRecord] = field(default_factory=concurrent.futures.Future)

    def describe(self) -> str:
        """The whole record as one JSON line (for the log when it is given up)."""
        return canonical_json(
            {
                "kind": self.kind,
                "prison": self.prison,
                "call_id": self.call_id,
                "actor": self.actor,
                "data": self.data,
                "evidence_bytes": len(self.evidence or b""),
            }
        )


@dataclass(frozen=True, slots=True)
class AuditWriterStats:
    written: int  # records committed
    retried: int  # records whose write failed and was tried again
    failed: int  # records given up (never written)
    queued: int  # records waiting, the batch being written included
    queued_bytes: int
    waits: int  # submits that had to wait for room (back-pressure)
    ok: bool  # records are being written


class AuditWriter:
    def __init__(
        self,
        location: str | Path | Location,
        clock: Clock,
        *,
        node: str | None = None,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.location = locate(location)
        self.node = node
        self.clock = clock
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._bytes = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._give_up = False
        self._seq = 0
        self._failure: str | None = None  # why the last write failed, while failing
        self._since: float | None = None
        self._failing_calls: set[str] = set()
        self._recover_seq: int | None = None  # failing: written up to here, health is ok again
        self._listeners: list[Callable[[StoreHealth], None]] = []
        self.written = 0
        self.retried = 0
        self.failed = 0
        self.waits = 0

    # -- from the event loop (or any thread) ----------------------------------------------------

    def submit(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        prison: str,
        call_id: str | None,
        actor: str,
        evidence: bytes | None,
    ) -> concurrent.futures.Future[AuditRecord]:
        """Queue one record; waits while the queue is full (see the module docstring)."""
        check_record(kind, prison, data, call_id, actor)
        size = len(canonical_json(data)) + len(evidence or b"") + 200
        told: StoreHealth | None = None
        with self._cond:
            waited = False
            while self._queue and (
                len(self._queue) >= self.max_records or self._bytes + size > self.max_bytes
            ):
                if not waited:
                    waited = True
                    self.waits += 1
                    log.warning(
                        "audit queue full (%d records, %d bytes): waiting for the store%s",
                        len(self._queue),
                        self._bytes,
                        f" ({self._failure})" if self._failure else "",
                    )
                self._cond.wait(1.0)
            self._seq += 1
            job = _Job(self._seq, kind, data, prison, call_id, actor, evidence, size)
            self._queue.append(job)
            self._bytes += size
            if self._failure is not None and call_id is not None and call_id not in self._failing_calls:
                self._failing_calls.add(call_id)
                told = self._health_locked()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        if told is not None:
            self._tell(told)
        return job.future

    def health(self) -> StoreHealth:
        with self._cond:
            return self._health_locked()

    def on_health(self, callback: Callable[[StoreHealth], None]) -> None:
        """Call ``callback(health)`` (from whichever thread notices) whenever the health changes:
        the writes fail, more calls have records waiting, or the writes have caught up."""
        self._listeners.append(callback)

    def stats(self) -> AuditWriterStats:
        with self._cond:
            return AuditWriterStats(
                self.written,
                self.retried,
                self.failed,
                len(self._queue),
                self._bytes,
                self.waits,
                self._failure is None,
            )

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread (new records start it again). Records
        still unwritten at the deadline (the store keeps failing) are given up, logged and noted."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                with self._cond:
                    self._give_up = True
                    self._cond.notify_all()
                thread.join(30.0)
        with self._cond:
            self._closing = self._give_up = False

    # -- health ---------------------------------------------------------------------------------

    def _health_locked(self) -> StoreHealth:
        if self._failure is None:
            return StoreHealth(waiting=len(self._queue))
        return StoreHealth(
            False, self._failure, frozenset(self._failing_calls), len(self._queue), self._since
        )

    def _tell(self, health: StoreHealth) -> None:
        for listener in list(self._listeners):
            try:
                listener(health)
            except Exception:
                log.exception("audit health listener failed")

    def _failed(self, batch: list[_Job], error: BaseException) -> None:
        detail = f"audit records cannot be written: {type(error).__name__}: {error}"
        with self._cond:
            self.retried += len(batch)
            first = self._failure is None
            changed = first or self._recover_seq is not None or self._failure != detail
            if first:
                self._since = time.time()
                self._failing_calls = {j.call_id for j in self._queue if j.call_id is not None}
                log.error("%s; retrying (%d records waiting)", detail, len(self._queue))
            self._failure, self._recover_seq = detail, None
            told = self._health_locked() if changed else None
        if told is not None:
            self._tell(told)

    # -- the thread -----------------------------------------------------------------------------

    def _take(self, limit: int) -> list[_Job]:
        """The oldest queued records (left in the queue until written); [] when the thread is to
        stop (nothing came for ``IDLE_S``, or closing), after releasing it."""
        with self._cond:
            while not self._queue:
                idle = self._closing or not self._cond.wait(IDLE_S)
                if idle and not self._queue:
                    self._thread = None
                    return []
            return list(itertools.islice(self._queue, limit))

    def _done(self, batch: list[_Job], records: list[AuditRecord]) -> None:
        told: StoreHealth | None = None
        with self._cond:
            for _ in batch:
                self._bytes -= self._queue.popleft().size
            self.written += len(batch)
            if self._failure is not None:
                if self._recover_seq is None:
                    self._recover_seq = self._seq
                    log.warning("audit records are written again; catching up")
                if batch[-1].seq >= self._recover_seq:
                    self._failure = self._since = self._recover_seq = None
                    self._failing_calls = set()
                    told = self._health_locked()
            self._cond.notify_all()
        for job, record in zip(batch, records, strict=True):
            if not job.future.done():  # a future cancelled by its caller: the record is written anyway
                job.future.set_result(record)
        if told is not None:
            log.warning("audit records caught up: every waiting record is written")
            self._tell(told)

    def _drop(self, jobs: list[_Job] | None, error: BaseException, why: str) -> None:
        """Give ``jobs`` (the oldest queued; None: all, and the thread ends) up: their futures
        fail, each is logged whole, the loss is noted."""
        with self._cond:
            if jobs is None:
                jobs = list(self._queue)
                self._thread = None
            for _ in jobs:
                self._bytes -= self._queue.popleft().size
            self.failed += len(jobs)
            self._cond.notify_all()
        for job in jobs:
            log.critical("audit record not written (%s): %s", why, job.describe())
            if not job.future.done():
                job.future.set_exception(error)
        calls = sorted({j.call_id or "-" for j in jobs})
        self._note_lost(len(jobs), f"{why}; calls {', '.join(calls)}")

    def _note_lost(self, count: int, why: str) -> None:
        try:
            with Store(self.location, clock=self.clock, node=self.node) as store:
                AuditLog(store).note_lost(count, why)
        except Exception:  # the database cannot even be opened: the checkpoint file alone
            log.critical("%d audit records were not written: %s", count, why)
            try:
                Checkpoints(checkpoint_path(self.location.path), "unknown").lost(count, why)
            except OSError as exc:
                log.critical("and the loss could not be noted in the checkpoint file either: %s", exc)

    def _pause(self, delay: float) -> bool:
        """Wait ``delay`` before a retry; False when :meth:`close` gave up meanwhile."""
        with self._cond:
            if not self._give_up:
                self._cond.wait(delay)
            return not self._give_up

    def _run(self) -> None:
        store: Store | None = None
        delay, limit = self.retry_first_s, BATCH
        try:
            while batch := self._take(limit):
                try:
                    if store is None:
                        store = Store(self.location, clock=self.clock, node=self.node)
                    records = self._write(store, batch)
                except Exception as exc:
                    if store is not None:
                        store.close()
                        store = None
                    if not may_pass(exc):
                        if len(batch) > 1:
                            limit = 1  # find the record that fails, and write the others
                            continue
                        self._drop(batch, exc, f"cannot be written: {type(exc).__name__}: {exc}")
                        limit = BATCH
                        continue
                    self._failed(batch, exc)
                    if not self._pause(delay):
                        self._drop(None, exc, "the server stopped while records could not be written")
                        return
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                self._done(batch, records)
                delay, limit = self.retry_first_s, BATCH
        finally:
            if store is not None:
                store.close()

    @staticmethod
    def _write(store: Store, batch: list[_Job]) -> list[AuditRecord]:
        audit = AuditLog(store)
        # committed, then the newest record checkpointed; on PostgreSQL the inserts are pipelined
        with store.transaction(), store.db.pipeline():
            return [
                audit.append(
                    j.kind, j.data, prison=j.prison, call_id=j.call_id, actor=j.actor, evidence=j.evidence
                )
                for j in batch
            ]


__all__ = ["BATCH", "AuditWriter", "AuditWriterStats", "may_pass"]
