"""The staff console: login, live board, alert feed, staff actions and call history on /console.

Theory of operation
-------------------
Everything lives on the server's one port (``monitor.http.Router``). Pages and scripts under
``/console`` and ``/console/static/`` are public and carry no data. Every data route
(``/console/api/...``) and the WebSockets ``/console/ws`` (feed and actions) and
``/console/watch`` (receive-only WebRTC view of a call, ``watch.py``) need a session cookie from
``POST /console/login`` (an ``Authorization: Basic`` header, because the server cannot read bodies);
without one they answer 401 and nothing else (a WebSocket is refused at its handshake with a plain
HTTP 401; one whose session ends while open is closed with 4401). A member of staff sees only
their own prison: a call, evidence frame or recording of another prison answers 404, the same as
one that does not exist. WebSockets and state-changing POSTs must come from an allowed ``Origin``
(else 403; ``monitor.http.origin_allowed`` is the one rule).

The alert feed is read from the store, never from memory: the audit log is the record of what
happened, so a console that reconnects says which audit id it saw last and gets what it missed.
The hub only wakes the feed up (within milliseconds of a decision); without a hub, or for records
written by another process, the feed also polls the store every ``POLL_S``.

The families desk (``family_desk.py``, its own socket ``/console/desk`` and page section) is the
staff side of the family pages: verification queue, visitor lists, call requests, prison settings
and governors' extra calls, all through ``monitor.store.family_staff``.

Staff actions travel over the WebSocket (validated by ``messages.py``), are written to the audit
log, and are handed to the running call through the :class:`CallControl` protocol, which the live
server (``monitor serve``) implements. Staff confirm or reject an undecided face from its
``identity_unconfirmed`` alert, seeing the booked people's reference photos (``identity.py``).

May import: ``monitor.store``, ``monitor.media`` (a staff member's watch of a call), ``monitor.http``,
``monitor.hub``, ``monitor.errors`` and ``policies``; never a call or the server (they are handed
in through the protocols in ``context.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.console.app import Console
from monitor.console.context import CallControl, LiveCall, Publisher
from monitor.console.family_desk import FamilyDesk
from monitor.http import Router
from monitor.store.audit import AuditLog
from monitor.store.audit_recorder import HubRecorder
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store
from monitor.store.family_common import Mailer
from policies.config import PolicyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeskParts:
    """What the families desk needs besides the store: the policy, the families' mailer and where
    families reach the server (the join links it mails)."""

    config: PolicyConfig
    mailer: Mailer
    public_url: Callable[[], str]


def register(
    router: Router,
    *,
    store: Store | None = None,
    hub: Publisher | None = None,
    calls: CallControl | None = None,
    origins: tuple[str, ...] = (),
    secure: bool = False,
    record: bool = True,
    record_dir: Path | None = None,
    desk: DeskParts | None = None,
) -> HubRecorder | None:
    """Register every /console route on ``router``.

    ``origins``: allowed Origin values (e.g. ``("https://calls.example.org",)``); empty means the
    origin must match the request's own Host. ``secure``: served over TLS (cookies get ``Secure``).
    ``record``: also start :class:`monitor.store.audit_recorder.HubRecorder`, which writes every
    record the calls publish on ``hub`` to the audit log (needs a running event loop). Without a
    store the console cannot check anyone, so nothing is registered and every /console path stays 404.
    ``record_dir``: where ``monitor serve --record DIR`` writes calls; their files are listed in a
    call's history and playable (``recordings.py``). ``desk``: also the families desk
    (``family_desk.py``: verification queue, visitor lists, call requests, prison settings, extra
    calls), with the mailer the family pages use.
    Returns the recorder (``stop()`` it on shutdown), if one was started.
    """
    if store is None:
        log.warning("staff console disabled: monitor.console.register() was given no store")
        return None
    # one log and one writer thread for the console and the recorder: their records keep their order
    audit = AuditLog(store, AuditWriter(store.location, store.clock, node=store.node))
    Console(
        store=store, hub=hub, calls=calls, origins=origins, secure=secure, record_dir=record_dir, log=audit
    ).register(router)
    if desk is not None:
        FamilyDesk(
            store=store,
            config=desk.config,
            mailer=desk.mailer,
            public_url=desk.public_url,
            origins=origins,
            secure=secure,
        ).register(router)
    if not record or hub is None:
        return None
    recorder = HubRecorder(audit, hub, calls)
    recorder.start()
    return recorder


__all__ = ["CallControl", "DeskParts", "LiveCall", "Publisher", "register"]
