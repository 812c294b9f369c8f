"""One thread that writes the server's audit records, so no SQLite commit or fsync runs on the loop.

Theory of operation
-------------------
The event loop hands each record to :meth:`AuditWriter.submit` and gets a future back. One writer
thread, with its own SQLite connection to the same file (``sqlite3`` connections must not be shared
between threads mid-transaction), takes the queued records in submission order and appends them
(``AuditLog.append``: evidence file written and fsynced, then the record) inside one transaction
per batch of whatever is queued, up to ``BATCH``. The futures are resolved only after ``COMMIT``
returns, and the connection runs ``synchronous=FULL``: a record acknowledged to its caller is on
disk. Order is the submission order because there is one thread and one queue; the hash chain is
computed inside the write transaction, so writers in other processes (admin commands) still
interleave safely. If a batch fails, it is rolled back and its records are retried one by one, so
one bad record fails alone. The thread starts on the first record and exits after ``IDLE_S``
without work (closing its connection); :meth:`close` writes what is queued and stops it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import Clock, Store

log = logging.getLogger(__name__)

IDLE_S = 1.0
BATCH = 64


@dataclass
class _Job:
    kind: str
    data: dict[str, Any]
    prison: str
    call_id: str | None
    actor: str
    evidence: bytes | None
    future: concurrent.futures.Future[AuditRecord] = field(default_factory=concurrent.futures.Future)


class AuditWriter:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.written = 0

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
        job = _Job(kind, data, prison, call_id, actor, evidence)
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer")
                self._thread.start()
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread (new records start it again)."""
        with self._lock:
            thread, self._closing = self._thread, True
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._closing = False

    def _next(self, first: bool) -> _Job | None:
        """The next queued record; None when there is none (after ``IDLE_S`` for the first of a
        batch, at once for the rest) and, for the first, the thread has been released."""
        while True:
            try:
                if not first:
                    return self._queue.get_nowait()
                return self._queue.get(timeout=0.05 if self._closing else IDLE_S)
            except queue.Empty:
                if not first:
                    return None
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return None

    def _run(self) -> None:
        try:
            store = Store(self.path, clock=self.clock)
        except Exception as exc:  # every record waiting gets the reason; the next one tries again
            log.error("audit writer cannot open %s: %s", self.path, exc)
            self._fail_queued(exc)
            return
        audit = AuditLog(store)
        try:
            while True:
                job = self._next(first=True)
                if job is None:
                    return
                batch = [job]
                while len(batch) < BATCH and (more := self._next(first=False)) is not None:
                    batch.append(more)
                self._write(store, audit, batch)
        finally:
            store.close()

    def _write(self, store: Any, audit: Any, batch: list[_Job]) -> None:
        try:
            with store.transaction():
                records = [self._append(audit, job) for job in batch]
        except Exception as exc:
            if len(batch) == 1:
                job = batch[0]
                log.error("audit record %s of call %s not written: %s", job.kind, job.call_id, exc)
                job.future.set_exception(exc)
                return
            for job in batch:  # one bad record must fail alone
                self._write(store, audit, [job])
            return
        for job, record in zip(batch, records, strict=True):
            self.written += 1
            job.future.set_result(record)

    @staticmethod
    def _append(audit: Any, job: _Job) -> AuditRecord:
        record: AuditRecord = audit.append(
            job.kind, job.data, prison=job.prison, call_id=job.call_id, actor=job.actor, evidence=job.evidence
        )
        return record

    def _fail_queued(self, error: Exception) -> None:
        with self._lock:
            while True:
                try:
                    self._queue.get_nowait().future.set_exception(error)
                except queue.Empty:
                    break
            self._thread = None
