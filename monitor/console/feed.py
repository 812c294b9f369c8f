"""/console/ws: the live alert feed and the staff actions of one console.

One connection: the handshake was admitted by ``Console.admit_ws`` (a client from another Origin got
an HTTP 403, one without a valid session a 401, and no WebSocket); the session is checked once more
(it may have ended in between: close 4401 before sending anything), then wait for ``hello``, send
``welcome`` and the records missed since the client's last audit id, then two loops: *push* sends
new audit records of the staff member's prison whenever the server's audit writer commits one
(without a writer thread: whenever the hub publishes), and at least every ``POLL_S`` (records
written by other processes), reading them from the store; *read* validates and executes the
console's messages. The session is re-checked before every action and on every push, so a logout or
a disabled account ends the feed at once. A verdict on an undecided face (``confirm_identity`` /
``reject_identity``) names its alert; the face comes from the alert record (``identity.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from monitor.console import identity, messages
from monitor.console.board import ALERT_KINDS, resume_route, store_status
from monitor.console.context import ConsoleParts, session_token
from monitor.store import auth
from monitor.store.audit import AuditLog
from policies.session import RefusedEvent

POLL_S = 0.5
BATCH = 500  # records per message
HELLO_TIMEOUT_S = 10.0
RECENT_S = 12 * 3600.0  # a console that has seen nothing gets the last shift's records
CLOSE_LOGIN = 4401  # the session ended while connected (a refused handshake is an HTTP 401/403)
#: Malformed frames in a row before the connection is closed (1008), as the signalling server does.
MAX_BAD_FRAMES = 20


class AlertFeed:
    def __init__(self, console: ConsoleParts) -> None:
        self.console = console

    def _staff(self, token: str | None) -> auth.Staff | None:
        return auth.session_staff(self.console.store, token)

    async def run(self, connection: ServerConnection) -> None:
        request = connection.request
        if request is None:
            return
        token = session_token(request.headers)
        staff = self._staff(token)
        if staff is None:  # admitted at the handshake, ended since
            await connection.close(CLOSE_LOGIN, "session ended")
            return
        try:
            after = await self._hello(connection)
            if after is None:
                return
            await self._session(connection, staff, token, after)
        except ConnectionClosed:
            pass

    async def _hello(self, connection: ServerConnection) -> int | None:
        """The audit id to start after (-1: recent records), or None when the console gave up."""
        bad = 0
        while True:
            try:
                raw = await asyncio.wait_for(connection.recv(), HELLO_TIMEOUT_S)
            except TimeoutError:
                await connection.close(1008, "send hello first")
                return None
            try:
                message = messages.parse(raw)
            except messages.MessageError as exc:
                bad += 1
                if not await self._bad_frame(connection, str(exc), bad):
                    return None
                continue
            bad = 0
            if isinstance(message, messages.Hello):
                return -1 if message.after is None else message.after
            await connection.send(messages.encode("error", message="send hello first", ref=message.ref))

    async def _session(
        self, connection: ServerConnection, staff: auth.Staff, token: str | None, after: int
    ) -> None:
        log = self.console.log
        if after < 0:
            first = log.first_since(staff.prison, self.console.store.clock() - RECENT_S)
            after = log.head_id() if first is None else first - 1
        await connection.send(
            messages.encode("welcome", username=staff.username, prison=staff.prison, head=log.head_id())
        )
        pusher = asyncio.create_task(self._push(connection, staff, token, after))
        bad = 0
        try:
            async for raw in connection:
                if pusher.done():
                    break
                bad = 0 if await self._handle(connection, staff, token, raw) else bad + 1
                if bad and not await self._bad_frame(connection, None, bad):
                    break
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await pusher

    async def _push(
        self, connection: ServerConnection, staff: auth.Staff, token: str | None, after: int
    ) -> None:
        log = self.console.log
        hub = self.console.hub
        # with a writer thread the log says when a record is committed; else the hub wakes us up
        subscription = hub.subscribe() if hub is not None and log.writer is None else None
        backlog = True  # the first batch is always sent, even empty: what follows is live
        told: dict[str, Any] = {"ok": True, "detail": "", "waiting": 0, "calls": []}
        try:
            while True:
                if self._staff(token) is None:
                    await connection.close(CLOSE_LOGIN, "session ended")
                    return
                store = store_status(self.console.store, log, staff.prison)
                if store != told:  # the audit records cannot be written (or can again)
                    await connection.send(messages.encode("store", **store))
                    told = store
                marker = log.changes()  # before reading: a commit after this wakes the wait below
                records = log.since(staff.prison, after, BATCH)
                if records or backlog:
                    after = records[-1].id if records else after
                    payload = [r.public() for r in records]
                    await connection.send(messages.encode("records", records=payload, backlog=backlog))
                    backlog = False
                if len(records) < BATCH:  # a full batch: more are waiting, send them at once
                    await self._wait(subscription, log, marker)
        finally:
            close = getattr(subscription, "close", None)
            if callable(close):
                close()

    @staticmethod
    async def _wait(subscription: Any, log: AuditLog, marker: asyncio.Event) -> None:
        """Until this server commits an audit record (the hub publishes something, without a writer
        thread) or POLL_S passes."""
        if log.writer is not None:
            await log.wait_change(marker, POLL_S)
            return
        if subscription is None:
            await asyncio.sleep(POLL_S)
            return
        with contextlib.suppress(TimeoutError, StopAsyncIteration):
            await asyncio.wait_for(anext(subscription), POLL_S)

    @staticmethod
    async def _bad_frame(connection: ServerConnection, error: str | None, count: int) -> bool:
        """Report a malformed frame (``error``: its message, unless sent already); False when it
        was one too many and the connection is being closed."""
        if error is not None:
            await connection.send(messages.encode("error", message=error))
        if count < MAX_BAD_FRAMES:
            return True
        await connection.close(1008, "too many bad messages")
        return False

    async def _handle(
        self, connection: ServerConnection, staff: auth.Staff, token: str | None, raw: Any
    ) -> bool:
        """Parse and act on one frame; False when the frame was malformed (its error sent)."""
        try:
            message = messages.parse(raw)
        except messages.MessageError as exc:
            await connection.send(messages.encode("error", message=str(exc)))
            return False
        if self._staff(token) is None:
            await connection.close(CLOSE_LOGIN, "session ended")
            return True
        try:
            text = await self._act(staff, message)
        except ActionRefused as exc:
            await connection.send(messages.encode("error", message=str(exc), ref=message.ref))
            return True
        await connection.send(messages.encode("done", message=text, ref=message.ref))
        return True

    async def _act(self, staff: auth.Staff, message: messages.ClientMessage) -> str:
        store, log, calls = self.console.store, self.console.log, self.console.calls
        actor = f"staff:{staff.username}"
        if isinstance(message, messages.Hello):
            raise ActionRefused("already said hello")
        if isinstance(message, messages.Ack):
            alert = log.get(message.audit_id)
            if alert is None or alert.prison != staff.prison or alert.kind not in ALERT_KINDS:
                raise ActionRefused("no such alert")
            await self._record(
                {"action": "acknowledge", "alert_id": alert.id}, staff.prison, alert.call_id, actor
            )
            return f"alert {alert.id} acknowledged"
        if isinstance(message, messages.ConfirmIdentity | messages.RejectIdentity):
            return await self._verdict(staff, message)
        if not isinstance(message, messages.Pause | messages.Resume | messages.End):
            raise ActionRefused("not a console action")  # parse() allows only feed types here
        booking = store.booking(message.call_id)
        if booking is None or booking.prison != staff.prison:
            raise ActionRefused("no such call")
        call = calls.get(message.call_id) if calls is not None else None
        if call is None or str(call.state) == "ended":
            raise ActionRefused("this call is not running now")
        if isinstance(message, messages.Pause):
            action, data = "pause", {"note": message.note}
        elif isinstance(message, messages.Resume):
            if str(call.state) != "paused":
                raise ActionRefused("the call is not paused")
            await log.settled()  # the pause's alert may be submitted but not yet committed
            if resume_route(log.for_call(message.call_id)) == "automatic":
                raise ActionRefused(
                    "nothing to approve: the call resumes by itself when the security check passes"
                )
            if not log.health().ok:
                raise ActionRefused(
                    "records cannot be written now (store error): no call can resume until they can"
                )
            action, data = "approve_resume", {}
        else:
            action, data = "end", {"note": message.note}
        await self._record({"action": action, **data}, staff.prison, message.call_id, actor)
        if isinstance(message, messages.Pause):
            await call.staff_pause(message.note, staff.username)
        elif isinstance(message, messages.Resume):
            await call.staff_resume(staff.username)
        else:
            await call.staff_end(message.note, staff.username)
        return f"{action.replace('_', ' ')} sent to {message.call_id}"

    async def _verdict(
        self, staff: auth.Staff, message: messages.ConfirmIdentity | messages.RejectIdentity
    ) -> str:
        """Staff confirm the face of an ``identity_unconfirmed`` alert as a person booked on its
        side, or reject it as nobody booked (``identity.py``): recorded, then sent to the call."""
        store, log, calls = self.console.store, self.console.log, self.console.calls
        try:
            face = identity.undecided_face(store, log, staff.prison, message.alert_id)
        except identity.NotJudgeable as exc:
            raise ActionRefused(str(exc)) from None
        call_id = face.booking.call_id
        call = calls.get(call_id) if calls is not None else None
        if call is None or str(call.state) == "ended":
            raise ActionRefused("this call is not running now")
        participant = message.participant if isinstance(message, messages.ConfirmIdentity) else None
        if participant is not None:
            if participant not in [p.id for p in face.people(store)]:
                raise ActionRefused(f"{participant} is not booked on the {face.side} side of this call")
            if not log.health().ok:  # a confirmed face may let the call go live: as a resume
                raise ActionRefused(
                    "records cannot be written now (store error): no face can be confirmed until they can"
                )
        action = "confirm_identity" if participant is not None else "reject_identity"
        actor = f"staff:{staff.username}"
        await self._record(face.audit_data(store, action, participant), staff.prison, call_id, actor)
        try:
            if participant is not None:
                await call.staff_confirm_identity(face.source, face.track, participant, staff.username)
            else:
                await call.staff_reject_identity(face.source, face.track, staff.username)
        except RefusedEvent as exc:  # e.g. the call ended meanwhile: the record says it was not applied
            refused = {"action": "identity_refused", "alert_id": face.alert.id, "reason": str(exc)}
            await self._record(refused, staff.prison, call_id, actor)
            raise ActionRefused(f"not applied: {exc}") from None
        verdict = f"confirmed as {participant}" if participant is not None else "rejected as not booked"
        return f"face {face.track} on {face.source} {verdict} ({call_id})"

    async def _record(self, data: dict[str, Any], prison: str, call_id: str | None, actor: str) -> None:
        """Write a staff action before it is done. While records cannot be written (store error) it
        is queued and the action goes ahead (pausing or ending a call, acknowledging an alert)
        rather than waiting for the disk: the writer keeps it until it can write it."""
        log = self.console.log
        if log.health().ok:
            await log.append_async("staff_action", data, prison=prison, call_id=call_id, actor=actor)
        else:
            log.submit("staff_action", data, prison=prison, call_id=call_id, actor=actor)


class ActionRefused(Exception):
    """A well-formed action that cannot be done; the text goes back to that console."""
