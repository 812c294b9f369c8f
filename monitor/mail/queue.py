"""What the family pages and the staff side call to send a family a message.

``queue_mail(store, to, content)`` renders the message and puts it in the store's mail queue, in
the caller's transaction when there is one (a booking and its confirmation commit together, or
neither); the background sender (``sender.py``) delivers it. Nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.mail.messages import CallReminder, MailContent, MailError, mail_address, render
from monitor.store import mail_queue
from monitor.store.database import Store


def queue_mail(
    store: Store,
    to: str,
    content: MailContent,
    *,
    prison: str | None = None,
    send_at: float | None = None,
) -> int:
    """Queue one message to ``to``; returns its queue id.

    ``prison``: whose staff see it if it cannot be sent (default: the prison the message names;
    required for the account messages, which name none). ``send_at``: not before this time (UTC
    epoch seconds), e.g. a reminder a day before the call; default now."""
    address = mail_address(to)
    where = prison or getattr(content, "prison", None)
    if not where:
        raise MailError(f"{content.kind}: say which prison's staff look after this family (prison=...)")
    rendered = render(content)
    return mail_queue.enqueue(
        store,
        kind=content.kind,
        recipient=address,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        prison=where,
        call_id=getattr(content, "call_id", None),
        send_at=send_at,
        # a reminder that could not go out before the call started is not worth sending
        not_after=content.starts_at if isinstance(content, CallReminder) else None,
    )


def withdraw_mail(store: Store, call_id: str, kinds: Iterable[str] = (CallReminder.kind,)) -> int:
    """Take back what is still queued about a call (by default its reminder: the call was cancelled);
    how many messages that was."""
    return mail_queue.withdraw(store, call_id, kinds)
