"""The signalling WebSocket handler: one connection = one device.

A connection must ``join`` with its link's token first; then it may ``offer`` (answered with the
relay's SDP), report ``capture_attempt``, ``ping`` or ``leave``. Every bad frame gets an ``error``
frame naming the problem and the connection stays usable; too many bad frames in a row, or a
connection that never joins, is closed (its last error frame first). A device whose join link is
withdrawn while it is connected gets a ``bad_token`` error and is closed at the next link re-check
(every ``LINK_RECHECK_S``). A client that then never answers the close frame is dropped after the
server's close timeout (``monitor.server.serve.CLOSE_TIMEOUT_S``, 1 s, not websockets' 10 s). Nothing a
client sends can disturb another connection: each handler only touches its own device, and every
failure is caught here. In a cluster (``monitor serve --redis``), a join whose call runs on another
node, or is placed on one now, is proxied or redirected there (``router``, see
``monitor.cluster.routing``) before this server looks at it further.

What one connection may send is budgeted (:class:`MessageBudget`, a token bucket): a burst of
``MESSAGE_BURST`` frames, then ``MESSAGES_PER_S`` a second. A device of the join page sends a join,
an offer and a capture_attempt per thing its user does: far less. A frame over the budget is not
parsed or acted on; it gets a ``rate_limited`` error frame and counts as a bad frame, so a client
that keeps flooding is closed (1008) after ``MAX_ERRORS`` of them in a row, and no flood reaches the
call (1,000 capture_attempt a second would otherwise each be a policy event and a record).

Before any of that, :meth:`SignallingServer.admit` checks the handshake: a browser page of another
origin (any ``Origin`` header but the server's own, see ``monitor.http.origin_allowed``) gets an
HTTP 403 and no WebSocket, so a page elsewhere cannot use a link token it got hold of. A client
that sends no ``Origin`` (a native app, ``signalling.client``) is let through: the token decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from monitor.call.calls import Calls
from monitor.call.handle import CallHandle
from monitor.call.seats import JoinRefused
from monitor.cluster.routing import routed
from monitor.http import HttpRequest, error_response, origin_allowed
from signalling import messages
from signalling.messages import LINK_RECHECK_S, CaptureAttemptMsg, Join, Leave, Offer, Ping, ProtocolError

log = logging.getLogger(__name__)

#: Consecutive bad frames before we give up on a client.
MAX_ERRORS = 20
#: A connection must join within this many seconds.
JOIN_TIMEOUT_S = 30.0
#: Frames one connection may send at once, and then per second (see :class:`MessageBudget`).
MESSAGE_BURST = 30
MESSAGES_PER_S = 10.0


@dataclass
class MessageBudget:
    """A token bucket: ``burst`` frames at once, refilled at ``per_s`` a second (``now``: seconds
    on any steady clock)."""

    burst: float
    per_s: float
    tokens: float
    last: float

    @classmethod
    def full(cls, now: float, burst: float = MESSAGE_BURST, per_s: float = MESSAGES_PER_S) -> MessageBudget:
        return cls(burst, per_s, burst, now)

    def take(self, now: float) -> bool:
        """Spend one frame's worth; False when the budget is spent (the frame is over it)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.per_s)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Router(Protocol):
    """Where calls run in a cluster (``monitor.cluster.node.ClusterNode``)."""

    async def route(self, token: str) -> tuple[str, str] | None: ...  # None: here; else (node, url)

    async def forward(
        self, device: ServerConnection, join_frame: str | bytes, node: str, url: str
    ) -> None: ...

    def node_origins(self) -> set[str]: ...  # every node's own origin (its pages' Origin header)


class SignallingServer:
    """``link_refusal``: what a joined device's link gets now (None while it still works, else the
    error frame's code and message); with it, every joined link is re-checked every
    ``LINK_RECHECK_S`` and a device whose link was withdrawn is told so and disconnected.
    ``origins``/``secure``: the allowed browser origins (empty: the server's own) and whether the
    server is reached over TLS, as for the console."""

    def __init__(
        self,
        calls: Calls[CallHandle[Any]],
        link_refusal: Callable[[str], tuple[str, str] | None] | None = None,
        recheck_s: float = LINK_RECHECK_S,
        *,
        origins: tuple[str, ...] = (),
        secure: bool = False,
    ) -> None:
        self.calls = calls
        self.link_refusal = link_refusal
        self.recheck_s = recheck_s
        self.origins = origins
        self.secure = secure
        self.joined: dict[ServerConnection, str] = {}  # connection -> the link token it joined with
        # cluster hook: monitor.cluster.node.ClusterNode: where each call runs (None: only here)
        self.router: Router | None = None
        self._rechecker: asyncio.Task[None] | None = None

    async def admit(self, request: HttpRequest) -> Response | None:
        """The handshake of ``/ws/call``: a page of another origin gets an HTTP 403 (nothing else)."""
        if origin_allowed(request.headers, self.origins, self.secure, required=False):
            return None
        if self.router is not None and request.headers.get("Origin") in self.router.node_origins():
            return None  # a join page of another node of the cluster, redirected here
        return error_response(403, "origin not allowed")

    async def recheck_links(self) -> int:
        """Disconnect every device whose link no longer works; how many were."""
        dropped = 0
        for ws, token in list(self.joined.items()):
            refusal = self.link_refusal(token) if self.link_refusal is not None else None
            if refusal is None or self.joined.pop(ws, None) is None:
                continue
            dropped += 1
            with contextlib.suppress(Exception):  # it may be closing already
                await ws.send(messages.encode(messages.error(*refusal)))
                await ws.close(1008, "join link withdrawn")
        return dropped

    async def _recheck_forever(self) -> None:
        while self.joined:
            await asyncio.sleep(self.recheck_s)
            try:
                await self.recheck_links()
            except Exception:  # a store hiccup must not stop the re-checks
                log.exception("re-checking join links failed")
        self._rechecker = None

    def _joined(self, ws: ServerConnection, token: str) -> None:
        self.joined[ws] = token
        if self.link_refusal is not None and self._rechecker is None:
            self._rechecker = asyncio.ensure_future(self._recheck_forever())

    async def handle(self, ws: ServerConnection) -> None:
        call: CallHandle[Any] | None = None
        device: object | None = None  # what the call gave at the join, handed back to it
        errors = 0
        loop = asyncio.get_running_loop()
        budget = MessageBudget.full(loop.time())

        async def send(frame: dict[str, Any]) -> None:
            await ws.send(messages.encode(frame))

        async def close() -> None:
            await ws.close(1000, "call ended")

        async def fail(code: str, message: str, opens_at: str | None = None) -> None:
            nonlocal errors
            errors += 1
            await send(messages.error(code, message, opens_at=opens_at))
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
                if not budget.take(loop.time()):
                    await fail(
                        "rate_limited",
                        f"more than {MESSAGES_PER_S:g} messages a second: this one was not acted on",
                    )
                    continue
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
                        if self.router is not None and not routed(ws):  # cluster hook
                            elsewhere = await self.router.route(message.token)
                            if elsewhere is not None:  # the call runs on another node: go there
                                await self.router.forward(ws, raw, *elsewhere)
                                return
                        call, seat = self.calls.seat_for(message.token)
                        device = await call.join(seat, send, close)
                        self._joined(ws, message.token)
                    except JoinRefused as exc:
                        await fail(exc.code, exc.message, exc.opens_at)
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
            self.joined.pop(ws, None)
            if call is not None and device is not None:
                await call.leave(device)
