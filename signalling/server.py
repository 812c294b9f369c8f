"""The signalling WebSocket handler: one connection = one device.

A connection must ``join`` with its link's token first; then it may ``offer`` (answered with the
relay's SDP), report ``capture_attempt``, ``ping`` or ``leave``. Every bad frame gets an ``error``
frame naming the problem and the connection stays usable; too many bad frames in a row, or a
connection that never joins, is closed (its last error frame first); a client that then never
answers the close frame is dropped after the server's close timeout (``monitor.serve.CLOSE_TIMEOUT_S``,
1 s, not websockets' 10 s). Nothing a client sends can disturb another connection:
each handler only touches its own device, and every failure is caught here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from monitor.call import Call, Calls, Device, JoinRefused
from signalling import messages
from signalling.messages import CaptureAttemptMsg, Join, Leave, Offer, Ping, ProtocolError

log = logging.getLogger(__name__)

#: Consecutive bad frames before we give up on a client.
MAX_ERRORS = 20
#: A connection must join within this many seconds.
JOIN_TIMEOUT_S = 30.0


class SignallingServer:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def handle(self, ws: ServerConnection) -> None:
        call: Call | None = None
        device: Device | None = None
        errors = 0

        async def send(frame: dict[str, Any]) -> None:
            await ws.send(messages.encode(frame))

        async def close() -> None:
            await ws.close(1000, "call ended")

        async def fail(code: str, message: str) -> None:
            nonlocal errors
            errors += 1
            await send(messages.error(code, message))
            if errors >= MAX_ERRORS:
                await ws.close(1008, "too many bad messages")

        try:
            while True:
                timeout = None if device is not None else JOIN_TIMEOUT_S
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    await send(messages.error("join_timeout", f"no join within {JOIN_TIMEOUT_S:.0f} s"))
                    await ws.close(1008, "no join")
                    return
                try:
                    message = messages.parse_client(raw)
                except ProtocolError as exc:
                    await fail(exc.code, exc.message)
                    continue
                if isinstance(message, Ping):
                    await send(messages.pong())
                    continue
                if isinstance(message, Join):
                    if device is not None:
                        await fail("already_joined", "this connection has already joined")
                        continue
                    try:
                        call, seat = self.calls.seat_for(message.token)
                        device = await call.join(seat, send, close)
                    except JoinRefused as exc:
                        await fail(exc.code, exc.message)
                    continue
                if device is None or call is None:
                    await fail("not_joined", "send a join message with your link's token first")
                    continue
                if isinstance(message, Offer):
                    try:
                        sdp = await call.answer(device, message.sdp)
                    except ValueError as exc:
                        await fail("bad_sdp", f"the offer could not be used: {exc}")
                        continue
                    await send(messages.answer(sdp))
                elif isinstance(message, CaptureAttemptMsg):
                    await call.capture_attempt(device, message.detail)
                elif isinstance(message, Leave):
                    return
                errors = 0
        except ConnectionClosed:
            pass
        except Exception:  # a bug must cost this client its connection, never the server
            log.exception("signalling handler failed")
            with contextlib.suppress(Exception):
                await send(messages.error("internal", "internal error; please reconnect"))
                await ws.close(1011, "internal error")
        finally:
            if call is not None and device is not None:
                await call.leave(device)
