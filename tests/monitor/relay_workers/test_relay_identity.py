"""A staff verdict on an undecided face, for a call that runs in a relay worker process.

Real server on a real port (``--relay-workers 1``: one relay worker process with its analysis
worker), a real store, real aiortc devices: the visitor's camera shows the ``undecided`` fixture's
face (booked with another woman's photo; the real analysis can neither confirm nor rule her out).
A console on /console/ws confirms the face from its alert: the verdict goes through the pipe
(``ipc.StaffIdentity``), the worker's session applies it and the call goes live. A verdict the
worker's session refuses comes back through the pipe in the session's words.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from support.live_server import booking_now, call_clips, join_device, ping_pong, serving, wait_state
from websockets.asyncio.client import ClientConnection, connect

from monitor.relay_workers.remote_call import RemoteCall
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from signalling.client import load_clip

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
UNDECIDED = ROOT / "fixtures" / "bookings" / "undecided" / "booking.json"
UNDECIDED_CLIP = ROOT / "fixtures" / "clips" / "undecided.webm"
PASSWORD = "correct horse battery"


def login(server: Server) -> str:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        conn.request(
            "POST", "/console/login", headers={"Authorization": f"Basic {basic}", "Origin": server.base_url}
        )
        reply = conn.getresponse()
        reply.read()
        cookie = reply.getheader("Set-Cookie") or ""
    finally:
        conn.close()
    assert reply.status == 200 and cookie, reply.status
    return cookie.split(";")[0]


async def answer(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    while (reply := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] not in ("done", "error"):
        pass
    return reply


async def alert_of(ws: ClientConnection, reason: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {reason} alert"
        message = json.loads(await asyncio.wait_for(ws.recv(), left))
        for record in message.get("records", []) if message["type"] == "records" else []:
            if record["kind"] == "alert" and record["data"]["reason"] == reason:
                return record


async def test_a_verdict_on_a_face_crosses_the_pipe_to_the_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    devices = []
    try:
        async with serving(store=store, relay_workers=1) as server:
            call = server.add_booking(booking_now("relay-identity", path=UNDECIDED))
            assert isinstance(call, RemoteCall)
            await asyncio.wait_for(call.placed.wait(), 60)
            cookie = await asyncio.to_thread(login, server)
            async with connect(
                f"ws://127.0.0.1:{server.port}/console/ws",
                origin=server.base_url,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
            ) as ws:
                await ws.send(json.dumps({"type": "hello"}))
                undecided = ping_pong(load_clip(UNDECIDED_CLIP, max_frames=60))
                stand_in: Any = call  # the front's RemoteCall: joined as a Call is
                prison, _ = await join_device(server, stand_in, "prisoner", call_clips()["clean"])
                visitor, _ = await join_device(server, stand_in, "visitor", undecided)
                devices += [prison, visitor]
                alert = await alert_of(ws, "identity_unconfirmed")
                assert str(call.state) == "paused"
                reply = await answer(
                    ws, {"type": "confirm_identity", "alert_id": alert["audit_id"], "participant": "v1"}
                )
                assert reply["type"] == "done", reply
                await wait_state(visitor, "live", timeout=30)  # the worker's session took the verdict
                assert str(call.state) == "live"

                # a face of a device the worker's call does not have: refused there, said here
                stranger = AuditLog(store).append(
                    "alert",
                    {"reason": "identity_unconfirmed", "source": "tablet", "track": 1},
                    prison="HMP Example",
                    call_id="relay-identity",
                )
                reply = await answer(ws, {"type": "reject_identity", "alert_id": stranger.id})
                assert reply == {
                    "type": "error",
                    "message": "not applied: no device 'tablet' on this call",
                    "ref": None,
                }
                assert str(call.state) == "live"
            said = [
                r.data["action"]
                for r in AuditLog(store).for_call("relay-identity")
                if r.kind == "staff_action"
            ]
            assert said == ["confirm_identity", "reject_identity", "identity_refused"]
            for device in devices:
                await device.close()
    finally:
        store.close()
