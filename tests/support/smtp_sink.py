"""A real SMTP server on loopback (aiosmtpd, in its own thread and event loop, as a separate mail
server would be) that keeps every message it accepts, for tests that read what families are sent:
the confirmation link, the join links."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def links_in(message: EmailMessage, path: str) -> list[str]:
    """The http(s) links of the plain-text part whose path starts with ``path`` (e.g. ``/join/``)."""
    return [m for m in re.findall(r"https?://\S+", text_of(message)) if path in m]


class SmtpSink:
    """``with SmtpSink() as smtp:`` a server on ``127.0.0.1:smtp.port`` that accepts everything."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[list[str], EmailMessage]] = []
        self._arrived = threading.Condition()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.received.append((list(envelope.rcpt_tos), message))
            self._arrived.notify_all()
        return "250 2.0.0 OK"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def find(self, to: str, subject: str) -> EmailMessage | None:
        with self._arrived:
            for recipients, message in reversed(self.received):
                if to in recipients and subject in str(message["Subject"]):
                    return message
        return None

    async def wait_for(self, to: str, subject: str, timeout_s: float = 30.0) -> EmailMessage:
        """The latest message to ``to`` whose subject contains ``subject``, once it has arrived."""
        deadline = time.monotonic() + timeout_s
        while (found := self.find(to, subject)) is None:
            if time.monotonic() > deadline:
                subjects = [str(m["Subject"]) for _, m in self.received]
                raise AssertionError(f"no message {subject!r} to {to} arrived; got {subjects}")
            await asyncio.sleep(0.05)
        return found
