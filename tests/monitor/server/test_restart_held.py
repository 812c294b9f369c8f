"""A restart never releases a call held for staff (issue 13, point 1), with real parts: a real
``monitor serve`` process (its analysis worker, SQLite store, console) killed with SIGKILL while a
call is paused for a capture attempt, then again while a member of staff has paused it; each time
it is started again, the devices (real aiortc peers playing the booked man's clip) rejoin with
their links, the security check passes, and the call stays paused until staff approve on the
console; then it goes live. A call staff ended stays ended.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.live_server import CLEAN_CLIP, booking_now, ping_pong, wait_state
from support.serve_process import MONITOR, printed_links
from support.waiting import until
from websockets.asyncio.client import connect
from websockets.typing import Origin

from monitor.server.serve import Server
from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import Store
from policies.config import load_policy
from signalling.client import ClipTrack, Device, ToneTrack, load_clip

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
CALL = "held-restart"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    return ping_pong(load_clip(CLEAN_CLIP, max_frames=60))


def booking_file(folder: Path) -> Path:
    document = json.loads(BOOKING.read_text())
    starts = datetime.now(UTC) - timedelta(seconds=1)
    ends = starts + timedelta(minutes=30)
    document.update(call_id=CALL, starts_at=starts.isoformat(), ends_at=ends.isoformat())
    shutil.copy(BOOKING.parent / "v1.jpg", folder / "v1.jpg")
    path = folder / "booking.json"
    path.write_text(json.dumps(document))
    return path


def serve(folder: Path, booking: Path) -> tuple[subprocess.Popen[str], str]:
    """``monitor serve`` as a user runs it; returns the process and its base URL."""
    process = subprocess.Popen(
        [
            *MONITOR,
            "serve",
            "--booking",
            str(booking),
            "--port",
            "0",
            "--db",
            str(folder / "m.db"),
            "--analysis-workers",
            "1",
            "--ice-host",
            "127.0.0.1",
            "--no-record",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    _, console = printed_links(process)
    return process, console["console"].removesuffix("/console")


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)  # no shutdown code runs
    assert process.wait(timeout=10) == -signal.SIGKILL


def records(folder: Path) -> list[AuditRecord]:
    with Store(folder / "m.db") as store:
        return AuditLog(store).for_call(CALL)


def stored_state(folder: Path) -> str | None:
    with Store(folder / "m.db") as store:
        row = store.call(CALL)
    return row.state if row is not None else None


async def join(base: str, tokens: dict[str, str], clean: list[np.ndarray]) -> dict[str, Device]:
    """Each device joins with its link (``device.joined`` says the call's state then) and calls."""
    devices = {}
    for role, token in tokens.items():
        device = Device(base.replace("http://", "ws://") + "/ws/call")
        await device.open()
        joined = await device.join(token)
        assert joined["type"] == "joined", joined
        await device.call(ClipTrack(clean), ToneTrack())
        devices[role] = device
    return devices


def sign_in(base: str) -> str:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{base}/console/login",
        method="POST",
        headers={"Authorization": f"Basic {basic}", "Origin": base},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return str(reply.headers["Set-Cookie"]).split(";")[0]


async def console_action(base: str, action: dict[str, Any]) -> dict[str, Any]:
    """One staff action on the console's WebSocket; its answer (``done`` or ``error``)."""
    cookie = await asyncio.to_thread(sign_in, base)
    async with connect(
        base.replace("http://", "ws://") + "/console/ws",
        origin=Origin(base),
        additional_headers={"Cookie": cookie},
    ) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        await ws.send(json.dumps({**action, "call_id": CALL, "ref": "a1"}))
        while True:
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if reply["type"] in ("done", "error") and reply.get("ref") == "a1":
                return reply


async def close_all(devices: dict[str, Device]) -> None:
    for device in devices.values():
        await device.close()


async def held_over_a_restart(
    folder: Path, booking: Path, tokens: dict[str, str], clean: list[np.ndarray], reason: str
) -> None:
    """The server dies while the call is paused for ``reason``; started again, the call stays
    paused through a passed security check until staff approve, then goes live."""
    before = len(records(folder))
    process, base = serve(folder, booking)
    devices: dict[str, Device] = {}
    try:
        devices = await join(base, tokens, clean)
        assert [d.joined["state"] for d in devices.values() if d.joined] == ["paused", "paused"]
        # the devices are back and the booked man is in view: the check passes, the call stays held
        await until(
            lambda: any(r.kind == "recheck" and r.data["awaiting_staff"] for r in records(folder)[before:]),
            120,
            "the security check to pass after the restart",
        )
        await asyncio.sleep(3.0)  # a released call went live ~3 s after its devices rejoined
        assert stored_state(folder) == "paused"
        after = records(folder)[before:]
        assert not any(r.kind == "state" and r.data["state"] == "live" for r in after)
        held = [r for r in after if r.kind == "alert" and r.data["reason"] == reason]
        assert held and held[0].data["needs_staff"] and "restart" in held[0].data["detail"], held

        reply = await console_action(base, {"type": "resume"})
        assert reply["type"] == "done", reply
        await wait_state(devices["visitor"], "live", timeout=60)
        await until(lambda: stored_state(folder) == "live", 10, "the store to say live")
        if reason == "capture_attempt":  # the next round: staff pause it, and the server dies
            reply = await console_action(base, {"type": "pause", "note": "a check"})
            assert reply["type"] == "done", reply
            await wait_state(devices["visitor"], "paused", timeout=10)
            await until(lambda: stored_state(folder) == "paused", 10, "the store to say paused")
            kill(process)
    finally:
        await close_all(devices)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


async def test_a_call_held_for_staff_stays_held_across_a_killed_server_until_staff_approve(
    tmp_path: Path, clean: list[np.ndarray], loopback_ice: None
) -> None:
    add = await asyncio.to_thread(
        subprocess.run,
        [
            *MONITOR,
            "staff",
            "add",
            "alice",
            "--prison",
            "HMP Example",
            "--password-stdin",
            "--db",
            str(tmp_path / "m.db"),
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    booking = booking_file(tmp_path)
    process, base = serve(tmp_path, booking)
    assert process.stdout is not None
    devices: dict[str, Device] = {}
    try:
        with Store(tmp_path / "m.db") as store:  # the links `monitor book` would print: store tokens
            row = store.booking(CALL)
            assert row is not None
            tokens = {
                role: store.issue_join_token(
                    CALL, participant, role, row.starts_at - 900, row.ends_at, revoke_earlier=False
                )
                for role, participant in (("prisoner", "A1234BC"), ("visitor", "v1"))
            }
        devices = await join(base, tokens, clean)
        await wait_state(devices["visitor"], "live", timeout=120)
        await devices["visitor"].send({"type": "capture_attempt", "detail": "screen recorder"})
        await wait_state(devices["visitor"], "paused", timeout=10)
        await until(lambda: stored_state(tmp_path) == "paused", 10, "the store to say paused")
        kill(process)
    finally:
        await close_all(devices)
        if process.poll() is None:
            process.kill()
            process.wait()

    await held_over_a_restart(
        tmp_path, booking, tokens, clean, "capture_attempt"
    )  # killed again, staff-paused
    await held_over_a_restart(tmp_path, booking, tokens, clean, "staff_pause")
    verify = await asyncio.to_thread(
        subprocess.run,
        [*MONITOR, "audit", "verify", "--db", str(tmp_path / "m.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr


async def test_a_call_staff_ended_stays_ended_after_a_restart(tmp_path: Path) -> None:
    """Ended is ended: a call staff ended is not served again when its booking is given to the
    restarted server, and one whose end was written (the console writes the action first) but
    not acted on before the server stopped ends as soon as it is rebuilt."""
    store = Store(tmp_path / "m.db")
    ended, half = booking_now("ended-call"), booking_now("half-ended-call")
    first = Server([ended, half], load_policy(), port=0, analysis_workers=0, store=store)
    await first.start()
    try:
        call = first.calls.get("ended-call")
        assert call is not None
        await call.staff_end("done", "alice")
        await until(lambda: stored(store, "ended-call") == "ended", 10, "the end in the store")
        AuditLog(store).append(  # what the console writes before it acts; the server stops first
            "staff_action", {"action": "end", "note": "over"}, prison="HMP Example", call_id="half-ended-call"
        )
    finally:
        await first.stop()
    again = Server([ended, half], load_policy(), port=0, analysis_workers=0, store=store)
    await again.start()
    try:
        assert again.calls.get("ended-call") is None  # not served again
        await until(lambda: stored(store, "half-ended-call") == "ended", 10, "the half-ended call to end")
        token = store.issue_join_token(
            "ended-call", "v1", "visitor", time.time() - 60, time.time() + 600, revoke_earlier=False
        )
        device = Device(f"ws://127.0.0.1:{again.port}/ws/call")
        await device.open()
        try:
            refused = await device.join(token)
            assert refused["type"] == "error" and refused["code"] == "call_over", refused
        finally:
            await device.close()
    finally:
        await again.stop()
        store.close()


def stored(store: Store, call_id: str) -> str | None:
    row = store.call(call_id)
    return row.state if row is not None else None
