"""The console's HTTP routes: static page, login/logout, JSON reads and evidence frames."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

from websockets.http11 import Response

from monitor.console import board, identity, recordings
from monitor.console.context import COOKIE, CallControl, Publisher, session_token
from monitor.console.feed import AlertFeed
from monitor.console.watch import CallWatch
from monitor.http import HttpRequest, Router, error_response, json_response, origin_allowed, response
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from monitor.store.sql import DatabaseError
from policies.text import id_problem

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css|svg)$")


class Console:
    def __init__(
        self,
        *,
        store: Store,
        hub: Publisher | None,
        calls: CallControl | None,
        origins: tuple[str, ...],
        secure: bool,
        record_dir: Path | None = None,
        log: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.record_dir = record_dir
        self.log = log if log is not None else AuditLog(store)
        self.hub = hub
        self.calls = calls
        self.origins = origins
        self.secure = secure

    def register(self, router: Router) -> None:
        router.get("/console", self.page)
        router.get("/console/static/", self.static)
        router.post("/console/login", self.login)
        router.post("/console/logout", self.logout)
        router.get("/console/api/me", self.me)
        router.get("/console/api/calls", self.calls_of_day)
        router.get("/console/api/calls/", self.call_history)
        router.get("/console/api/evidence/", self.evidence)
        router.get("/console/api/recordings/", self.recording)
        router.get("/console/api/identity/", self.undecided_face)
        router.get("/console/api/reference/", self.reference_photo)
        router.ws("/console/ws", AlertFeed(self).run, self.admit_ws)
        router.ws("/console/watch", CallWatch(self).run, self.admit_ws)

    # -- helpers ------------------------------------------------------------------------------

    def staff(self, request: HttpRequest) -> auth.Staff | None:
        return auth.session_staff(self.store, session_token(request.headers))

    def _cookie(self, value: str, max_age: int) -> tuple[str, str]:
        secure = "; Secure" if self.secure else ""
        return (
            "Set-Cookie",
            f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age}{secure}",
        )

    async def admit_ws(self, request: HttpRequest) -> Response | None:
        """The handshake of /console/ws and /console/watch: another Origin gets 403, no valid
        session 401, as plain HTTP answers (no WebSocket is opened, nothing is learnt). A session
        that ends while the socket is open is closed with 4401 by the socket's handler."""
        if not origin_allowed(request.headers, self.origins, self.secure):
            return error_response(403, "origin not allowed")
        if self.staff(request) is None:
            return error_response(401, "login required")
        return None

    # -- public -------------------------------------------------------------------------------

    async def page(self, request: HttpRequest) -> Response:
        return self._static_file("index.html")

    async def static(self, request: HttpRequest) -> Response:
        name = request.path.removeprefix("/console/static/")
        if not _STATIC_NAME.match(name):
            return error_response(404)
        return self._static_file(name)

    def _static_file(self, name: str) -> Response:
        file = resources.files("monitor.console").joinpath("static", name)
        if not file.is_file():
            return error_response(404)
        suffix = "." + name.rsplit(".", 1)[-1]
        return response(200, file.read_bytes(), STATIC_TYPES[suffix], (("Content-Security-Policy", CSP),))

    async def login(self, request: HttpRequest) -> Response:
        if not origin_allowed(request.headers, self.origins, self.secure, required=False):
            return error_response(403, "origin not allowed")
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            username, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            sep = ""
        if scheme.lower() != "basic" or not sep:
            return error_response(401, "send user name and password (Authorization: Basic)")
        if not self.log.health().ok:  # a login is recorded: none while records cannot be written
            return self._store_down()
        try:
            result = await auth.login_async(self.store, username, password, request.remote)
        except DatabaseError:  # the disk is full or failing: say so, never a 500
            return self._store_down()
        if result.limited:
            wait = math.ceil(result.retry_after_s)
            return json_response(
                429,
                {"error": f"too many failed sign-ins from this address; try again in {wait} s"},
                (("Retry-After", str(wait)),),
            )
        if result.staff is None or result.token is None:
            return error_response(401, "wrong user name or password")
        await self.log.append_async(
            "login",
            {"username": result.staff.username},
            prison=result.staff.prison,
            actor=f"staff:{result.staff.username}",
        )
        payload = {"username": result.staff.username, "prison": result.staff.prison}
        return json_response(200, payload, (self._cookie(result.token, int(auth.SESSION_S)),))

    @staticmethod
    def _store_down() -> Response:
        return json_response(
            503,
            {
                "error": "the server cannot write to its database now (disk full or failing), so it "
                "cannot sign anyone in; tell the system administrator"
            },
            (("Retry-After", "30"),),
        )

    async def logout(self, request: HttpRequest) -> Response:
        if not origin_allowed(request.headers, self.origins, self.secure):
            return error_response(403, "origin not allowed")
        token = session_token(request.headers)
        if token:
            auth.logout(self.store, token)
        return json_response(200, {"ok": True}, (self._cookie("", 0),))

    # -- needs a session ----------------------------------------------------------------------

    async def me(self, request: HttpRequest) -> Response:
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        return json_response(
            200, {"username": staff.username, "prison": staff.prison, "now": self.store.clock()}
        )

    async def calls_of_day(self, request: HttpRequest) -> Response:
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        now = self.store.clock()
        try:
            offset = timedelta(minutes=int(request.query.get("utc_offset_min", ["0"])[0]))
            day_text = request.query.get("day", [""])[0]
            local_now = datetime.fromtimestamp(now, UTC) + offset
            day = date.fromisoformat(day_text) if day_text else local_now.date()
            if abs(offset) > timedelta(hours=14):
                raise ValueError
        except (ValueError, OverflowError):
            return error_response(400, "day must be YYYY-MM-DD and utc_offset_min minutes east of UTC")
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - offset
        rows = board.board(
            self.store, staff.prison, start.timestamp(), start.timestamp() + 86400, now, self.calls
        )
        store = board.store_status(self.store, self.log, staff.prison)
        for row in rows:  # a call whose records are waiting to be written (store error)
            row["records_waiting"] = row["call_id"] in store["calls"]
        return json_response(200, {"day": day.isoformat(), "now": now, "calls": rows, "store": store})

    async def call_history(self, request: HttpRequest) -> Response:
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        call_id = request.path.removeprefix("/console/api/calls/")
        booking = self.store.booking(call_id) if id_problem(call_id) is None else None
        if booking is None or booking.prison != staff.prison:
            return error_response(404)
        payload = board.history(self.store, booking, self.store.clock(), self.calls)
        payload["recordings"] = recordings.listing(self.record_dir, booking.call_id)
        return json_response(200, payload)

    async def evidence(self, request: HttpRequest) -> Response:
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        digest = request.path.removeprefix("/console/api/evidence/").removesuffix(".jpg")
        if not _DIGEST.match(digest) or staff.prison not in self.log.evidence_prison(digest):
            return error_response(404)
        try:
            data = self.log.evidence_path(digest).read_bytes()
        except OSError:
            return error_response(404)
        return response(200, data, "image/jpeg")

    async def undecided_face(self, request: HttpRequest) -> Response:
        """``/console/api/identity/<alert id>``: an ``identity_unconfirmed`` alert of the staff
        member's prison with the people booked on that side and their reference photos' URLs."""
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        text = request.path.removeprefix("/console/api/identity/")
        try:
            face = identity.undecided_face(
                self.store, self.log, staff.prison, int(text) if text.isdigit() else -1
            )
        except identity.NotJudgeable:
            return error_response(404)
        return json_response(200, face.public(self.store))

    async def reference_photo(self, request: HttpRequest) -> Response:
        """``/console/api/reference/<call_id>/<person>/<sha256>``: a reference photo of a person booked
        on a call of the staff member's prison; anything else is the same 404 (``identity.py``)."""
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        parts = request.path.removeprefix("/console/api/reference/").split("/")
        try:
            call_id, person, digest = (unquote(p, errors="strict") for p in parts)
        except (UnicodeDecodeError, ValueError):  # not three parts
            return error_response(404)
        booking = self.store.booking(call_id) if call_id else None
        if booking is None or booking.prison != staff.prison:
            return error_response(404)
        path = identity.reference_photo(self.store, booking, person, digest)
        found = await asyncio.to_thread(identity.read_photo, path, digest) if path is not None else None
        if found is None:
            return error_response(404)
        return response(200, found[0], found[1])

    async def recording(self, request: HttpRequest) -> Response:
        """``/console/api/recordings/<call_id>/<file>``: one recorded webm of a call of the staff
        member's prison; anything else (other prison, unknown file, traversal) is the same 404."""
        staff = self.staff(request)
        if staff is None:
            return error_response(401, "login required")
        parts = request.path.removeprefix("/console/api/recordings/").split("/")
        if len(parts) != 2:
            return error_response(404)
        try:
            call_id, name = (unquote(p, errors="strict") for p in parts)
        except UnicodeDecodeError:
            return error_response(404)
        booking = self.store.booking(call_id) if id_problem(call_id) is None else None
        if booking is None or booking.prison != staff.prison:
            return error_response(404)
        found = recordings.find(self.record_dir, booking.call_id, name)
        if found is None:
            return error_response(404)
        accept = ("Accept-Ranges", "bytes")
        try:
            part = await asyncio.to_thread(recordings.read_part, found.path, request.headers.get("Range"))
        except recordings.RangeNotSatisfiable as exc:
            size = ("Content-Range", f"bytes */{exc.size}")
            return response(416, b"", found.content_type, (accept, size))
        except recordings.WholeFileTooLarge as exc:
            limit = recordings.MAX_PART_BYTES // 2**20
            return error_response(
                413,
                f"recording of {exc.size / 2**20:.0f} MB: larger than {limit} MB, so it is served in byte "
                "ranges (as a video or audio player asks); or copy it from the record directory",
            )
        except OSError:
            return error_response(404)
        if part.ranged:
            return response(
                206, part.data, found.content_type, (accept, ("Content-Range", part.content_range))
            )
        return response(200, part.data, found.content_type, (accept,))
