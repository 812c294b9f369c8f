"""A relay worker that dies never releases a call held for staff (issue 13, point 1): the call is
placed again with the pause reasons that still need staff (``AddCall.carried``), and the new
session there stays paused through a passed security check until staff approve on the console.

Real server on a real port with a real SQLite store, a real relay worker process (with its own
analysis worker) killed with SIGKILL, real aiortc devices playing the booked man's clip, a real
console WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from typing import Any, cast

import numpy as np
import pytest
import pytest_asyncio
from support.live_server import booking_now, call_clips, join_device, serving, wait_state
from support.waiting import until
from websockets.asyncio.client import connect
from websockets.typing import Origin

from monitor.call.call import Call
from monitor.relay_workers.pool import WorkerLink
from monitor.relay_workers.remote_call import RemoteCall
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from signalling.client import Device

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    return call_clips()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("relay-held")
    store = Store(folder / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    async with serving(store=store, relay_workers=1) as srv:
        yield srv
    store.close()


async def approve(server: Server, call_id: str) -> dict[str, Any]:
    """Staff approve resuming ``call_id`` on the console: its answer (``done`` or ``error``)."""
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Basic {basic}\r\n"
        f"Origin: {server.base_url}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    head = (await reader.read()).decode(errors="replace")
    writer.close()
    cookie = re.search(r"monitor_session=([^;\s]+)", head)
    assert cookie, head
    async with connect(
        f"ws://127.0.0.1:{server.port}/console/ws",
        origin=Origin(server.base_url),
        additional_headers={"Cookie": f"monitor_session={cookie.group(1)}"},
    ) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        await ws.send(json.dumps({"type": "resume", "call_id": call_id, "ref": "r1"}))
        while True:
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if reply["type"] in ("done", "error") and reply.get("ref") == "r1":
                return reply


async def join_both(server: Server, call: RemoteCall, frames: list[np.ndarray]) -> list[Device]:
    """The prisoner's and the visitor's devices, joined with store links, playing ``frames``."""
    return [
        (await join_device(server, cast(Call, call), role, frames))[0] for role in ("prisoner", "visitor")
    ]


async def test_a_call_held_for_staff_stays_held_when_its_relay_worker_dies(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    call = server.add_booking(booking_now("relay-held"))
    assert isinstance(call, RemoteCall) and server.store is not None
    await asyncio.wait_for(call.placed.wait(), 60)
    devices = await join_both(server, call, clips["clean"])
    prisoner, visitor = devices
    try:
        await wait_state(visitor, "live", timeout=120)
        await visitor.send({"type": "capture_attempt", "detail": "screen recorder"})
        await wait_state(prisoner, "paused", timeout=10)

        link = call.link
        assert isinstance(link, WorkerLink)
        dead = link.pid
        os.kill(dead, signal.SIGKILL)
        assert (await prisoner.expect("error", timeout=10))["code"] == "relay_restarted"
        await until(
            lambda: call.placed.is_set() and isinstance(call.link, WorkerLink) and call.link.pid != dead, 180
        )
        before = len(AuditLog(server.store).for_call(call.call_id))
        devices = await join_both(server, call, clips["clean"])
        prisoner, visitor = devices
        assert [d.joined["state"] for d in devices if d.joined] == ["paused", "paused"]

        def after() -> list[Any]:
            assert server.store is not None
            return AuditLog(server.store).for_call(call.call_id)[before:]

        # the devices are back, the booked man is in view: the check passes, the call stays held
        await until(
            lambda: any(r.kind == "recheck" and r.data["awaiting_staff"] for r in after()),
            120,
            "the security check to pass on the restarted worker",
        )
        await asyncio.sleep(3.0)
        assert str(call.state) == "paused"
        assert not any(r.kind == "state" and r.data["state"] == "live" for r in after())
        held = [r for r in AuditLog(server.store).for_call(call.call_id) if r.kind == "alert"]
        assert any(
            r.data["reason"] == "capture_attempt"
            and "relay worker" in r.data["detail"]
            and r.data["needs_staff"]
            for r in held
        ), [r.data for r in held]

        assert (await approve(server, call.call_id))["type"] == "done"
        await wait_state(visitor, "live", timeout=60)
    finally:
        for device in devices:
            await device.close()
        await call.close()
