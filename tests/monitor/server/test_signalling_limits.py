"""What one connection may send on the call WebSocket, against the real server: a burst, then a
steady rate; a flood past it is answered with ``rate_limited`` error frames, never reaches the
call, and the connection is closed; a device sending what a real one sends is never limited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from support.live_server import booking_now, serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitor.call.call import Call
from monitor.server.serve import Server
from monitor.server.signalling import MAX_ERRORS, MESSAGE_BURST, MESSAGES_PER_S, MessageBudget
from policies.decisions import AlertRepeated
from policies.reasons import Reason

on_the_server = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    async with serving(analysis_workers=0) as srv:
        for name in ("call-pings", "call-flood", "call-steady"):
            srv.add_booking(booking_now(name))
        yield srv


def token(server: Server, call_id: str, role: str) -> str:
    call = server.calls.get(call_id)
    assert call is not None
    return next(t for t, seat in call.seats.items() if seat.role.value == role)


async def replies_until_closed(
    ws: ClientConnection, timeout: float = 20.0
) -> tuple[list[dict[str, Any]], int]:
    """Every frame the server sends until it closes, and the close code."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except ConnectionClosed as exc:
        return frames, exc.rcvd.code if exc.rcvd is not None else -1


def test_the_budget_is_a_burst_then_a_rate() -> None:
    budget = MessageBudget.full(100.0, burst=3, per_s=2.0)
    assert [budget.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert not budget.take(100.4)  # 0.8 of a frame refilled
    assert budget.take(100.6) and not budget.take(100.6)
    assert [budget.take(110.0) for _ in range(4)] == [True, True, True, False]  # never above the burst
    assert not budget.take(109.0)  # a clock that steps back refills nothing


@on_the_server
async def test_a_ping_flood_gets_the_burst_and_the_rate_then_is_closed(server: Server) -> None:
    loop = asyncio.get_running_loop()
    async with connect(f"ws://127.0.0.1:{server.port}/ws/call", max_queue=None) as ws:
        started = loop.time()
        for _ in range(1_000):
            await ws.send('{"type": "ping"}')
        frames, code = await replies_until_closed(ws)
        elapsed = loop.time() - started
    pongs = [f for f in frames if f["type"] == "pong"]
    limited = [f for f in frames if f["type"] == "error"]
    assert code == 1008
    assert MESSAGE_BURST <= len(pongs) <= MESSAGE_BURST + MESSAGES_PER_S * elapsed + 1, (len(pongs), elapsed)
    assert len(limited) == MAX_ERRORS and {f["code"] for f in limited} == {"rate_limited"}
    assert "not acted on" in limited[0]["message"]


@on_the_server
async def test_a_capture_attempt_flood_never_reaches_the_call(server: Server) -> None:
    """1,000 capture_attempt from one device: a few reach the call (one alert, its repeats counted),
    the rest are refused at the wire and the device is disconnected; the other side stays."""
    call = server.calls.get("call-flood")
    assert isinstance(call, Call)
    url = f"ws://127.0.0.1:{server.port}/ws/call"
    async with connect(url) as prison, connect(url, max_queue=None) as ws:
        await prison.send(json.dumps({"type": "join", "token": token(server, "call-flood", "prisoner")}))
        assert json.loads(await prison.recv())["type"] == "joined"
        await ws.send(json.dumps({"type": "join", "token": token(server, "call-flood", "visitor")}))
        assert json.loads(await ws.recv())["type"] == "joined"
        flood = json.dumps({"type": "capture_attempt", "detail": "getDisplayMedia"})
        for _ in range(1_000):
            await ws.send(flood)
        frames, code = await replies_until_closed(ws)
        assert code == 1008
        assert sum(f.get("code") == "rate_limited" for f in frames) == MAX_ERRORS
        await asyncio.sleep(0.5)
        counted = [
            d.count
            for d in call.decisions
            if isinstance(d, AlertRepeated) and d.reason is Reason.CAPTURE_ATTEMPT
        ]
        # the repeats are reported at 2, 4, 8, ...: at most the budget's worth reached the call
        assert counted and max(counted) <= MESSAGE_BURST + 2 * MESSAGES_PER_S, counted
        await prison.send('{"type": "ping"}')
        while (frame := json.loads(await asyncio.wait_for(prison.recv(), 5)))["type"] != "pong":
            assert frame["type"] in ("state", "warning", "warning_cleared"), frame


@on_the_server
async def test_a_device_at_a_real_devices_pace_is_never_limited(server: Server) -> None:
    """Join, a capture report now and then and a ping a few times a second, for longer than the
    burst lasts: every frame is answered, none refused."""
    async with connect(f"ws://127.0.0.1:{server.port}/ws/call") as ws:
        await ws.send(json.dumps({"type": "join", "token": token(server, "call-steady", "visitor")}))
        assert json.loads(await ws.recv())["type"] == "joined"
        pongs = 0
        for i in range(int(MESSAGE_BURST * 1.5)):
            if i % 10 == 0:
                await ws.send(json.dumps({"type": "capture_attempt", "detail": "PrintScreen key"}))
            await ws.send('{"type": "ping"}')
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "pong":
                assert frame["type"] != "error", frame
            pongs += 1
            await asyncio.sleep(1.0 / (MESSAGES_PER_S * 0.6))
        assert pongs == int(MESSAGE_BURST * 1.5)
