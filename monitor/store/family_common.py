"""What the families' store modules share: the refusal they raise, the mail interface, ids.

``Refused`` carries a short machine code and one sentence in plain words for the family (or the
member of staff); the family WebSocket sends both as an error frame, and nothing has changed when
it is raised (every change is one transaction that the exception rolls back).

``Mailer`` is the one way these modules send e-mail; the product's is
``monitor.mail.family_mail.FamilyMail`` (``monitor serve`` hands it over), which queues each
message in the store's mail queue. Messages are queued inside the transaction that decides them,
so exactly the messages of committed changes are sent. Every message goes to the account's
address and greets the account holder (``name``). The kinds and their fields:

======================  ==========================================================================
``confirm_email``       ``link`` (the confirmation URL), ``name``
``already_registered``  ``name``: someone tried to register this address again
``account_verified``    ``name``, ``prison`` (whose staff decided)
``account_refused``     ``name``, ``reason``, ``prison``
``contact_approved``    ``name``, ``prisoner_name``, ``prison``
``contact_refused``     ``name``, ``prisoner_name``, ``prison``, ``reason``
``person_approved``     ``name``, ``person_name``, ``prison``
``person_refused``      ``name``, ``person_name``, ``reason``, ``prison``
``call_booked``         ``name``, ``prisoner_name``, ``prison``, ``time_zone``, ``starts_at``,
                        ``ends_at`` (ISO, prison time), ``cancel_until`` (ISO), ``people`` (names),
                        ``links`` (``[{"name", "url"}]``: each person's join link), ``call_id``
``call_cancelled``      ``name``, ``prisoner_name``, ``prison``, ``time_zone``, ``starts_at``,
                        ``call_id``, ``by`` (``family`` or ``staff``)
``request_declined``    ``name``, ``prisoner_name``, ``prison``, ``reason``
======================  ==========================================================================
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from monitor.store.database import StoreError

#: The audit log's prison for records about an account that no prison has yet (registering,
#: uploading before adding a prisoner).
NO_PRISON = "(families)"


class Refused(StoreError):
    """A family's or staff member's request is refused; ``code`` names the rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Mailer(Protocol):
    """Queues one e-mail message (never blocks on a mail server)."""

    def send(self, kind: str, to: str, **fields: Any) -> None: ...


def new_id(prefix: str) -> str:
    """A random id such as ``fam-3f9a2c41d07b``: it reveals nothing and does not repeat."""
    return f"{prefix}-{secrets.token_hex(6)}"
