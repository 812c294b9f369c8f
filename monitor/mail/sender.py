"""The background sender: sends what the mail queue holds, retries, gives up visibly.

Theory of operation
-------------------
One task on the server's event loop. Each pass reads the messages that are due from the store
(``monitor.store.mail_queue``; the reads and the small writes that record outcomes are quick and
stay on the loop, like every other store access of the server), composes them, and hands the
batch to the transport in a thread of its own: the network (SMTP) and the disk (the outbox's
fsync) never hold the loop, however slow they are. When the thread answers, each message is
marked sent, or due again after a back-off (``Backoff``: 30 s, doubling, at most 30 min apart),
or, after the last attempt, failed: then a ``mail_failed`` audit record (actor ``system``, the
prison given when it was queued) puts it on that prison's staff console, and the log says it.

Between passes the task sleeps until the earliest queued message is due, at most ``poll_s`` (the
store is the queue: a message queued by another process, e.g. an admin command, is found by the
next poll), or until :meth:`MailSender.wake` (the family pages may call it after queueing).
:meth:`stop` lets a batch that is being sent finish (within a bound) so its outcome is recorded;
one cut off by the bound stays queued and is sent again at the next start (at least once, with
the same Message-ID). One sender sends per database: on PostgreSQL, where several nodes share it,
the one that holds the sender's role (``Store.holds``); the others' wait, and one takes over within
a poll when that node stops or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from monitor.mail.messages import compose
from monitor.mail.transport import Outgoing, Transport, error_text
from monitor.store import mail_queue
from monitor.store.audit import AuditLog
from monitor.store.database import Store

log = logging.getLogger(__name__)

ROLE = "mail-sender"  # one sender per database (Store.holds): a second node's waits to take over
POLL_S = 2.0
BATCH = 20
STOP_S = 5.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Attempt ``n`` (1-based) that failed waits ``first_s * factor**(n-1)`` (at most ``max_s``)
    before the next; after ``attempts`` attempts the message is failed."""

    first_s: float = 30.0
    factor: float = 2.0
    max_s: float = 1800.0
    attempts: int = 8

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class MailStats:
    """Counts since this sender started, and what waits in the queue now."""

    written: int  # delivered to the outbox folder
    sent: int  # accepted by the SMTP server
    retried: int  # failed attempts that will be tried again
    failed: int  # given up after the last attempt
    queued: int  # waiting (as of the last pass)
    transport: str  # "outbox" or "smtp"


