"""The console's families desk: the staff side of the family pages, on the console's port and login.

Theory of operation
-------------------
Staff check families' accounts (the ID document beside the enrolled face photo, within the
``verification_hours`` promise), approve people added later and prisoners' contacts (visitor
lists), book or decline call requests of staff-booked prisons; governors change the prison's call
settings and grant extra calls beyond the monthly allowance. Every rule, audit record and e-mail is
the store's (``monitor.store.family_staff``); this module is the desk's edge:

- ``WS /console/desk``: the desk's messages (``desk_messages.py``), one answer each. The handshake
  needs an allowed Origin and a console session (HTTP 403 / 401 otherwise, like /console/ws); the
  session is looked up again before every message, and a socket whose session ended is closed 4401.
- ``GET /console/api/family/documents/<id>`` and ``/console/api/family/photos/<person>``: an ID
  document, proof of address or face photo, each read written to the audit log first
  (``document_viewed`` / ``photo_viewed``) by the store. Pages ask for them only when a member of
  staff presses "Show", so every view is a deliberate, recorded one. Anything of another prison
  answers 404, like something that does not exist. Photos are shown inline (no script may run in
  them); a PDF is downloaded, never rendered in the console's origin.

Staff act in their own prison only and the store refuses anything else; roles (``staff``,
``governor``) are checked by the store on every governor action, whatever the page shows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from monitor.console import desk_messages as m
from monitor.console.context import session_token
from monitor.http import HttpRequest, Router, error_response, origin_allowed, response
from monitor.store import auth
from monitor.store import family_staff as staff_api
from monitor.store.database import Store, StoreError
from monitor.store.documents import DocumentVault
from monitor.store.family_common import Mailer, Refused
from policies.config import PolicyConfig

log = logging.getLogger(__name__)

CLOSE_LOGIN = 4401
MAX_BAD_FRAMES = 20
IMAGE_TYPES = ("image/jpeg", "image/png")


class FamilyDesk:
    def __init__(
        self,
        *,
        store: Store,
        config: PolicyConfig,
        mailer: Mailer,
        public_url: Callable[[], str],
        origins: tuple[str, ...],
        secure: bool,
    ) -> None:
        self.store = store
        self.config = config
        self.mailer = mailer
        self.public_url = public_url  # where families reach the server (the join links mailed)
        self.origins = origins
        self.secure = secure
        self.vault = DocumentVault(store)

    def register(self, router: Router) -> None:
        router.ws("/console/desk", self.run, self.admit)
        router.get("/console/api/family/documents/", self.document)
        router.get("/console/api/family/photos/", self.photo)

    def _staff(self, token: str | None) -> auth.Staff | None:
        return auth.session_staff(self.store, token)

    # -- documents and photos (each read audited by the store) -----------------------------------

    async def document(self, request: HttpRequest) -> Response:
        def read(store: Store, staff: auth.Staff, document_id: str) -> tuple[str, bytes]:
            return staff_api.read_document(store, self.vault, staff, document_id)

        return self._file(request, "/console/api/family/documents/", read)

    async def photo(self, request: HttpRequest) -> Response:
        return self._file(request, "/console/api/family/photos/", staff_api.read_face_photo)

    def _file(
        self, request: HttpRequest, prefix: str, read: Callable[[Store, auth.Staff, str], Any]
    ) -> Response:
        staff = self._staff(session_token(request.headers))
        if staff is None:
            return error_response(401, "login required")
        target = request.path.removeprefix(prefix)
        if not m.is_id(target):
            return error_response(404)
        try:
            content_type, data = read(self.store, staff, target)
        except Refused as exc:
            return error_response(404 if exc.code == "not_found" else 410, str(exc))
        except (StoreError, OSError) as exc:
            log.warning("a family document could not be read: %s", exc)
            return error_response(
                410, "this file cannot be read any more (deleted after the retention period)"
            )
        if content_type in IMAGE_TYPES:
            return response(200, data, content_type, (("Content-Security-Policy", "default-src 'none'"),))
        return response(
            200,
            data,
            "application/pdf",
            (
                ("Content-Disposition", 'attachment; filename="document.pdf"'),
                ("Content-Security-Policy", "sandbox"),
            ),
        )

    # -- the socket ------------------------------------------------------------------------------

    async def admit(self, request: HttpRequest) -> Response | None:
        if not origin_allowed(request.headers, self.origins, self.secure):
            return error_response(403, "origin not allowed")
        if self._staff(session_token(request.headers)) is None:
            return error_response(401, "login required")
        return None

    async def run(self, connection: ServerConnection) -> None:
        request = connection.request
        if request is None:
            return
        token = session_token(request.headers)
        connection.protocol.max_message_size = m.MAX_BYTES
        with contextlib.suppress(ConnectionClosed):
            bad = 0
            async for raw in connection:
                staff = self._staff(token)
                if staff is None:
                    await connection.close(CLOSE_LOGIN, "session ended")
                    return
                try:
                    message, ref = m.parse(raw)
                except m.MessageError as exc:
                    bad += 1
                    await connection.send(m.error(exc.ref, "bad_message", str(exc)))
                    if bad >= MAX_BAD_FRAMES:
                        await connection.close(1008, "too many bad messages")
                        return
                    continue
                bad = 0
                await connection.send(self.answer(staff, message, ref))

    def answer(self, staff: auth.Staff, message: m.Message, ref: str | None) -> str:
        try:
            return m.ok(ref, **self.act(staff, message))
        except Refused as exc:
            return m.error(ref, exc.code, str(exc))
        except StoreError as exc:
            return m.error(ref, "refused", str(exc))
        except Exception:
            log.exception("a families desk message failed")
            return m.error(ref, "server_error", "something went wrong on the server; please try again")

    def act(self, staff: auth.Staff, message: m.Message) -> dict[str, Any]:
        store, config, mailer = self.store, self.config, self.mailer
        if isinstance(message, m.Read):
            if message.kind == "settings":
                return self._settings(staff)
            return {
                "verification": staff_api.verification_queue(store, staff, config),
                "people": staff_api.people_queue(store, staff),
                "contacts": staff_api.contact_queue(store, staff),
                "requests": staff_api.request_queue(store, staff),
                "verification_hours": config.verification_hours,
                "now": store.clock(),
            }
        if isinstance(message, m.Decide):
            return self._decide(staff, message)
        if isinstance(message, m.BookRequest):
            here = staff_api.prison_settings(store, staff)
            start = message.starts_at.replace(tzinfo=here.tz)
            booked = staff_api.book_for_request(
                store, staff, message.request, start, config, mailer, self.public_url()
            )
            return {"call_id": booked.call_id, "starts_at": booked.starts_at.isoformat()}
        if isinstance(message, m.ChangeSettings):
            staff_api.change_settings(store, staff, **message.changes)
            return self._settings(staff)
        if isinstance(message, m.Allowances):
            return {
                "month": message.month,
                "prisoners": staff_api.prisoners(store, staff, message.month, config),
                "grants": staff_api.grants(store, staff, message.month),
                "monthly_allowance": config.monthly_allowance,
            }
        grant = staff_api.grant_extra_calls(
            store, staff, message.prisoner, message.month, message.extra_calls, message.reason
        )
        return {"grant": grant}

    def _decide(self, staff: auth.Staff, message: m.Decide) -> dict[str, Any]:
        store, config, mailer = self.store, self.config, self.mailer
        target, reason = message.target, message.reason or ""
        match message.kind:
            case "verify":
                staff_api.verify_account(store, staff, target, config, mailer)
            case "refuse_account":
                staff_api.refuse_account(store, staff, target, reason, config, mailer)
            case "approve_person":
                staff_api.approve_person(store, staff, target, config, mailer)
            case "refuse_person":
                staff_api.refuse_person(store, staff, target, reason, config, mailer)
            case "approve_contact":
                staff_api.approve_contact(store, staff, target, mailer)
            case "refuse_contact":
                staff_api.refuse_contact(store, staff, target, reason, mailer)
            case _:
                staff_api.decline_request(store, staff, target, reason, mailer)
        return {"done": message.kind}

    def _settings(self, staff: auth.Staff) -> dict[str, Any]:
        here = staff_api.prison_settings(self.store, staff)
        local = datetime.fromtimestamp(self.store.clock(), UTC).astimezone(here.tz)
        return {
            "settings": here.public(),
            "role": staff_api.role(self.store, staff),
            "month": f"{local:%Y-%m}",
            "username": staff.username,
        }
