"""Several ``monitor serve`` nodes in one test: real servers on loopback ports sharing one store
and a real Redis (``support.redis_server``), each a :class:`~monitor.cluster.node.ClusterNode`.

In-process nodes (``nodes``) share one SQLite file, as nodes share one PostgreSQL database; the
tests that kill a node use ``monitor serve`` processes on PostgreSQL instead. ``Console`` is a
member of staff on one node's console: signed in, reading its feed, sending actions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from monitor.admin import import_booking
from monitor.call.admission import Limits
from monitor.call.seats import JOIN_EARLY_S
from monitor.cluster.node import ClusterNode, Settings
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.database import Store
from policies.booking import Booking
from policies.config import load_policy
from support.ice import loopback_ice

PASSWORD = "correct horse battery"


@contextlib.asynccontextmanager
async def nodes(
    db: Path,
    redis_url: str,
    names: Sequence[str],
    *,
    routing: str = "proxy",
    analysis_workers: int = 1,
    limits: Limits | None = None,
    node_ttl_s: float = 15.0,
) -> AsyncIterator[dict[str, Server]]:
    """A server per name, started in order, sharing ``db`` and Redis; stopped on exit. The nodes
    and the test share one event loop on a shared machine, so a node's report lives 15 s here
    (5 s in service): a test's slow moment must not look like a node's death."""
    servers: dict[str, Server] = {}
    with loopback_ice():
        try:
            for name in names:
                settings = Settings(redis_url, name, routing=routing, heartbeat_s=0.5, node_ttl_s=node_ttl_s)
                server = Server(
                    [],
                    load_policy(),
                    port=0,
                    analysis_workers=analysis_workers,
                    store=Store(db),
                    cluster=ClusterNode(settings, limits),
                    limits=limits,
                )
                servers[name] = server
                await server.start()
            yield servers
        finally:
            for server in reversed(servers.values()):
                await server.stop()
                server.store.close()


def book(store: Store, booking: Booking) -> dict[str, str]:
    """Put ``booking`` in the store; a join token per participant."""
    import_booking(store, booking)
    opens = booking.starts_at.timestamp() - JOIN_EARLY_S
    closes = booking.ends_at.timestamp()
    tokens = {
        booking.prisoner.id: store.issue_join_token(
            booking.call_id, booking.prisoner.id, "prisoner", opens, closes
        )
    }
    for visitor in booking.participants:
        tokens[visitor.id] = store.issue_join_token(booking.call_id, visitor.id, "visitor", opens, closes)
    return tokens


def ws_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/call"


class Console:
    """A member of staff signed in on one node's console, its feed open."""

    def __init__(self, server: Server, cookie: str, feed: ClientConnection) -> None:
        self.server = server
        self.cookie = cookie
        self.feed = feed
        self.records: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, server: Server, username: str) -> Console:
        """Sign ``username`` (made with :func:`add_staff`) in on ``server``'s console."""
        origin = f"http://127.0.0.1:{server.port}"
        basic = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(
            f"{origin}/console/login",
            method="POST",
            headers={"Authorization": f"Basic {basic}", "Origin": origin},
        )
        reply = await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
        cookie = reply.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        feed = await connect(
            f"ws://127.0.0.1:{server.port}/console/ws",
            origin=origin,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"monitor_session={cookie}"},
        )
        await feed.send(json.dumps({"type": "hello"}))
        console = cls(server, cookie, feed)
        await console.next("welcome")
        return console

    async def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        for i, message in enumerate(self._held):
            if message["type"] == kind:
                return self._held.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.feed.recv(), max(0.01, deadline - loop.time())))
            if message["type"] == "records":
                self.records += message["records"]
            if message["type"] == kind:
                return message
            if message["type"] != "records":
                self._held.append(message)

    async def record(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first record (seen so far, or pushed within ``timeout``) matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = next((r for r in self.records if predicate(r)), None)
            if found is not None:
                return found
            await self.next("records", max(0.01, deadline - loop.time()))

    async def act(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send an action; its ``done`` or ``error`` answer."""
        await self.feed.send(json.dumps({"ref": "t", **message}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            raw = json.loads(await asyncio.wait_for(self.feed.recv(), max(0.01, deadline - loop.time())))
            if raw["type"] == "records":
                self.records += raw["records"]
            elif raw["type"] in ("done", "error"):
                return raw

    async def close(self) -> None:
        await self.feed.close()


def add_staff(store: Store, username: str, prison: str) -> None:
    auth.add_staff(store, username, prison, PASSWORD)
