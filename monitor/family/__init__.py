"""The families' side: pages and a WebSocket at /family on the server's one port.

Theory of operation
-------------------
A family opens an account (an e-mail address confirmed by a link, a password, the holder's name,
date of birth and address: 18 or over), adds everyone who will be on calls, gives a face photo for
each (enrolled with the same checks as ``monitor visitor add``), a photo ID for each adult and a
proof of address, and adds the person in prison by name, prison number and date of birth. Staff
of that prison check the account within ``verification_hours`` and approve the contact, which puts
the family's people on the prisoner's visitor list. The family then books a free slot of the next
``booking_window_days`` (self-select prisons) or asks for a call (staff-booked prisons), within the
prisoner's monthly allowance; a booked call is an ordinary booking with join links, opening
``join_opens_minutes`` before the start.

The rules and tables are in ``monitor.store`` (``family_*.py``, ``prisons.py``, ``documents.py``),
so the console can call the same functions for the staff side (``family_staff.py``). This package
is the families' edge: HTTP routes (``app.py``), the socket (``connection.py``) and its messages
(``api.py``), uploads (``documents.py``, ``images.py``, ``photos.py``), the pages (``static/``).

May import: ``monitor.store``, ``monitor.mail`` (the address rule), ``monitor.analysis`` (in the
photo checker's process), ``monitor.http``, ``monitor.errors`` and ``policies``.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.family.app import FamilyApp
from monitor.family.context import FamilyParts
from monitor.family.mailer import UnsentMail
from monitor.family.photos import PhotoChecker
from monitor.http import Router
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_common import Mailer
from policies.config import PolicyConfig


def register(
    router: Router,
    *,
    store: Store,
    config: PolicyConfig,
    base_url: str | Callable[[], str],
    origins: tuple[str, ...] = (),
    secure: bool = False,
    mailer: Mailer | None = None,
) -> FamilyApp:
    """Register every /family route on ``router`` and start the document retention task (needs a
    running event loop). ``base_url``: where families reach the server (links in e-mails; the
    first ``--origin`` when there is one), or a function giving it (a port chosen at start).
    ``mailer``: the e-mail sender (``monitor.mail.family_mail.FamilyMail`` from ``monitor serve``;
    default: none, logged, see ``mailer.py``). Call ``stop()`` on
    the returned app at shutdown."""
    public_url = base_url if callable(base_url) else (lambda: base_url)
    parts = FamilyParts(
        store, config, DocumentVault(store), PhotoChecker(), mailer or UnsentMail(), public_url
    )
    app = FamilyApp(parts, origins=origins, secure=secure)
    app.register(router)
    app.start()
    return app


__all__ = ["FamilyApp", "register"]
