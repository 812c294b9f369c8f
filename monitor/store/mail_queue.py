"""The mail queue (table ``mail_queue``, migration 004): messages to families waiting to be sent.

Theory of operation
-------------------
A message is a row from the moment it is queued (:func:`enqueue`, inside the caller's transaction
when there is one, so a booking and its confirmation commit together) until it is ``sent``,
``failed`` (too many attempts) or ``withdrawn`` (a reminder of a cancelled call, or one whose call
has started before it could be sent: ``not_after``). The one sender
(``monitor.mail.sender``) reads what is :func:`due`, tries it, and records the outcome: sent (the
body is emptied: it holds confirmation and join links, which the store otherwise keeps only as
hashes), or one more attempt with the next one not before a given time, or failed. A row left
``queued`` by a stopped server is simply due again at the next start: a message is sent at least
once, and every attempt carries the same Message-ID (``message_token``) so a receiving server can
tell a repeat.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.store.database import Store, StoreError

STATUSES = ("queued", "sent", "failed", "withdrawn")


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    kind: str
    recipient: str
    subject: str
    text: str
    html: str
    prison: str
    call_id: str | None
    message_token: str
    status: str
    attempts: int
    next_attempt_at: float
    not_after: float | None
    last_error: str | None
    created_at: float
    done_at: float | None


_COLUMNS = (
    "id, kind, recipient, subject, text, html, prison, call_id, message_token, status, attempts,"
    " next_attempt_at, not_after, last_error, created_at, done_at"
)


def _row(row: Any) -> QueuedMail:
    return QueuedMail(*row)


def enqueue(
    store: Store,
    *,
    kind: str,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    prison: str,
    call_id: str | None = None,
    send_at: float | None = None,
    not_after: float | None = None,
) -> int:
    """Queue one message (due at ``send_at``, default now; not sent from ``not_after`` on);
    returns its id."""
    if not kind or not recipient or not prison:
        raise StoreError("a queued message needs a kind, a recipient and a prison")
    now = store.clock()
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT INTO mail_queue (kind, recipient, subject, text, html, prison, call_id, message_token,"
            " status, attempts, next_attempt_at, not_after, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?) RETURNING id",
            (
                kind,
                recipient,
                subject,
                text,
                html,
                prison,
                call_id,
                secrets.token_hex(16),
                now if send_at is None else send_at,
                not_after,
                now,
            ),
        )
        mail_id = int(cursor.fetchone()[0])
    return mail_id


def get(store: Store, mail_id: int) -> QueuedMail | None:
    row = store.db.execute(f"SELECT {_COLUMNS} FROM mail_queue WHERE id = ?", (mail_id,)).fetchone()
    return None if row is None else _row(row)


def due(store: Store, now: float, limit: int) -> list[QueuedMail]:
    """Queued messages whose time has come, oldest due first."""
    rows = store.db.execute(
        f"SELECT {_COLUMNS} FROM mail_queue WHERE status = 'queued' AND next_attempt_at <= ?"
        " ORDER BY next_attempt_at, id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [_row(r) for r in rows]


def next_due_at(store: Store) -> float | None:
    """When the earliest queued message is due (None: nothing is queued)."""
    row = store.db.execute("SELECT MIN(next_attempt_at) FROM mail_queue WHERE status = 'queued'").fetchone()
    return None if row[0] is None else float(row[0])


def mark_sent(store: Store, mail_id: int) -> None:
    """Delivered (handed to the SMTP server, or written to the outbox): the body is emptied."""
    with store.transaction() as db:
        db.execute(
            "UPDATE mail_queue SET status = 'sent', attempts = attempts + 1, text = '', html = '',"
            " last_error = NULL, done_at = ? WHERE id = ?",
            (store.clock(), mail_id),
        )


def mark_retry(store: Store, mail_id: int, error: str, next_attempt_at: float) -> None:
    """One more failed attempt; the next is not before ``next_attempt_at``."""
    with store.transaction() as db:
        db.execute(
            "UPDATE mail_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
            " WHERE id = ? AND status = 'queued'",
            (error, next_attempt_at, mail_id),
        )


def mark_failed(store: Store, mail_id: int, error: str) -> None:
    """The last attempt failed too: given up (the body stays, so :func:`requeue_failed` can send it)."""
    with store.transaction() as db:
        db.execute(
            "UPDATE mail_queue SET status = 'failed', attempts = attempts + 1, last_error = ?, done_at = ?"
            " WHERE id = ? AND status = 'queued'",
            (error, store.clock(), mail_id),
        )


def mark_too_late(store: Store, mail_id: int) -> None:
    """Its ``not_after`` has passed before it could be sent (e.g. the server was down): withdrawn."""
    with store.transaction() as db:
        db.execute(
            "UPDATE mail_queue SET status = 'withdrawn', text = '', html = '', last_error = ?, done_at = ?"
            " WHERE id = ? AND status = 'queued'",
            ("too late to send", store.clock(), mail_id),
        )


def withdraw(store: Store, call_id: str, kinds: Iterable[str]) -> int:
    """Take back the queued messages of these kinds about one call (e.g. the reminder of a
    cancelled call); how many there were. Sent ones cannot be taken back."""
    kinds = tuple(kinds)
    if not kinds:
        return 0
    marks = ", ".join("?" for _ in kinds)
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE mail_queue SET status = 'withdrawn', text = '', html = '', done_at = ?"
            f" WHERE call_id = ? AND status = 'queued' AND kind IN ({marks})",
            (store.clock(), call_id, *kinds),
        )
        return cursor.rowcount


def requeue_failed(store: Store) -> int:
    """Queue every failed message again, due now, attempts from zero (e.g. once the mail server
    is fixed); how many there were."""
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE mail_queue SET status = 'queued', attempts = 0, next_attempt_at = ?, done_at = NULL"
            " WHERE status = 'failed'",
            (store.clock(),),
        )
        return cursor.rowcount


def counts(store: Store) -> dict[str, int]:
    """Messages by status (every status, even at 0)."""
    rows = store.db.execute("SELECT status, COUNT(*) FROM mail_queue GROUP BY status").fetchall()
    found = {str(r[0]): int(r[1]) for r in rows}
    return {status: found.get(status, 0) for status in STATUSES}
