"""What the console's parts share: the collaborators they are given, and the session cookie.

The console's routes (``app.py``), its alert feed (``feed.py``) and its watch (``watch.py``) each
read the same store, audit log, hub and running calls; they take them as a :class:`ConsoleParts`
(the :class:`~monitor.console.app.Console` is one), so none of them imports another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol

from websockets.datastructures import Headers

from monitor.store.audit import AuditLog
from monitor.store.database import Store

COOKIE = "monitor_session"


class LiveCall(Protocol):
    """One running call: what the console asks of a ``monitor.call.handle.CallHandle``."""

    @property
    def state(self) -> str: ...

    async def staff_pause(self, note: str = "", staff: str = "") -> None: ...

    async def staff_resume(self, staff: str = "") -> None: ...

    async def staff_end(self, note: str = "", staff: str = "") -> None: ...

    # raise policies.session.RefusedEvent (its text for staff) when the verdict cannot apply
    async def staff_confirm_identity(
        self, source: str, track: int, participant: str, staff: str = ""
    ) -> None: ...

    async def staff_reject_identity(self, source: str, track: int, staff: str = "") -> None: ...


class CallControl(Protocol):
    """The calls running in this server (``monitor.call.calls.Calls``)."""

    def get(self, call_id: str) -> LiveCall | None: ...


class Publisher(Protocol):
    """``monitor.hub.Hub``: records published by the calls, used to wake the alert feed."""

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...


class ConsoleParts(Protocol):
    """The collaborators of one console (``monitor.console.app.Console``)."""

    store: Store
    log: AuditLog
    hub: Publisher | None
    calls: CallControl | None


def session_token(headers: Headers) -> str | None:
    raw = headers.get("Cookie")
    if not raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None
