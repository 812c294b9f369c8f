"""The embedded default: messages written to the outbox folder by the background sender; and what
happens when they cannot be (retries with back-off, then a mail_failed record for the prison's staff)."""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from mail_parts import Clock, body_html, body_text, open_store

from monitor.mail import AddressConfirmation, CallBooked, CallReminder, queue_mail
from monitor.mail.outbox import OutboxTransport
from monitor.mail.sender import Backoff, MailSender
from monitor.mail.settings import DEFAULT_FROM
from monitor.store import mail_queue
from monitor.store.audit import AuditLog
from monitor.store.database import Store

CONFIRM = "https://calls.example.org/family/confirm/t0ken"


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_background_sender_writes_one_eml_file_per_message(store: Store, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    transport.prepare()
    sender = MailSender(store, transport, mail_from=DEFAULT_FROM, poll_s=0.2)
    sender.start()
    try:
        first = queue_mail(
            store, "ann@example.org", AddressConfirmation("Ann", CONFIRM), prison="HMP Example"
        )
        sender.wake()
        start = 1_800_000_000.0
        booked = CallBooked(
            "Ann", "John", "HMP Example", "Europe/London", start, start + 1800, "https://x.org/join/j", "c1"
        )
        second = queue_mail(store, "bob@example.org", booked)  # found by the poll, without a wake
        await wait_for(lambda: len(list(outbox.glob("*.eml"))) == 2)
    finally:
        await sender.stop()
    files = sorted(outbox.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temporary file left behind
    assert [f.name.split("-")[2:4] for f in files] == [
        [f"{first:06d}", "address_confirmation"],
        [f"{second:06d}", "call_booked"],
    ]
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "ann@example.org" and message["From"] == DEFAULT_FROM
    assert message["Subject"] == "Confirm your email address"
    assert CONFIRM in body_text(message) and f'href="{CONFIRM}"' in body_html(message)
    stats = sender.stats()
    assert (stats.written, stats.sent, stats.retried, stats.failed, stats.queued) == (2, 0, 0, 0, 0)
    assert stats.transport == "outbox"
    row = mail_queue.get(store, first)
    assert row is not None and row.status == "sent" and row.text == ""  # the link is no longer in the store
    assert transport.where() == {"mail_outbox": str(outbox.resolve())}


async def test_writing_again_replaces_the_file_instead_of_adding_one(store: Store, tmp_path: Path) -> None:
    """A message written, then the server stopped before recording it: written again at the next start."""
    outbox = tmp_path / "outbox"
    mail_id = queue_mail(store, "ann@example.org", AddressConfirmation("Ann", CONFIRM), prison="HMP Example")
    for _ in range(2):
        assert await MailSender(store, OutboxTransport(outbox), mail_from=DEFAULT_FROM).send_due() == 1
        store.db.execute("UPDATE mail_queue SET status = 'queued' WHERE id = ?", (mail_id,))  # "not recorded"
        store.db.execute("UPDATE mail_queue SET text = 'x', html = 'x' WHERE id = ?", (mail_id,))
    assert len(list(outbox.iterdir())) == 1


async def test_a_message_that_cannot_be_written_is_retried_then_failed_for_staff_to_see(
    tmp_path: Path,
) -> None:
    clock = Clock()
    blocked = tmp_path / "outbox"
    blocked.write_text("a file where the folder should be")
    with open_store(tmp_path, clock) as store:
        backoff = Backoff(first_s=10.0, factor=2.0, max_s=15.0, attempts=4)
        sender = MailSender(store, OutboxTransport(blocked), mail_from=DEFAULT_FROM, backoff=backoff)
        start = clock.t + 86400
        booked = CallBooked(
            "Ann", "John", "HMP Example", "Europe/London", start, start + 1800, "https://x.org/join/j", "c9"
        )
        mail_id = queue_mail(store, "ann@example.org", booked)
        waits = []
        for attempt in range(1, 5):
            assert await sender.send_due() == 1
            row = mail_queue.get(store, mail_id)
            assert row is not None and row.attempts == attempt
            assert row.last_error is not None and "cannot write to the outbox" in row.last_error
            if attempt < 4:
                waits.append(row.next_attempt_at - clock.t)
                assert await sender.send_due() == 0  # not before its time
                clock.t = row.next_attempt_at
        assert waits == [10.0, 15.0, 15.0]  # doubling, at most max_s
        row = mail_queue.get(store, mail_id)
        assert row is not None and row.status == "failed" and row.text  # kept, to be sent again later
        stats = sender.stats()
        assert (stats.written, stats.retried, stats.failed, stats.queued) == (0, 3, 1, 0)
        records = AuditLog(store).since("HMP Example", 0)
        assert [(r.kind, r.actor, r.call_id) for r in records] == [("mail_failed", "system", "c9")]
        data = records[0].data
        assert data["mail_id"] == mail_id and data["message"] == "call_booked" and data["attempts"] == 4
        assert "could not be sent after 4 attempts" in data["detail"]
        assert "ann@example.org" not in str(data)  # ids, never the address
        assert await sender.send_due() == 0  # given up: not tried again
        # once the folder is there, a failed message can be queued again and goes out
        blocked.unlink()
        assert mail_queue.requeue_failed(store) == 1
        assert await sender.send_due() == 1
        assert len(list(blocked.glob("*.eml"))) == 1 and sender.stats().written == 1


async def test_a_reminder_that_could_not_go_out_before_its_call_is_withdrawn(tmp_path: Path) -> None:
    clock = Clock()
    outbox = tmp_path / "outbox"
    with open_store(tmp_path, clock) as store:
        start = clock.t + 86400
        remind = CallReminder(
            "Ann", "John", "HMP Example", "Europe/London", start, start + 1800, "https://x.org/join/j", "c1"
        )
        on_time = queue_mail(store, "ann@example.org", remind, send_at=start - 3600)
        late = queue_mail(store, "bob@example.org", remind, send_at=start - 3600)
        sender = MailSender(store, OutboxTransport(outbox), mail_from=DEFAULT_FROM)
        clock.t = start - 3600
        store.db.execute(
            "UPDATE mail_queue SET next_attempt_at = ? WHERE id = ?", (start + 60, late)
        )  # retried
        assert await sender.send_due() == 1
        clock.t = start + 60  # the server was down until after the call started
        assert await sender.send_due() == 0
        sent, withdrawn = mail_queue.get(store, on_time), mail_queue.get(store, late)
        assert sent is not None and sent.status == "sent"
        assert withdrawn is not None and withdrawn.status == "withdrawn" and withdrawn.text == ""
        assert withdrawn.last_error == "too late to send"
        assert len(list(outbox.glob("*.eml"))) == 1 and sender.stats().written == 1


async def test_a_row_that_cannot_be_composed_does_not_hold_up_the_others(
    store: Store, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    broken = mail_queue.enqueue(  # past queue_mail's checks: a header that cannot be written
        store, kind="account_verified", recipient="ann@example.org\nBcc: eve@example.org", subject="s",
        text="t", html="h", prison="HMP Example",
    )  # fmt: skip
    good = queue_mail(store, "bob@example.org", AddressConfirmation("Bob", CONFIRM), prison="HMP Example")
    sender = MailSender(store, OutboxTransport(outbox), mail_from=DEFAULT_FROM, backoff=Backoff(attempts=1))
    assert await sender.send_due() == 2
    failed, sent = mail_queue.get(store, broken), mail_queue.get(store, good)
    assert failed is not None and failed.status == "failed"
    assert failed.last_error is not None and failed.last_error.startswith("cannot compose the message")
    assert sent is not None and sent.status == "sent" and len(list(outbox.glob("*.eml"))) == 1
