"""The families' HTTP routes on the server's one port, and the socket's admission.

- ``GET /family`` and ``/family/static/<file>``: the page and its files (public, no data);
- ``POST /family/login`` with ``Authorization: Basic base64(email:password)``: the
  ``family_session`` cookie (HttpOnly, SameSite=Strict, Path=/family, Secure over TLS); an address
  not confirmed yet is answered 403 and sent a new confirmation link;
- ``POST /family/logout``;
- ``GET /family/confirm/<token>``: the e-mail confirmation link; redirects to the page with
  ``#confirmed``, ``#already`` or ``#expired``;
- ``WS /family/ws``: everything else (``connection.py``), from an allowed Origin only.

A periodic task deletes documents past their retention (``monitor.store.documents.purge_expired``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from importlib import resources

from websockets.http11 import Response

from monitor.family.connection import FamilySocket
from monitor.family.context import COOKIE, FamilyParts, session_token
from monitor.http import HttpRequest, Router, error_response, json_response, origin_allowed, response
from monitor.store import family_accounts as accounts
from monitor.store import family_sessions as sessions
from monitor.store.audit import AuditLog
from monitor.store.documents import purge_expired
from monitor.store.family_common import NO_PRISON
from monitor.store.family_sessions import SESSION_S

log = logging.getLogger(__name__)

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"
)
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css|svg)$")
PURGE_EVERY_S = 3600.0


class FamilyApp:
    def __init__(self, parts: FamilyParts, *, origins: tuple[str, ...], secure: bool) -> None:
        self.parts = parts
        self.origins = origins
        self.secure = secure
        self._purger: asyncio.Task[None] | None = None

    def register(self, router: Router) -> None:
        router.get("/family", self.page)
        router.get("/family/static/", self.static)
        router.post("/family/login", self.login)
        router.post("/family/logout", self.logout)
        router.get("/family/confirm/", self.confirm)
        router.ws("/family/ws", FamilySocket(self.parts).run, self.admit)

    def start(self) -> None:
        """Start deleting expired documents, now and every ``PURGE_EVERY_S`` (needs a running loop)."""
        self._purger = asyncio.ensure_future(self._purge_forever())

    def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            self._purger = None
        self.parts.photos.close()

    async def _purge_forever(self) -> None:
        while True:
            try:
                deleted = purge_expired(self.parts.store, self.parts.vault)
                if deleted:
                    log.info("deleted %d family document(s) past their retention", deleted)
            except Exception:  # a store hiccup must not stop the server; the next round retries
                log.exception("deleting expired family documents failed")
            await asyncio.sleep(PURGE_EVERY_S)

    # -- pages ----------------------------------------------------------------------------------

    async def page(self, request: HttpRequest) -> Response:
        return self._static_file("index.html")

    async def static(self, request: HttpRequest) -> Response:
        name = request.path.removeprefix("/family/static/")
        if not _STATIC_NAME.match(name):
            return error_response(404)
        return self._static_file(name)

    def _static_file(self, name: str) -> Response:
        file = resources.files("monitor.family").joinpath("static", name)
        if not file.is_file():
            return error_response(404)
        suffix = "." + name.rsplit(".", 1)[-1]
        return response(200, file.read_bytes(), STATIC_TYPES[suffix], (("Content-Security-Policy", CSP),))

    async def confirm(self, request: HttpRequest) -> Response:
        token = request.path.removeprefix("/family/confirm/")
        outcome = accounts.confirm_email(self.parts.store, token) if "/" not in token else "invalid"
        place = {"confirmed": "confirmed", "already": "already"}.get(outcome, "expired")
        return response(303, f"See /family#{place}\n", headers=(("Location", f"/family#{place}"),))

    # -- signing in -----------------------------------------------------------------------------

    def _cookie(self, value: str, max_age: int) -> tuple[str, str]:
        secure = "; Secure" if self.secure else ""
        return (
            "Set-Cookie",
            f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/family; Max-Age={max_age}{secure}",
        )

    async def login(self, request: HttpRequest) -> Response:
        if not origin_allowed(request.headers, self.origins, self.secure, required=False):
            return error_response(403, "origin not allowed")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            email, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            return error_response(401, "send your e-mail address and password")
        store = self.parts.store
        result = await sessions.login_async(store, email.strip().lower(), password, request.remote)
        if result.limited:
            return json_response(
                429,
                {"error": "too many failed sign-ins; please try again in 15 minutes"},
                (("Retry-After", "900"),),
            )
        if result.unconfirmed and result.account_id is not None:
            token = accounts.new_confirmation(store, result.account_id)
            if token is not None:
                self.parts.mailer.send(
                    "confirm_email",
                    email.strip().lower(),
                    name=accounts.people(store, result.account_id)[0].name,
                    link=self.parts.link(f"/family/confirm/{token}"),
                )
            return error_response(
                403, "please confirm your e-mail address first: we have sent you a new link"
            )
        if result.account_id is None or result.token is None:
            return error_response(401, "wrong e-mail address or password")
        await AuditLog(store).append_async(
            "family_login", {"account": result.account_id}, prison=NO_PRISON, actor="family"
        )
        return json_response(200, {"ok": True}, (self._cookie(result.token, int(SESSION_S)),))

    async def logout(self, request: HttpRequest) -> Response:
        if not origin_allowed(request.headers, self.origins, self.secure):
            return error_response(403, "origin not allowed")
        token = session_token(request.headers)
        if token:
            sessions.logout(self.parts.store, token)
        return json_response(200, {"ok": True}, (self._cookie("", 0),))

    async def admit(self, request: HttpRequest) -> Response | None:
        """The socket's handshake: only from an allowed Origin (HTTP 403 otherwise). A socket
        without a session is let in: it may register."""
        if not origin_allowed(request.headers, self.origins, self.secure):
            return error_response(403, "origin not allowed")
        return None
