"""A server with a mail sender mails families for real: `monitor serve`'s sender (built from its
flags by the real parser) gives the family pages ``FamilyMail``, so a registration and a booking
made over the family socket end up as `.eml` files in the outbox, or, with ``--smtp``, at a real
SMTP server on loopback (aiosmtpd), with working confirmation and join links.

The store's clock is a Monday morning in London (2030-06-03 08:00 BST)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from support.family_site import (
    PASSWORD,
    Clock,
    FamilyClient,
    MemoryMailer,
    prison_with_staff,
    verified_family,
)
from support.smtp_sink import SmtpSink, links_in, text_of

from monitor.cli import build_parser
from monitor.mail.family_mail import FamilyMail
from monitor.mail.settings import mail_sender
from monitor.server.serve import Server
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from policies.config import load_policy

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)
TUESDAY_2PM = datetime(2030, 6, 4, 14, 0, tzinfo=LONDON).isoformat()


@asynccontextmanager
async def mailing_server(tmp_path: Path, *flags: str) -> AsyncIterator[tuple[Server, Store, str, str]]:
    """A server whose mail sender is what `monitor serve FLAGS` makes; (server, store, verified
    family's contact, its holder)."""
    store = Store(tmp_path / "monitor.db", clock=Clock(MONDAY.timestamp()))
    officer, _ = prison_with_staff(store)
    _, holder, contact = verified_family(store, DocumentVault(store), officer, MemoryMailer())
    sender = mail_sender(build_parser().parse_args(["serve", *flags]), store)
    sender.poll_s = 0.2
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store, mail=sender)
    await server.start()
    try:
        assert isinstance(server.mailer, FamilyMail)  # the family pages mail through the queue
        yield server, store, contact, holder
    finally:
        await server.stop()
        store.close()


def sent(outbox: Path, kind: str) -> list[Path]:
    return sorted(outbox.glob(f"*-{kind}-*.eml"))


async def eml(outbox: Path, kind: str, timeout_s: float = 15.0) -> EmailMessage:
    deadline = time.monotonic() + timeout_s
    while not (found := await asyncio.to_thread(sent, outbox, kind)):
        assert time.monotonic() < deadline, f"no {kind} message in the outbox"
        await asyncio.sleep(0.05)
    data = await asyncio.to_thread(found[-1].read_bytes)
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_a_family_registers_and_books_and_the_outbox_has_each_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    async with mailing_server(tmp_path, "--mail-outbox", str(outbox)) as (server, store, contact, holder):
        family = await FamilyClient(server.port).connect()
        answer = await family.ask(
            "register",
            email="amy@example.org",
            password=PASSWORD,
            name="Amy Jones",
            date_of_birth="1990-05-05",
            address="2 Low Rd, York",
        )
        assert answer["type"] == "ok", answer
        confirmation = await eml(outbox, "address_confirmation")
        assert confirmation["To"] == "amy@example.org" and "Dear Amy Jones," in text_of(confirmation)
        [link] = links_in(confirmation, "/family/confirm/")
        status, headers, _ = await family.get(link.removeprefix(family.origin))
        assert (status, headers["location"]) == (303, "/family#confirmed")
        await family.close()

        jane = FamilyClient(server.port)
        assert (await jane.login("jane@example.org"))[0] == 200
        await jane.connect()
        booked = await jane.ask("book", contact=contact, starts_at=TUESDAY_2PM, people=[holder], main=holder)
        assert booked["type"] == "ok", booked
        message = await eml(outbox, "call_booked")
        body = text_of(message)
        assert message["To"] == "jane@example.org" and message["Subject"] == "Your video call is booked"
        assert "When: Tuesday 4 June 2030, 14:00 to 14:30 (Europe/London time, BST)." in body
        [join] = links_in(message, "/join/")
        assert join.startswith(f"http://127.0.0.1:{server.port}/join/")
        grant, works = store.join_token_status(join.rsplit("/", 1)[1])
        assert grant is not None and (grant.call_id, works) == (booked["call"]["call_id"], "too_early")
        # the reminder waits in the queue for its time (a day before), and goes when it is cancelled
        reminder = store.db.execute(
            "SELECT status, next_attempt_at FROM mail_queue WHERE kind = 'call_reminder'"
        )
        assert tuple(reminder.fetchone()) == (
            "queued",
            datetime(2030, 6, 3, 14, 0, tzinfo=LONDON).timestamp(),
        )
        assert (await jane.ask("cancel", call_id=booked["call"]["call_id"]))["type"] == "ok"
        cancelled = await eml(outbox, "call_cancelled")
        assert "has been cancelled" in text_of(cancelled)
        status = store.db.execute("SELECT status FROM mail_queue WHERE kind = 'call_reminder'").fetchone()
        assert status[0] == "withdrawn"
        assert sent(outbox, "call_reminder") == []
        await jane.close()


async def test_with_smtp_the_booking_reaches_a_real_mail_server(tmp_path: Path) -> None:
    with SmtpSink() as smtp:
        flags = ("--smtp", f"127.0.0.1:{smtp.port}", "--mail-from", "Calls <calls@prison.example.org>")
        async with mailing_server(tmp_path, *flags) as (server, store, contact, holder):
            jane = FamilyClient(server.port)
            assert (await jane.login("jane@example.org"))[0] == 200
            await jane.connect()
            booked = await jane.ask(
                "book", contact=contact, starts_at=TUESDAY_2PM, people=[holder], main=holder
            )
            assert booked["type"] == "ok", booked
            message = await smtp.wait_for("jane@example.org", "Your video call is booked")
            assert message["From"] == "Calls <calls@prison.example.org>"
            [join] = links_in(message, "/join/")
            grant, _ = store.join_token_status(join.rsplit("/", 1)[1])
            assert grant is not None and grant.call_id == booked["call"]["call_id"]
            assert re.search(r"The link works from 15 minutes before", text_of(message))
            await jane.close()
