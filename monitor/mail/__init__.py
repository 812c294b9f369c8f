"""Messages to families: built, queued durably in the store, sent in the background.

Theory of operation
-------------------
``messages.py`` builds each message a family gets (address confirmation, account verified or
refused, call booked, reminder, call cancelled) as plain text plus a simple HTML part, with call
times in the prison's time zone. ``queue.py``'s :func:`queue_mail` renders one and puts it in the
store's ``mail_queue`` table (``monitor.store.mail_queue``): from then on it survives a restart.
``sender.py``'s :class:`MailSender` runs on the server's event loop and delivers what is due
through a transport, in a thread: ``outbox.py`` (one ``.eml`` file per message in a folder, the
default) or ``smtp.py`` (``--smtp HOST:PORT``, STARTTLS and login when configured). Failed
attempts are retried with exponential back-off; the last failure becomes a ``mail_failed`` audit
record on the prison's staff console; ``stats()`` feeds /metrics. ``settings.py`` turns
`monitor serve`'s flags into a sender.

May import: ``monitor.store``, ``monitor.hub``, ``monitor.errors`` and ``policies``.
"""

from monitor.mail.messages import (
    AccountRefused,
    AccountVerified,
    AddressConfirmation,
    CallBooked,
    CallCancelled,
    CallReminder,
    MailContent,
    MailError,
    mail_address,
)
from monitor.mail.queue import queue_mail, withdraw_mail

__all__ = [
    "AccountRefused",
    "AccountVerified",
    "AddressConfirmation",
    "CallBooked",
    "CallCancelled",
    "CallReminder",
    "MailContent",
    "MailError",
    "mail_address",
    "queue_mail",
    "withdraw_mail",
]
