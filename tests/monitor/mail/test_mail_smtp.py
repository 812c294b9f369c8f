"""Sending through a real SMTP server on loopback (aiosmtpd): plain, STARTTLS with a certificate
made here and AUTH; a server that refuses, one that is down, a restart with messages queued, and
a slow server that must not hold up the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from mail_parts import (
    PASSWORD,
    USER,
    Certificate,
    Clock,
    Handler,
    SmtpServer,
    body_html,
    body_text,
    open_store,
)

from monitor.mail import AccountRefused, CallBooked, queue_mail
from monitor.mail.sender import Backoff, MailSender
from monitor.mail.smtp import SmtpSettings, SmtpTransport
from monitor.store import mail_queue
from monitor.store.audit import AuditLog
from monitor.store.database import Store

FROM = "Prison video calls <calls@prison.example.org>"
JOIN = "https://calls.example.org/join/abc123"
FAST = Backoff(first_s=0.05, factor=2.0, max_s=0.2, attempts=50)


def booked(call_id: str = "c1") -> CallBooked:
    start = 1_782_910_800.0
    return CallBooked(
        "Ann Smith", "John Smith", "HMP Example", "Europe/London", start, start + 1800, JOIN, call_id
    )


def sender_for(store: Store, port: int, **settings: object) -> MailSender:
    transport = SmtpTransport(SmtpSettings("127.0.0.1", port, timeout_s=10.0, **settings))  # type: ignore[arg-type]
    return MailSender(store, transport, mail_from=FROM, backoff=FAST, poll_s=0.1)


async def wait_for(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_sent_to_a_plain_smtp_server(store: Store, smtp_port: int) -> None:
    handler = Handler()
    with SmtpServer(handler, smtp_port):
        sender = sender_for(store, smtp_port)
        mail_id = queue_mail(store, "ann@example.org", booked())
        assert await sender.send_due() == 1
    [got] = handler.received
    assert got.recipients == ["ann@example.org"] and got.envelope_from == "calls@prison.example.org"
    assert not got.tls and got.login is None
    message = got.message
    assert message["Subject"] == "Your video call is booked" and message["From"] == FROM
    assert "Wednesday 1 July 2026, 14:00 to 14:30 (Europe/London time, BST)" in body_text(message)
    assert JOIN in body_text(message) and f'href="{JOIN}"' in body_html(message)
    row = mail_queue.get(store, mail_id)
    assert row is not None and row.status == "sent" and row.attempts == 1
    assert message["Message-ID"] == f"<{row.message_token}@prison.example.org>"
    stats = sender.stats()
    assert (stats.sent, stats.written, stats.retried, stats.failed, stats.transport) == (1, 0, 0, 0, "smtp")


async def test_starttls_and_login(store: Store, smtp_port: int, certificate: Certificate) -> None:
    handler = Handler()
    with SmtpServer(handler, smtp_port, tls=certificate.server, auth=True):
        sender = sender_for(
            store, smtp_port, starttls=True, username=USER, password=PASSWORD, cafile=str(certificate.cafile)
        )
        queue_mail(store, "ann@example.org", booked())
        assert await sender.send_due() == 1
    [got] = handler.received
    assert got.tls and got.login == USER
    assert JOIN in body_text(got.message)
    assert "STARTTLS" in sender.describe() and f"login as {USER}" in sender.describe()
    assert PASSWORD not in repr(sender.transport.settings)  # type: ignore[attr-defined]


async def test_a_wrong_password_or_an_untrusted_certificate_is_a_failed_attempt_never_plain_text(
    store: Store, smtp_port: int, certificate: Certificate
) -> None:
    handler = Handler()
    with SmtpServer(handler, smtp_port, tls=certificate.server, auth=True):
        wrong = sender_for(
            store, smtp_port, starttls=True, username=USER, password="nope", cafile=str(certificate.cafile)
        )
        mail_id = queue_mail(store, "ann@example.org", booked())
        assert await wrong.send_due() == 1
        row = mail_queue.get(store, mail_id)
        assert row is not None and row.status == "queued" and row.attempts == 1
        assert row.last_error is not None and row.last_error.startswith(
            "the SMTP server refused the login: 535"
        )
        await asyncio.sleep(0.06)
        untrusted = sender_for(
            store, smtp_port, starttls=True, username=USER, password=PASSWORD
        )  # system CAs
        assert await untrusted.send_due() == 1
        row = mail_queue.get(store, mail_id)
        assert row is not None and row.attempts == 2
        assert row.last_error is not None and row.last_error.startswith("TLS with the SMTP server failed")
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert handler.received == []


async def test_refused_with_5xx_then_accepted_is_retried_and_sent(store: Store, smtp_port: int) -> None:
    handler = Handler(refuse=2, refusal="554 5.7.1 message refused")
    with SmtpServer(handler, smtp_port):
        sender = sender_for(store, smtp_port)
        mail_id = queue_mail(
            store, "ann@example.org", AccountRefused("Ann", "blurred", "https://x.org/f"), prison="P"
        )
        sender.start()
        try:
            await wait_for(lambda: handler.received)
        finally:
            await sender.stop()
    row = mail_queue.get(store, mail_id)
    assert row is not None and row.status == "sent" and row.attempts == 3
    assert len(handler.received) == 1
    # every attempt carried the same Message-ID, so the receiving side can tell a repeat
    assert set(handler.refused_ids) == {str(handler.received[0].message["Message-ID"])}
    stats = sender.stats()
    assert (stats.sent, stats.retried, stats.failed) == (1, 2, 0)


async def test_the_server_down_at_first_then_up(store: Store, smtp_port: int) -> None:
    sender = sender_for(store, smtp_port)
    mail_id = queue_mail(store, "ann@example.org", booked())
    sender.start()
    try:
        await wait_for(lambda: sender.stats().retried >= 2)
        row = mail_queue.get(store, mail_id)
        assert row is not None and row.status == "queued"
        assert row.last_error is not None and row.last_error.startswith("cannot reach the SMTP server")
        handler = Handler()
        with SmtpServer(handler, smtp_port):
            await wait_for(lambda: handler.received)
            await wait_for(lambda: sender.stats().sent == 1)
    finally:
        await sender.stop()
    row = mail_queue.get(store, mail_id)
    assert row is not None and row.status == "sent"


async def test_messages_queued_before_a_restart_are_sent_after_it(tmp_path: Path, smtp_port: int) -> None:
    with open_store(tmp_path) as store:  # a server that queued mail and stopped before sending it
        ids = [queue_mail(store, f"family{i}@example.org", booked(f"c{i}")) for i in range(3)]
    handler = Handler()
    with SmtpServer(handler, smtp_port), open_store(tmp_path) as store:
        sender = sender_for(store, smtp_port)
        sender.start()
        try:
            await wait_for(lambda: len(handler.received) == 3)
        finally:
            await sender.stop()
        assert sorted(r.recipients[0] for r in handler.received) == [
            f"family{i}@example.org" for i in range(3)
        ]
        assert all(
            row is not None and row.status == "sent" for row in (mail_queue.get(store, i) for i in ids)
        )


async def test_a_send_cut_off_by_stopping_is_sent_again_at_the_next_start(
    tmp_path: Path, smtp_port: int
) -> None:
    handler = Handler(delay_s=1.5)
    with SmtpServer(handler, smtp_port):
        with open_store(tmp_path) as store:
            mail_id = queue_mail(store, "ann@example.org", booked())
            sender = sender_for(store, smtp_port)
            sender.start()
            await asyncio.sleep(0.3)  # the message is on the wire, the server slow to answer
            await sender.stop(timeout=0.1)
            row = mail_queue.get(store, mail_id)
            assert row is not None and row.status == "queued"  # not lost, not marked
        handler.delay_s = 0.0
        with open_store(tmp_path) as store:
            sender = sender_for(store, smtp_port)
            assert await sender.send_due() == 1
            row = mail_queue.get(store, mail_id)
            assert row is not None and row.status == "sent"
    ids = {str(r.message["Message-ID"]) for r in handler.received}
    assert len(ids) == 1  # delivered at least once; a repeat has the same Message-ID


async def test_a_slow_smtp_server_does_not_hold_up_the_event_loop(store: Store, smtp_port: int) -> None:
    handler = Handler(delay_s=2.0)
    with SmtpServer(handler, smtp_port):
        sender = sender_for(store, smtp_port)
        queue_mail(store, "ann@example.org", booked())
        send = asyncio.ensure_future(sender.send_due())
        ticks, worst = 0, 0.0
        while not send.done():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)
            ticks += 1
        assert await send == 1
    assert sender.stats().sent == 1
    # the send ran in a thread of its own, not the loop's, and the loop went on meanwhile
    assert sender.send_threads == {"mail-send"} and threading.current_thread().name not in sender.send_threads
    assert ticks > 50  # 2 s of a 10 ms ticker: a loop held by the send would tick once or twice
    assert worst < 0.5  # loose: the machine is shared


async def test_given_up_after_the_last_attempt_and_staff_see_it(tmp_path: Path, smtp_port: int) -> None:
    clock = Clock(time.time())
    handler = Handler(refuse=10, refusal="550 5.1.1 <ann@example.org>: mailbox unavailable")
    with SmtpServer(handler, smtp_port), open_store(tmp_path, clock) as store:
        sender = sender_for(store, smtp_port)
        sender.backoff = Backoff(first_s=60.0, attempts=2)
        mail_id = queue_mail(store, "ann@example.org", booked("c7"))
        assert await sender.send_due() == 1
        clock.t += 60.0
        assert await sender.send_due() == 1
        row = mail_queue.get(store, mail_id)
        assert row is not None and row.status == "failed" and row.attempts == 2
        assert row.last_error == "the SMTP server answered 550 5.1.1 <recipient>: mailbox unavailable"
        [record] = AuditLog(store).since("HMP Example", 0)
        assert (record.kind, record.actor, record.call_id) == ("mail_failed", "system", "c7")
        assert "ann@example.org" not in str(record.data)
        assert (sender.stats().retried, sender.stats().failed) == (1, 1)


async def test_a_recipient_the_server_refuses_fails_alone(store: Store, smtp_port: int) -> None:
    handler = Handler(unknown_users=("nobody@example.org",))
    with SmtpServer(handler, smtp_port):
        sender = sender_for(store, smtp_port)
        odd = queue_mail(store, "nobody@example.org", booked("c1"))
        plain = queue_mail(store, "bob@example.org", booked("c2"))
        assert await sender.send_due() == 2
    assert [r.recipients for r in handler.received] == [["bob@example.org"]]  # same connection, next message
    row = mail_queue.get(store, odd)
    assert row is not None and row.status == "queued" and row.attempts == 1
    assert row.last_error == "recipient refused: 550 5.1.1 no such user here"
    done = mail_queue.get(store, plain)
    assert done is not None and done.status == "sent"
