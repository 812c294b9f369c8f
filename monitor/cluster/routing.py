"""A device that reaches a node other than its call's: proxied to the call's node, or redirected.

Theory of operation. The node that gets a device's ``join`` asks placement where the call runs
(``node.py``); when that is another node, the device's signalling goes there, one of two ways
(``monitor serve --routing``):

- ``proxy`` (the default): this node opens the call node's ``/ws/call`` itself, sends the device's
  ``join`` unchanged, and then copies every frame both ways until either side closes. The device
  keeps the one address it was given (one public name, one TLS certificate for the cluster); the
  call's node answers its SDP offer with its own ICE candidates, so the media go straight between
  the device and the call's node, never through this one. The proxied handshake carries
  ``X-Monitor-Routed``: a node never routes such a join again (no loops, whatever the placement).
- ``redirect``: this node answers ``{"type": "redirect", "url": ...}`` naming the call node's own
  ``/ws/call`` and closes; the device connects there and joins again (the join page and
  ``signalling.client.Device`` do). Every node needs its own public address and certificate.

docs/operations.md gives the added join latency of each, measured by ``python -m bench cluster``.
When the call's node goes away mid-call (its process died: the proxied socket drops without a
close frame), the device's socket is closed with 1012 (service restart): the join page and the
Python device reconnect with their link, and placement puts the call on a live node, where it
starts again at the security check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from monitor.cluster import ROUTINGS
from signalling import messages
from signalling.messages import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

ROUTED_HEADER = "X-Monitor-Routed"
#: The call's node must accept the proxied connection within this.
CONNECT_TIMEOUT_S = 5.0
#: Close code for a device whose call's node went away: reconnect (RFC 6455: "Service Restart").
CLOSE_MOVED = 1012


def signalling_url(node_url: str) -> str:
    """The ``/ws/call`` of a node reached at ``node_url`` (http(s)://host:port)."""
    scheme, _, rest = node_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/ws/call"


def routed(connection: ServerConnection) -> bool:
    """Whether this connection was proxied here by another node (it is never routed again)."""
    request = connection.request
    return request is not None and request.headers.get(ROUTED_HEADER) is not None


async def redirect(device: ServerConnection, node_url: str) -> None:
    await device.send(messages.encode(messages.redirect(signalling_url(node_url))))
    await device.close(1000, "joined elsewhere")


async def proxy(device: ServerConnection, join_frame: str | bytes, node: str, node_url: str) -> float:
    """Copy ``device``'s signalling to and from the call's node until either side closes; returns
    how long the call's node took to accept the connection (seconds)."""
    started = time.monotonic()
    try:
        upstream = await asyncio.wait_for(
            connect(
                signalling_url(node_url),
                additional_headers={ROUTED_HEADER: node},
                max_size=MAX_FRAME_BYTES,
                open_timeout=CONNECT_TIMEOUT_S,
                close_timeout=1.0,
            ),
            CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, InvalidHandshake, InvalidStatus) as exc:
        log.warning("call node %s (%s) cannot be reached: %s", node, node_url, exc)
        with contextlib.suppress(ConnectionClosed):
            await device.close(CLOSE_MOVED, "call server unreachable, reconnect")
        return time.monotonic() - started
    connected = time.monotonic() - started
    async with upstream:
        await upstream.send(join_frame)

        async def down() -> None:  # the call's node -> the device
            async for frame in upstream:
                await device.send(frame)

        async def up() -> None:  # the device -> the call's node
            async for frame in device:
                await upstream.send(frame)

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await _close_both(device, upstream)
    return connected


async def _close_both(device: ServerConnection, upstream: Any) -> None:
    """Whoever closed first: the other side gets the same close (code and reason); a call's node
    that vanished without a close frame makes the device reconnect (``CLOSE_MOVED``)."""
    with contextlib.suppress(ConnectionClosed, Exception):
        if upstream.close_code is not None and device.close_code is None:
            code = upstream.close_code
            if code in (1006, 1011, 1012):
                await device.close(CLOSE_MOVED, "call server went away, reconnect")
            else:
                await device.close(code, upstream.close_reason or "")
        elif device.close_code is not None:
            await upstream.close(1000, "device left")
        else:
            await device.close(CLOSE_MOVED, "reconnect")
            await upstream.close(1000, "device moved")


__all__ = ["CLOSE_MOVED", "ROUTED_HEADER", "ROUTINGS", "proxy", "redirect", "routed", "signalling_url"]
