"""/console/watch: a member of staff watches and listens to a running call (receive-only WebRTC).

One WebSocket, one peer connection. Admitted at the handshake like the feed (another Origin: HTTP
403, no valid session: 401; a session ended since: close 4401), the console sends ``watch`` with a
call id of its prison; the server offers one video and one audio track per booked seat (prisoner
first, then the visitors, in booking order), read from the call's relay feeds through a gate of its
own that is always open: staff see and hear the call also while it is paused for the participants,
and a seat with no device shows the waiting slate. The console answers; the watch is audited. The
peer connection closes when the socket closes or the call ends. The relayed frames are only read
(the gated tracks copy them), never changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from monitor.console import messages
from monitor.console.context import ConsoleParts, session_token
from monitor.store import auth

CLOSE_LOGIN = 4401  # the session ended while connected (a refused handshake is an HTTP 401/403)
ANSWER_TIMEOUT_S = 30.0
MEDIA_RESTARTED = (
    "the call's media was restarted on the server (the call is paused for its security check); "
    "press Watch to see it again"
)


class WatchRefused(Exception):
    pass


class CallWatch:
    def __init__(self, console: ConsoleParts) -> None:
        self.console = console

    async def run(self, connection: ServerConnection) -> None:
        request = connection.request
        if request is None:
            return
        token = session_token(request.headers)
        staff = auth.session_staff(self.console.store, token)
        if staff is None:  # admitted at the handshake, ended since
            await connection.close(CLOSE_LOGIN, "session ended")
            return
        pc: Any = None
        tracks: list[Any] = []
        try:
            message = await self._next(connection, messages.WatchCall)
            assert isinstance(message, messages.WatchCall)
            call = self._call(staff, message.call_id)
            pc, tracks = await self._offer(connection, call)
            answer = await self._next(connection, messages.Answer, ANSWER_TIMEOUT_S)
            assert isinstance(answer, messages.Answer)
            from aiortc import RTCSessionDescription

            try:
                await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
            except Exception as exc:
                raise WatchRefused(f"the answer cannot be used: {str(exc)[:200]}") from None
            if not self.console.log.health().ok:  # a watch is recorded first: not while it cannot be
                raise WatchRefused(
                    "records cannot be written now (store error): watching waits until they can"
                )
            await self.console.log.append_async(
                "staff_action",
                {"action": "watch"},
                prison=staff.prison,
                call_id=message.call_id,
                actor=f"staff:{staff.username}",
            )
            await connection.send(messages.encode("watching", call_id=message.call_id))
            await self._until_done(connection, call, token, pc)
        except WatchRefused as exc:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(messages.encode("error", message=str(exc)))
                await connection.close(1008, "watch refused")
        except ConnectionClosed:
            pass
        finally:
            for track in tracks:
                track.stop()
            if pc is not None:
                await pc.close()

    async def _next(self, connection: ServerConnection, kind: type, timeout: float = 10.0) -> Any:
        try:
            raw = await asyncio.wait_for(connection.recv(), timeout)
        except TimeoutError:
            raise WatchRefused(f"expected {kind.__name__.lower()} within {timeout:.0f} s") from None
        try:
            message = messages.parse(raw, messages.WATCH_TYPES)
        except messages.MessageError as exc:
            raise WatchRefused(str(exc)) from None
        if not isinstance(message, kind):
            raise WatchRefused(f"expected a {kind.__name__.lower()} message")
        return message

    def _call(self, staff: auth.Staff, call_id: str) -> Any:
        booking = self.console.store.booking(call_id)
        if booking is None or booking.prison != staff.prison:
            raise WatchRefused("no such call")
        calls = self.console.calls
        call = calls.get(call_id) if calls is not None else None
        runs_here = hasattr(call, "video") or hasattr(call, "watch_peer")  # watch_peer: in a relay worker
        if call is None or str(call.state) == "ended" or not runs_here:
            raise WatchRefused("this call is not running now")
        return call

    async def _offer(self, connection: ServerConnection, call: Any) -> tuple[Any, list[Any]]:
        remote = getattr(call, "watch_peer", None)
        if callable(remote):  # a call in a relay worker process: the peer lives there (remote_call.py)
            pc, sdp, slots, servers = await remote()
            tracks: list[Any] = []
        else:
            pc, tracks, sdp, slots, servers = await watch_peer(call)
        offer = {"type": "offer", "sdp": sdp, "slots": slots, "ice_servers": servers}
        await connection.send(json.dumps(offer))
        return pc, tracks

    async def _until_done(self, connection: ServerConnection, call: Any, token: str | None, pc: Any) -> None:
        ended = getattr(call, "ended", None)
        while True:
            if auth.session_staff(self.console.store, token) is None:
                await connection.close(CLOSE_LOGIN, "session ended")
                return
            if getattr(pc, "lost", False):  # its relay worker died: the view would freeze silently
                await connection.send(messages.encode("error", message=MEDIA_RESTARTED))
                await connection.close(1011, "media restarted")
                return
            if str(call.state) == "ended" or (ended is not None and ended.is_set()):
                await connection.send(messages.encode("ended"))
                await connection.close(1000, "call ended")
                return
            with contextlib.suppress(TimeoutError):
                raw = await asyncio.wait_for(connection.recv(), 1.0)
                await connection.send(messages.encode("error", message="nothing more to send while watching"))
                del raw


async def watch_peer(call: Any) -> tuple[Any, list[Any], str, list[dict[str, str]], list[dict[str, Any]]]:
    """A receive-only view of ``call`` (a ``monitor.call.call.Call`` in this process): the peer
    connection with its offer made, its tracks, the offer SDP, the slots and the ICE servers."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    from monitor.media.tracks import Gate, GatedAudioTrack, GatedVideoTrack

    servers = list(getattr(call, "ice_servers", []) or [])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(**s) for s in servers]))
    always = Gate()
    always.is_open = True
    tracks: list[Any] = []
    slots = []
    for seat in call.seats.values():
        participant = seat.participant
        video = GatedVideoTrack(call.video[participant], always, call.clock, call.slates)
        audio = GatedAudioTrack(call.audio[participant], always, call.clock)
        pc.addTrack(video)
        pc.addTrack(audio)
        tracks += [video, audio]
        slots.append({"participant": participant, "name": seat.name, "role": seat.role.value})
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription
    return pc, tracks, str(offer.sdp), slots, servers
