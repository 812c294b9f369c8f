"""Several nodes on one PostgreSQL database run a mail sender each: one sends, the others wait,
and one of them takes over when the sending node stops. A real PostgreSQL server, real outboxes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from support.postgres import PostgresServer

from monitor.mail import AddressConfirmation, queue_mail
from monitor.mail.outbox import OutboxTransport
from monitor.mail.sender import MailSender
from monitor.mail.settings import DEFAULT_FROM
from monitor.store import mail_queue
from monitor.store.database import Store

CONFIRM = "https://calls.example.org/family/confirm/t0ken"


def sender(store: Store, outbox: Path) -> MailSender:
    transport = OutboxTransport(outbox)
    transport.prepare()
    return MailSender(store, transport, mail_from=DEFAULT_FROM, poll_s=0.1)


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_one_node_sends_and_another_takes_over_when_it_stops(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    first_store, second_store = Store(url, node="node-a"), Store(url, node="node-b")
    first, second = sender(first_store, tmp_path / "a"), sender(second_store, tmp_path / "b")
    first.start()
    await wait_for(lambda: first_store.holds("mail-sender"))
    second.start()
    try:
        ids = [
            queue_mail(first_store, f"n{n}@example.org", AddressConfirmation("Ann", CONFIRM), prison="P")
            for n in range(5)
        ]
        await wait_for(lambda: all(mail_queue.get(first_store, i).status == "sent" for i in ids))  # type: ignore[union-attr]
        await asyncio.sleep(0.5)  # the second sender polled meanwhile: it sent nothing
        assert len(list((tmp_path / "a").glob("*.eml"))) == 5
        assert list((tmp_path / "b").glob("*.eml")) == []
        await first.stop()
        first_store.close()  # the node stops: its role is free
        later = queue_mail(second_store, "late@example.org", AddressConfirmation("Ann", CONFIRM), prison="P")
        await wait_for(lambda: mail_queue.get(second_store, later).status == "sent")  # type: ignore[union-attr]
        assert len(list((tmp_path / "b").glob("*.eml"))) == 1
    finally:
        await first.stop()
        await second.stop()
        second_store.close()
