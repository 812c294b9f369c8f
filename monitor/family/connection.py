"""/family/ws: one family's WebSocket, from the handshake to the last message.

The handshake was admitted by ``app.FamilyApp.admit`` (another Origin: HTTP 403, no socket). A
socket without a valid session may only ``register``; the session cookie sent at the handshake is
looked up again before every message, so signing out elsewhere, or the session expiring, takes
effect at once. Every message gets exactly one answer (``api.ok`` / ``api.error``); a refusal
changes nothing (the store's transaction rolls back). After ``MAX_BAD_FRAMES`` malformed messages
in a row the socket is closed (1008).

Frames are capped by size before they are read: ``JSON_FRAME_BYTES`` for messages, and after an
accepted ``upload`` announcement exactly one binary frame of the announced size (at most
``documents.MAX_UPLOAD_BYTES``). websockets checks a frame's length from its header against the
connection's limit, so an oversized frame closes the socket (1009) without its payload being read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from monitor.family import accounts, api, booking, contacts, documents
from monitor.family.context import FamilyParts, session_token
from monitor.store.database import StoreError
from monitor.store.family_common import Refused
from monitor.store.family_sessions import session_account

log = logging.getLogger(__name__)

JSON_FRAME_BYTES = 64 * 1024
MAX_BAD_FRAMES = 20


def frame_limit(size: int) -> int:
    """The frame limit for a file of ``size`` bytes: a browser may compress the frame
    (permessage-deflate), which makes a JPEG a little larger; the size itself is checked after."""
    return size + size // 100 + 1024


Handler = Callable[[FamilyParts, str, Any], dict[str, Any]]
HANDLERS: dict[type, Handler] = {
    api.AddPerson: accounts.add_person,
    api.IdShowsAddress: accounts.id_shows_address,
    api.AddContact: contacts.add_contact,
    api.Slots: booking.slots,
    api.Book: booking.book,
    api.RequestCall: booking.request_call,
    api.WithdrawRequest: booking.withdraw_request,
    api.Cancel: booking.cancel,
    api.JoinLink: booking.join_link,
}


class FamilySocket:
    def __init__(self, parts: FamilyParts) -> None:
        self.parts = parts

    async def run(self, connection: ServerConnection) -> None:
        request = connection.request
        if request is None:
            return
        token = session_token(request.headers)
        address = str(connection.remote_address[0]) if connection.remote_address else ""
        connection.protocol.max_message_size = JSON_FRAME_BYTES
        with contextlib.suppress(ConnectionClosed):
            await self._serve(connection, token, address)

    async def _serve(self, connection: ServerConnection, token: str | None, address: str) -> None:
        bad = 0
        upload: tuple[api.Upload, str | None] | None = None
        async for raw in connection:
            account_id = session_account(self.parts.store, token)
            if upload is not None:  # this frame is the announced file, or the upload is off
                (announced, ref), upload = upload, None
                connection.protocol.max_message_size = JSON_FRAME_BYTES
                if isinstance(raw, str) or account_id is None:
                    await connection.send(
                        api.error(ref, "upload_cancelled", "the file did not follow; send it again")
                    )
                    continue
                await connection.send(
                    await self._answer(ref, documents.receive(self.parts, account_id, announced, raw))
                )
                continue
            try:
                message, ref = api.parse(raw)
            except api.MessageError as exc:
                bad += 1
                await connection.send(api.error(exc.ref, exc.code, str(exc)))
                if bad >= MAX_BAD_FRAMES:
                    await connection.close(1008, "too many malformed messages")
                    return
                continue
            bad = 0
            if account_id is None:
                if isinstance(message, api.Register):
                    await connection.send(
                        await self._answer(ref, accounts.register(self.parts, message, address))
                    )
                else:
                    await connection.send(api.error(ref, "login_required", "please sign in first"))
                continue
            if isinstance(message, api.Upload):
                try:
                    fields = documents.announce(self.parts, account_id, message)
                except Exception as exc:
                    await connection.send(self._refusal(ref, exc))
                    continue
                # the limit is in place before the page is told to send the file
                upload = (message, ref)
                connection.protocol.max_message_size = frame_limit(message.size)
                await connection.send(api.ok(ref, **fields))
                continue
            await connection.send(await self._dispatch(message, ref, account_id, address))

    async def _dispatch(
        self, message: api.Message, ref: str | None, account_id: str | None, address: str
    ) -> str:
        parts = self.parts
        if isinstance(message, api.Register):
            return await self._answer(ref, accounts.register(parts, message, address))
        assert account_id is not None
        if isinstance(message, api.Status):
            return self._call(ref, lambda: accounts.status(parts, account_id))
        handler = HANDLERS[type(message)]
        return self._call(ref, lambda: handler(parts, account_id, message))

    def _call(self, ref: str | None, work: Callable[[], dict[str, Any]]) -> str:
        try:
            return api.ok(ref, **work())
        except Exception as exc:
            return self._refusal(ref, exc)

    async def _answer(self, ref: str | None, work: Any) -> str:
        try:
            return api.ok(ref, **(await work))
        except Exception as exc:
            return self._refusal(ref, exc)

    @staticmethod
    def _refusal(ref: str | None, exc: Exception) -> str:
        if isinstance(exc, Refused):
            return api.error(ref, exc.code, str(exc))
        if isinstance(exc, api.MessageError):
            return api.error(ref, exc.code, str(exc))
        if isinstance(exc, StoreError):
            return api.error(ref, "refused", str(exc))
        log.exception("a family message failed")
        return api.error(ref, "server_error", "something went wrong on our side; please try again")