def _in_thread(function: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``function`` in a daemon thread (one stuck on a dead server cannot hold up the
    process's exit); the future resolves on the loop when it returns."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = function(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="mail-send", daemon=True).start()
    return future


class MailSender:
    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        mail_from: str,
        backoff: Backoff | None = None,
        poll_s: float = POLL_S,
        batch: int = BATCH,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.mail_from = mail_from
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        self.batch = batch
        self.audit = audit or AuditLog(store)
        self.counts = {"written": 0, "sent": 0, "retried": 0, "failed": 0}
        self.queued = 0
        self.send_threads: set[str] = set()  # names of the threads that ran a send (tests read it)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def describe(self) -> str:
        return self.transport.describe()

    def start(self) -> None:
        """Start sending (needs a running event loop)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mail-sender")

    def wake(self) -> None:
        """Look at the queue now (something was just queued)."""
        self._wake.set()

    async def stop(self, timeout: float = STOP_S) -> None:
        """Stop after the batch being sent, if any (waiting at most ``timeout``)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.wait({task}, timeout=timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def stats(self) -> MailStats:
        kind = "outbox" if self.transport.delivered == "written" else "smtp"
        c = self.counts
        return MailStats(c["written"], c["sent"], c["retried"], c["failed"], self.queued, kind)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.send_due()
            except Exception:  # a store hiccup must not end the sender: the messages wait in the store
                log.exception("mail sender: a pass failed; trying again in %.0f s", self.poll_s)
                await self._sleep(self.poll_s)
                continue
            if handled >= self.batch or self._stopping:
                continue  # more may be due at once
            await self._sleep(self._until_due())

    def _until_due(self) -> float:
        """Seconds until the earliest queued message is due, at most ``poll_s``."""
        earliest = mail_queue.next_due_at(self.store)
        if earliest is None:
            return self.poll_s
        return min(self.poll_s, max(0.0, earliest - self.store.clock()))

    async def _sleep(self, pause: float) -> None:
        """``pause`` seconds, or until :meth:`wake`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), pause)
        self._wake.clear()

    async def send_due(self) -> int:
        """One pass: send every message that is due (at most one batch); how many were tried. On a
        database shared by several nodes only the node holding the sender's role sends."""
        if not self.store.holds(ROLE):
            return 0
        now = self.store.clock()
        rows = []
        for row in mail_queue.due(self.store, now, self.batch):
            if row.not_after is not None and now >= row.not_after:
                mail_queue.mark_too_late(self.store, row.id)
                log.warning("mail %d (%s) withdrawn: too late to send", row.id, row.kind)
            else:
                rows.append(row)
        if not rows:
            self.queued = mail_queue.counts(self.store)["queued"]
            return 0
        tried = len(rows)
        batch: list[Outgoing] = []
        sendable: list[mail_queue.QueuedMail] = []
        for row in rows:
            try:
                message = compose(
                    subject=row.subject,
                    text=row.text,
                    html_part=row.html,
                    to=row.recipient,
                    mail_from=self.mail_from,
                    message_token=row.message_token,
                    created_at=row.created_at,
                )
            except Exception as exc:  # one bad row must not hold up the others: it fails on its own
                await self._record(row, f"cannot compose the message: {error_text(exc)}")
                continue
            batch.append(Outgoing(row.id, row.kind, row.message_token, row.created_at, message))
            sendable.append(row)
        if batch:
            try:
                outcomes = await _in_thread(lambda: self._send(batch))
            except Exception as exc:  # the transport itself broke: every message of the batch failed
                outcomes = [error_text(exc)] * len(batch)
            for row, outcome in zip(sendable, outcomes, strict=True):
                await self._record(row, outcome)
        self.queued = mail_queue.counts(self.store)["queued"]
        return tried

    def _send(self, batch: list[Outgoing]) -> list[str | None]:
        self.send_threads.add(threading.current_thread().name)
        return self.transport.send(batch)

    async def _record(self, row: mail_queue.QueuedMail, outcome: str | None) -> None:
        if outcome is None:
            mail_queue.mark_sent(self.store, row.id)
            self.counts[self.transport.delivered] += 1
            return
        # the address is personal data: the server's reply may quote it
        reason = re.sub(re.escape(row.recipient), "recipient", outcome, flags=re.IGNORECASE)
        attempt = row.attempts + 1
        if attempt < self.backoff.attempts:
            delay = self.backoff.delay(attempt)
            mail_queue.mark_retry(self.store, row.id, reason, self.store.clock() + delay)
            self.counts["retried"] += 1
            log.warning(
                "mail %d (%s), attempt %d of %d failed: %s; trying again in %.0f s",
                row.id,
                row.kind,
                attempt,
                self.backoff.attempts,
                reason,
                delay,
            )
            return
        mail_queue.mark_failed(self.store, row.id, reason)
        self.counts["failed"] += 1
        log.error("mail %d (%s) failed after %d attempts, given up: %s", row.id, row.kind, attempt, reason)
        what = row.kind.replace("_", " ")
        detail = f"An email to a family ({what}) could not be sent after {attempt} attempts: {reason}"
        try:
            await self.audit.append_async(
                "mail_failed",
                {"mail_id": row.id, "message": row.kind, "attempts": attempt, "detail": detail},
                prison=row.prison,
                call_id=row.call_id,
                actor="system",
            )
        except Exception:
            log.exception("mail %d: the mail_failed audit record could not be written", row.id)
