"""The families' side's mailer: each ``send(kind, to, **fields)`` becomes a message in the mail queue.

Theory of operation
-------------------
The families' store modules send e-mail through one interface,
``monitor.store.family_common.Mailer`` (the kinds and their fields are listed there), from inside
the transaction that decides what the message says. :class:`FamilyMail` is the product's
implementation: it turns a kind and its fields into one of ``messages.py``'s contents and queues it
with :func:`~monitor.mail.queue.queue_mail`, in that same transaction, so a message is queued if
and only if its decision commits. After the commit it wakes the sender (``MailSender.wake``), which
delivers it within moments.

A booked call also queues its **reminder**, due ``REMINDER_BEFORE_S`` (a day) before the start, or,
for a call booked less than a day ahead, ``LATE_REMINDER_BEFORE_S`` (an hour) before it; none when
that would go out less than ``MIN_GAP_S`` after the confirmation (the confirmation is reminder
enough). It carries the same join links (the queue keeps a message's body until it is sent, then
empties it). Cancelling a call withdraws its queued reminder, in the cancelling transaction.

Messages about an account that no prison has yet (confirming the address, "already registered")
are filed under the prison ``(families)`` (``family_common.NO_PRISON``) if they cannot be sent;
every other kind names its prison (``prison`` in its fields).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

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
)
from monitor.mail.queue import queue_mail, withdraw_mail
from monitor.store.database import Store
from monitor.store.family_common import NO_PRISON

REMINDER_BEFORE_S = 24 * 3600.0
LATE_REMINDER_BEFORE_S = 3600.0
MIN_GAP_S = 3600.0
FAMILY_PAGES = "/family"


def reminder_at(starts_at: float, now: float) -> float | None:
    """When a call starting at ``starts_at``, booked at ``now``, is reminded of (None: not)."""
    for before in (REMINDER_BEFORE_S, LATE_REMINDER_BEFORE_S):
        if starts_at - before >= now + MIN_GAP_S:
            return starts_at - before
    return None


def _epoch(value: object, field: str) -> float:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise MailError(f"{field} {value!r}: not an ISO time") from None
    if moment.tzinfo is None:
        raise MailError(f"{field} {value!r}: needs its offset from UTC")
    return moment.timestamp()


class FamilyMail:
    """``monitor.store.family_common.Mailer`` on the store's mail queue."""

    def __init__(
        self,
        store: Store,
        public_url: Callable[[], str],
        *,
        join_opens_minutes: int = 15,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.public_url = public_url  # where families reach the server (links to their pages)
        self.join_opens_minutes = join_opens_minutes
        self.wake = wake  # the sender's MailSender.wake: deliver without waiting for its next poll

    def _pages(self) -> str:
        return f"{self.public_url().rstrip('/')}{FAMILY_PAGES}"

    def send(self, kind: str, to: str, **fields: Any) -> None:
        prison = fields.get("prison") or NO_PRISON
        content = self.content(kind, fields)
        with self.store.transaction():  # the caller's, when there is one (the decision's)
            queue_mail(self.store, to, content, prison=prison)
            if isinstance(content, CallBooked):
                at = reminder_at(content.starts_at, self.store.clock())
                if at is not None:
                    queue_mail(self.store, to, self._reminder(content), prison=prison, send_at=at)
            elif isinstance(content, CallCancelled):
                withdraw_mail(self.store, content.call_id)
            if self.wake is not None:
                self.store.after_commit(self, self.wake)

    def _reminder(self, booked: CallBooked) -> CallReminder:
        return CallReminder(
            booked.name,
            booked.prisoner_name,
            booked.prison,
            booked.time_zone,
            booked.starts_at,
            booked.ends_at,
            booked.join_link,
            booked.call_id,
            booked.join_opens_minutes,
            booked.join_links,
        )

    def content(self, kind: str, f: dict[str, Any]) -> MailContent:
        """The message of one kind (a MailError naming the kind when its fields do not make one)."""
        try:
            return self._content(kind, f)
        except KeyError as exc:
            raise MailError(f"{kind}: the field {exc.args[0]} is missing") from None

    def _content(self, kind: str, f: dict[str, Any]) -> MailContent:
        pages = self._pages()
        match kind:
            case "confirm_email":
                return AddressConfirmation(f["name"], f["link"])
            case "already_registered":
                return AlreadyRegistered(f["name"], pages)
            case "account_verified":
                return AccountVerified(f["name"], pages)
            case "account_refused":
                return AccountRefused(f["name"], f["reason"], pages)
            case "contact_approved":
                return ContactApproved(f["name"], f["prisoner_name"], f["prison"], pages)
            case "contact_refused":
                return ContactRefused(f["name"], f["prisoner_name"], f["prison"], f["reason"], pages)
            case "person_approved":
                return PersonApproved(f["name"], f["person_name"], pages)
            case "person_refused":
                return PersonRefused(f["name"], f["person_name"], f["reason"], pages)
            case "request_declined":
                return RequestDeclined(f["name"], f["prisoner_name"], f["prison"], f["reason"], pages)
            case "call_booked":
                links = tuple((str(x["name"]), str(x["url"])) for x in f["links"])
                if not links:
                    raise MailError("call_booked: no join links")
                return CallBooked(
                    f["name"],
                    f["prisoner_name"],
                    f["prison"],
                    f["time_zone"],
                    _epoch(f["starts_at"], "starts_at"),
                    _epoch(f["ends_at"], "ends_at"),
                    links[0][1],
                    f["call_id"],
                    self.join_opens_minutes,
                    links,
                    _epoch(f["cancel_until"], "cancel_until") if f.get("cancel_until") else None,
                )
            case "call_cancelled":
                by_prison = f.get("by") == "staff"
                return CallCancelled(
                    f["name"],
                    f["prisoner_name"],
                    f["prison"],
                    f["time_zone"],
                    _epoch(f["starts_at"], "starts_at"),
                    f["call_id"],
                    "the prison cancelled it" if by_prison else "",
                )
        raise MailError(f"{kind!r}: not a kind of message this server sends")
