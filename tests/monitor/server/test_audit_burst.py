"""A burst of client events through a real server: two devices send 10,000 ``capture_attempt``
messages each while another call's device joins and leaves. The wire lets each connection's budget
through and closes a connection that keeps flooding; every decision the call made is in the audit
log, in order (one alert, its repeats counted), and so are the other call's join and leave.

Real server on a real port, real SQLite store (with its writer thread), real signalling WebSockets;
no analysis workers (the decisions come from the capture attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.record.timeline import decision_record
from monitor.server.serve import Server
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.config import load_policy
from signalling.client import Device

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
BURST = 10_000


def booking_now(call_id: str, prisoner: str) -> Any:
    base = load_booking(BOOKING, load_policy())
    starts = datetime.now(UTC) - timedelta(seconds=5)
    return dataclasses.replace(
        base,
        call_id=call_id,
        prisoner=dataclasses.replace(base.prisoner, id=prisoner),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=30),
    )


async def joined(server: Server, call_id: str, role: str) -> Device:
    link = next(x for x in server.links() if x["call_id"] == call_id and x["role"] == role)
    device = Device(f"ws://127.0.0.1:{server.port}/ws/call")
    await device.open()
    reply = await device.join(link["url"].rsplit("/", 1)[1])
    assert reply["type"] == "joined", reply
    return device


async def flood(device: Device) -> int | None:
    """Send BURST attempts as fast as the socket takes them; the close code the server ended the
    connection with (it refuses what is over the connection's budget, then hangs up), or None."""
    with contextlib.suppress(ConnectionError, ConnectionClosed):
        for n in range(BURST):
            await device.send({"type": "capture_attempt", "detail": f"attempt {n}"})
        await device.send({"type": "ping"})
        await device.expect("pong", timeout=120)
    assert device.ws is not None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(device.ws.wait_closed(), 30)
    return device.ws.close_code


async def visit(server: Server) -> None:
    """The other call's prisoner joins and leaves in the middle of the burst."""
    await asyncio.sleep(0.5)
    device = await joined(server, "other", "prisoner")
    await asyncio.sleep(0.5)
    await device.send({"type": "leave"})
    await asyncio.sleep(0.2)
    await device.close()


@pytest.mark.slow
async def test_a_capture_attempt_burst_keeps_every_decision_and_other_calls_records(tmp_path: Path) -> None:
    store = Store(tmp_path / "monitor.db")
    bookings = [booking_now("burst", "A1111AA"), booking_now("other", "B2222BB")]
    server = Server(bookings, load_policy(), port=0, analysis_workers=0, store=store)
    await server.start()
    try:
        prisoner, visitor = (
            await joined(server, "burst", "prisoner"),
            await joined(server, "burst", "visitor"),
        )
        codes = await asyncio.gather(flood(prisoner), flood(visitor), visit(server))
        assert codes[:2] == [1008, 1008]  # each flood was cut at the wire
        call = server.calls.get("burst")
        assert isinstance(call, Call)
        expected = [decision_record(d) for d in call.decisions]
        log = AuditLog(store)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = [r for r in log.for_call("burst") if r.actor == "policy"]
            if len(written) >= len(expected):
                break
            await asyncio.sleep(0.1)
        assert [(r.kind, r.data.get("t")) for r in written] == [(d["kind"], d.get("t")) for d in expected]
        repeated = [r for r in written if r.kind == "alert_repeated"]
        assert repeated and max(r.data["count"] for r in repeated) >= 2  # repeats counted, not alerts
        assert sum(r.kind == "alert" for r in written) == 1
        other = [(r.kind, r.data.get("participant")) for r in log.for_call("other") if r.actor != "policy"]
        assert other == [("joined", "B2222BB"), ("left", "B2222BB")]
        for device in (prisoner, visitor):
            await device.close()
    finally:
        await server.stop()
    assert server.audit.writer.stats().failed == 0
    result = AuditLog(store).verify()
    assert result.ok, result.problem
    store.close()
