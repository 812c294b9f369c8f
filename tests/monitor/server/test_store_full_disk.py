"""`monitor serve` with its database on a full file system (a real tmpfs filled to the last byte):
sign-in answers a clear 503 (never a 500), the audit health hook names the call whose records wait
(the server turns it into ``FaultRaised(store_error)`` for that call), staff on the console are
told (feed and board), /metrics counts the retries, and once space is back every record is
written, the hook clears, and `audit verify` passes; a live call whose records wait pauses with
``store_error`` and resumes after the security check once they are written.

Real server on a real port, real SQLite store, real devices on the signalling WebSocket, a real
console WebSocket; the first test has no analysis workers (its decisions come from the device's
capture attempts), the second a real analysis worker and real aiortc devices playing a fixture clip.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.live_server import CLEAN_CLIP, join_device, join_token, ping_pong, wait_state
from support.small_disk import small_disk
from websockets.asyncio.client import ClientConnection, connect

from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.record.timeline import decision_record
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog, StoreHealth
from monitor.store.database import Store
from policies.config import load_policy
from policies.decisions import RecheckPassed, State, StateChanged
from policies.reasons import Reason
from signalling.client import ClipTrack, Device, ToneTrack, load_clip

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
PASSWORD = "correct horse battery"


def booking_now(call_id: str) -> Any:
    base = load_booking(BOOKING, load_policy())
    starts = datetime.now(UTC) - timedelta(seconds=5)
    return dataclasses.replace(
        base, call_id=call_id, starts_at=starts, ends_at=starts + timedelta(minutes=30)
    )


def http(method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def sign_in(server: Server, username: str) -> tuple[int, dict[str, str], bytes]:
    basic = base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Origin": server.base_url}
    return await asyncio.to_thread(http, "POST", f"{server.base_url}/console/login", headers)


async def until(check: Callable[[], object], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def store_message(feed: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The console feed's next ``store`` message."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(feed.recv(), timeout))
        if message["type"] == "store":
            return message


async def test_a_full_disk_is_told_to_the_calls_and_staff_and_loses_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path, "8m") as disk:
        store = Store(disk.path / "monitor.db")
        auth.add_staff(store, "alice", "HMP Example", PASSWORD)
        auth.add_staff(store, "bob", "HMP Example", PASSWORD)
        server = Server([booking_now("c1")], load_policy(), port=0, analysis_workers=0, store=store)
        await server.start()
        try:
            await _run(server, store, disk)
        finally:
            await server.stop()
        result = AuditLog(store).verify()
        assert result.ok, result.problem
        store.close()


async def _run(server: Server, store: Store, disk: Any) -> None:
    told: list[StoreHealth] = []
    server.audit.on_health(told.append)  # what the call side turns into FaultRaised / FaultCleared
    status, headers, _ = await sign_in(server, "alice")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    feed = await connect(
        f"ws://127.0.0.1:{server.port}/console/ws", origin=server.base_url,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
    )  # fmt: skip
    await feed.send(json.dumps({"type": "hello", "after": None}))
    device = Device(f"ws://127.0.0.1:{server.port}/ws/call")
    await device.open()
    prisoner = next(x for x in server.links() if x["role"] == "prisoner")
    assert (await device.join(prisoner["url"].rsplit("/", 1)[1]))["type"] == "joined"
    call = server.calls.get("c1")
    assert isinstance(call, Call)
    await until(lambda: any(r.kind == "joined" for r in AuditLog(store).for_call("c1")))

    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow the WAL
    disk.fill()
    # sign-in writes the attempt first: on a full disk that is a clear 503, never a 500
    status, headers, body = await sign_in(server, "bob")
    assert status == 503 and headers["Retry-After"] == "30"
    assert "cannot write to its database now (disk full or failing)" in json.loads(body)["error"]

    for n in range(3):
        await device.send({"type": "capture_attempt", "detail": f"screen recorder {n}"})
    await until(lambda: told and not told[-1].ok)
    assert told[-1].calls == {"c1"} and "disk is full" in told[-1].detail
    message = await store_message(feed)
    assert message["ok"] is False and message["calls"] == ["c1"] and message["waiting"] > 0
    status, _, body = await asyncio.to_thread(
        http, "GET", f"{server.base_url}/console/api/calls", {"Cookie": cookie}
    )
    board = json.loads(body)
    assert status == 200 and board["store"]["ok"] is False
    assert [c["records_waiting"] for c in board["calls"]] == [True]
    status, _, body = await sign_in(server, "alice")  # a sign-in is recorded: none while it cannot be
    assert status == 503
    await asyncio.sleep(0.5)  # retried meanwhile
    _, _, page = await asyncio.to_thread(http, "GET", f"{server.base_url}/metrics", {})
    lines = page.decode().splitlines()
    assert "monitor_audit_store_ok 0" in lines
    retried = next(x for x in lines if x.startswith('monitor_audit_records_total{result="retried"}'))
    assert int(retried.split()[-1]) > 0

    await device.send({"type": "leave"})  # one more record while the disk is full
    await asyncio.sleep(0.3)
    disk.free()
    await until(lambda: told[-1].ok)
    while not (message := await store_message(feed))["ok"]:  # the count waiting goes down first
        assert message["calls"] == ["c1"]
    assert message["calls"] == [] and message["detail"] == ""
    await feed.close()
    await device.close()

    # every decision the call made, and the join and the leave, are in the log, in order
    expected = [decision_record(d)["kind"] for d in call.decisions]
    await until(lambda: [r.kind for r in AuditLog(store).for_call("c1") if r.actor == "policy"] == expected)
    kinds = [r.kind for r in AuditLog(store).for_call("c1")]
    assert kinds.index("joined") < kinds.index("alert") < kinds.index("left")
    _, _, page = await asyncio.to_thread(http, "GET", f"{server.base_url}/metrics", {})
    assert "monitor_audit_store_ok 1" in page.decode().splitlines()
    assert (await sign_in(server, "alice"))[0] == 200


async def test_a_call_whose_records_cannot_be_written_pauses_and_resumes_after_the_check(
    tmp_path: Path, loopback_ice: None
) -> None:
    """A live call (real devices playing the booked man's clip, real analysis) whose records wait
    for a full disk pauses with ``store_error``; once space is back and its records are written
    it resumes after the security check, and every record is in the log, in order."""
    clip = ping_pong(load_clip(CLEAN_CLIP, max_frames=60))
    with small_disk(tmp_path, "8m") as disk:
        store = Store(disk.path / "monitor.db")
        server = Server([booking_now("c2")], load_policy(), port=0, analysis_workers=1, store=store)
        await server.start()
        devices: list[Any] = []
        try:
            call = server.calls.get("c2")
            assert isinstance(call, Call)
            prisoner, _ = await join_device(server, call, "prisoner", clip)
            visitor, _ = await join_device(server, call, "visitor", clip)
            devices += [prisoner, visitor]
            await wait_state(prisoner, "live", timeout=120)
            again = join_token(server, call, "visitor")  # issued now: the full disk will take no token

            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow the WAL
            disk.fill()
            await visitor.close()  # the visitor's network drops: a record the disk cannot take
            paused = await wait_state(prisoner, "paused", timeout=30)
            assert paused["reasons"] == ["store_error"], paused
            assert "cannot be logged" in paused["explanation"], paused
            assert not call.gate.is_open and call.state is State.PAUSED
            visitor = Device(f"ws://127.0.0.1:{server.port}/ws/call")  # back within the grace
            devices.append(visitor)
            await visitor.open()
            assert (await visitor.join(again))["state"] == "paused"
            await visitor.call(ClipTrack(clip), ToneTrack())
            await asyncio.sleep(4.0)  # the check would pass by now: the fault holds the call
            assert call.state is State.PAUSED and server.audit.health().ok is False

            disk.free()
            await wait_state(prisoner, "live", timeout=60)  # written again, then the check passed
            assert server.audit.health().ok
            store_pause = next(
                d
                for d in call.decisions
                if isinstance(d, StateChanged) and d.reasons == (Reason.STORE_ERROR,)
            )
            resumed = [d for d in call.decisions if isinstance(d, StateChanged) and d.t > store_pause.t]
            assert [d.state for d in resumed] == [State.LIVE]
            assert any(isinstance(d, RecheckPassed) and d.t > store_pause.t for d in call.decisions)
        finally:
            for device in devices:
                await device.close()
            await server.stop()
        expected = [decision_record(d)["kind"] for d in call.decisions]
        assert [r.kind for r in AuditLog(store).for_call("c2") if r.actor == "policy"] == expected
        result = AuditLog(store).verify()
        assert result.ok, result.problem
        store.close()
