"""The families' e-mail when the server has no mail sender (a server made without one, e.g. in tests).

Every message the families' side sends goes through the ``Mailer`` interface
(``monitor.store.family_common.Mailer``: ``send(kind, to, **fields)``, kinds and fields listed
there). :class:`UnsentMail`, the default, sends nothing: it logs one warning per message naming
its kind (never the address or the link, which is a secret), so a server without a mail sender
says plainly that families are not being e-mailed. ``monitor serve`` always has a sender and hands
the families' side ``monitor.mail.family_mail.FamilyMail`` (``register(..., mailer=...)``).
"""

from __future__ import annotations

import logging
from typing import Any

from monitor.store.family_common import Mailer

log = logging.getLogger(__name__)


class UnsentMail:
    """A Mailer that sends nothing and says so in the server's log."""

    def __init__(self) -> None:
        self.unsent = 0

    def send(self, kind: str, to: str, **fields: Any) -> None:
        self.unsent += 1
        log.warning("e-mail %r to a family not sent: this server has no mail sender", kind)


__all__ = ["Mailer", "UnsentMail"]
