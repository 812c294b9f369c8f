"""What the sender hands to a transport, and what a transport is (outbox folder or SMTP server)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

#: The longest error text kept per attempt (the store, the log, the staff's alert).
MAX_ERROR = 300


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One queued message, composed, on its way."""

    mail_id: int
    kind: str
    message_token: str
    created_at: float
    message: EmailMessage


class Transport(Protocol):
    """Delivers messages. ``send`` blocks (network, disk): the sender calls it off the event loop."""

    #: What a delivery is called in the counts: ``written`` (outbox) or ``sent`` (SMTP).
    delivered: str

    def describe(self) -> str:
        """Where messages go, in one line for the operator (no password)."""
        ...

    def where(self) -> dict[str, str]:
        """Where messages go, for ``monitor serve``'s JSON line (``mail_outbox`` or ``mail_smtp``)."""
        ...

    def send(self, batch: list[Outgoing]) -> list[str | None]:
        """Try each message; for each, None when delivered, else why not (one line)."""
        ...


def error_text(exc: BaseException) -> str:
    """One line naming a failure, at most MAX_ERROR characters."""
    words = " ".join(str(exc).split()) or type(exc).__name__
    return words[:MAX_ERROR]
