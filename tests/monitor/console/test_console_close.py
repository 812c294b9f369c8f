"""The console WebSockets of the real ``monitor serve`` server let go of refused clients promptly.

A client without a session or from another Origin is refused at the handshake: a plain HTTP 401 /
403 and the server closes the TCP connection at once (no WebSocket, no close handshake to wait
for). A client refused later (a bad watch request) gets its error frame and close frame; if it never
answers the close, the server drops the TCP connection after ``CLOSE_TIMEOUT_S`` instead of
websockets' default 10 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from console_site import PASSWORD, booking_now
from support.raw_ws import CLOSE, TEXT, RawWebSocket

from monitor.admin import import_booking
from monitor.server.serve import CLOSE_TIMEOUT_S, Server
from monitor.store import auth
from monitor.store.database import Store
from policies.config import load_policy

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Server, str]]:
    store = Store(Path(tmp_path_factory.mktemp("close")) / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    booking = booking_now("call-close")
    import_booking(store, booking)
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store)
    await server.start()
    login = auth.login(store, "alice", PASSWORD, "127.0.0.1")
    assert login.token is not None
    try:
        yield server, login.token
    finally:
        await server.stop()
        store.close()


async def held_after_close(
    server: Server, path: str, headers: dict[str, str], send: str | None, code: int
) -> tuple[float, list[str]]:
    """Seconds the server keeps the connection after its close frame (never answered), and the
    text frames it sent before closing."""
    ws = await RawWebSocket.open("127.0.0.1", server.port, path, headers)
    texts = []
    try:
        if send is not None:
            await ws.send(send)
        while True:
            frame = await ws.recv()
            if frame.opcode == TEXT:
                texts.append(frame.text)
                continue
            assert frame.opcode == CLOSE and frame.close_code == code, frame
            break
        return await ws.until_dropped(timeout=8), texts
    finally:
        ws.abort()


async def refused_handshake(server: Server, path: str, headers: dict[str, str]) -> tuple[bytes, float]:
    """A WebSocket upgrade the server answers with plain HTTP: its whole reply, and the seconds
    from sending the request until the server closed the TCP connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = await asyncio.wait_for(reader.read(), 8)  # until the server closes the connection
        return reply, loop.time() - started
    finally:
        writer.transport.abort()


@pytest.mark.parametrize("path", ["/console/ws", "/console/watch"])
@pytest.mark.parametrize(
    ("who", "status"),
    [("no session", b"401"), ("forged session", b"401"), ("other origin", b"403"), ("no origin", b"403")],
)
async def test_a_refused_client_gets_a_plain_http_answer_and_is_dropped_at_once(
    served: tuple[Server, str], path: str, who: str, status: bytes
) -> None:
    server, token = served
    headers = {"Origin": f"http://127.0.0.1:{server.port}"}
    if who == "forged session":
        headers["Cookie"] = "monitor_session=" + "x" * 43
    elif who in ("other origin", "no origin"):
        headers = {"Cookie": f"monitor_session={token}"}
        if who == "other origin":
            headers["Origin"] = "http://evil.example"
    reply, held = await refused_handshake(server, path, headers)
    assert reply.startswith(b"HTTP/1.1 " + status + b" "), reply[:200]
    assert b"Upgrade: websocket" not in reply and b"call-close" not in reply and b"alice" not in reply
    assert held <= 1.0, held


async def test_a_refused_watch_gets_its_error_then_is_dropped_within_the_close_timeout(
    served: tuple[Server, str],
) -> None:
    server, token = served
    headers = {"Origin": f"http://127.0.0.1:{server.port}", "Cookie": f"monitor_session={token}"}
    held, texts = await held_after_close(server, "/console/watch", headers, "{not json", 1008)
    assert len(texts) == 1 and json.loads(texts[0])["type"] == "error"
    assert held <= CLOSE_TIMEOUT_S + 1.0, held
