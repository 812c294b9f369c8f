"""The console WebSockets of the real ``monitor serve`` server close refused clients promptly.

A client that is refused (no session, wrong Origin, a bad watch request) gets its close frame (and,
where there is one, its error frame first); if it never answers the close, the server drops the TCP
connection after ``CLOSE_TIMEOUT_S`` instead of websockets' default 10 s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from console_site import PASSWORD, booking_now
from raw_ws import CLOSE, TEXT, RawWebSocket

from monitor import auth
from monitor.admin import import_booking
from monitor.serve import CLOSE_TIMEOUT_S, Server
from monitor.store import Store
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


@pytest.mark.parametrize("path", ["/console/ws", "/console/watch"])
async def test_a_client_without_a_session_is_dropped_within_the_close_timeout(
    served: tuple[Server, str], path: str
) -> None:
    server, _ = served
    origin = {"Origin": f"http://127.0.0.1:{server.port}"}
    held, texts = await held_after_close(server, path, origin, None, 4401)
    assert texts == [] and held <= CLOSE_TIMEOUT_S + 1.0, held


async def test_a_client_from_another_origin_is_dropped_within_the_close_timeout(
    served: tuple[Server, str],
) -> None:
    server, token = served
    headers = {"Origin": "http://evil.example", "Cookie": f"monitor_session={token}"}
    held, texts = await held_after_close(server, "/console/ws", headers, None, 4403)
    assert texts == [] and held <= CLOSE_TIMEOUT_S + 1.0, held


async def test_a_refused_watch_gets_its_error_then_is_dropped_within_the_close_timeout(
    served: tuple[Server, str],
) -> None:
    server, token = served
    headers = {"Origin": f"http://127.0.0.1:{server.port}", "Cookie": f"monitor_session={token}"}
    held, texts = await held_after_close(server, "/console/watch", headers, "{not json", 1008)
    assert len(texts) == 1 and json.loads(texts[0])["type"] == "error"
    assert held <= CLOSE_TIMEOUT_S + 1.0, held
