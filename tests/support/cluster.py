"""Several ``monitor serve`` nodes in one test: real servers on loopback ports sharing one store
and a real Redis (``support.redis_server``), each a :class:`~monitor.cluster.node.ClusterNode`.

In-process nodes (``nodes``) share one store, a SQLite file or a PostgreSQL database (``store_at``);
the tests that kill a node use ``monitor serve`` processes (``NodeProcess``) on PostgreSQL. ``Console`` is a
member of staff on one node's console: signed in, reading its feed, sending actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.cluster import console_feed
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
    db: Path | str,
    redis_url: str,
    names: Sequence[str],
    *,
    routing: str = "proxy",
    analysis_workers: int = 1,
    limits: Limits | None = None,
    node_ttl_s: float = 15.0,
) -> AsyncIterator[dict[str, Server]]:
    """A server per name, started in order, sharing the store at ``db`` (what ``--db`` takes) and
    Redis; stopped on exit. The nodes
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

    def __init__(self, port: int, cookie: str, feed: ClientConnection) -> None:
        self.port = port
        self.cookie = cookie
        self.feed = feed
        self.records: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, port: int, username: str) -> Console:
        """Sign ``username`` (made with :func:`add_staff`) in on the console of the node on ``port``."""
        cookie, feed = await console_feed(port, username, PASSWORD)
        console = cls(port, cookie, feed)
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

    async def get(self, path: str) -> bytes:
        """``GET path`` on this console's node with its session."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Cookie": f"monitor_session={self.cookie}"}
        )
        reply = await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
        data: bytes = reply.read()
        return data

    async def board_row(self, call_id: str) -> dict[str, Any]:
        board = json.loads(await self.get("/console/api/calls"))
        row: dict[str, Any] = next(r for r in board["calls"] if r["call_id"] == call_id)
        return row

    async def close(self) -> None:
        await self.feed.close()


def add_staff(store: Store, username: str, prison: str) -> None:
    auth.add_staff(store, username, prison, PASSWORD)


# ---- `monitor serve` processes on PostgreSQL -----------------------------------------------------


class NodeProcess:
    """``monitor serve --redis`` as an operator runs it: its own process, its stderr in a file."""

    def __init__(self, db: str, redis_url: str, name: str, folder: Path, store_dir: Path) -> None:
        import os
        import subprocess

        from support.serve_process import MONITOR, printed_links

        self.name = name
        self.log = folder / f"{name}.stderr"
        env = dict(os.environ, MONITOR_STORE_DIR=str(store_dir))
        self.process = subprocess.Popen(
            [
                *MONITOR,
                "serve",
                "--db", db,
                "--redis", redis_url,
                "--node", name,
                "--port", "0",
                "--analysis-workers", "1",
                "--ice-host", "127.0.0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
            cwd=folder,
            env=env,
        )  # fmt: skip
        try:
            _, console = printed_links(self.process)
        except AssertionError:
            raise AssertionError(f"node {name} did not start: {self.log.read_text()[-2000:]}") from None
        self.base = console["console"].removesuffix("/console")
        self.port = int(self.base.rsplit(":", 1)[1])

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws/call"

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)  # no shutdown code runs
        self.process.wait(timeout=10)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # at once, not a drain
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
