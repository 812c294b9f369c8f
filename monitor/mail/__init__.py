"""Messages to families: built, queued durably in the store, sent in the background.

Theory of operation
-------------------
``messages.py`` builds each message a family gets (address confirmation, account verified or
refused, contact and person approved or refused, call booked, reminder, call cancelled, request
declined) as plain text plus a simple HTML part, with call times in the prison's time zone.
``family_mail.py``'s :class:`FamilyMail` is the families' side's mailer: it turns each message the
family modules send (``send(kind, to, **fields)``) into one of those and queues it, with a
reminder before each booked call. ``queue.py``'s :func:`queue_mail` renders one and puts it in the
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
    AlreadyRegistered,
    CallBooked,
    CallCancelled,
    CallReminder,
    ContactApproved,
    ContactRefused,
    MailContent,
    MailError,
    PersonApproved,
    PersonRefused,
    RequestDeclined,
    mail_address,
)
from monitor.mail.queue import queue_mail, withdraw_mail

__all__ = [
    "AccountRefused",
    "AccountVerified",
    "AddressConfirmation",
    "AlreadyRegistered",
    "CallBooked",
    "CallCancelled",
    "CallReminder",
    "ContactApproved",
    "ContactRefused",
    "MailContent",
    "MailError",
    "PersonApproved",
    "PersonRefused",
    "RequestDeclined",
    "mail_address",
    "queue_mail",
    "withdraw_mail",
]
