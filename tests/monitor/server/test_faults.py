"""Faults (issue 6), with real parts: the real server (signalling, relay, analysis worker process
with the real models, policy session, SQLite store and its audit recorder), real aiortc devices
playing the fixture clips, a real `monitor serve` process killed with SIGKILL, and a real full
filesystem (a tmpfs filled to the last byte, then freed) under the recordings. Each test is
bounded by explicit time-outs.

(The analysis-worker crash is in test_call_faults.py.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from support.live_server import CLEAN_CLIP, book_now, join_device, ping_pong, serving, wait_state
from support.serve_process import MONITOR, printed_links
from support.small_disk import small_disk
from support.waiting import until

from monitor.call.call import Call
from monitor.console import board
from monitor.server.serve import Server
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.decisions import State, StateChanged
from signalling.client import ClipTrack, Device, ToneTrack, load_clip

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


@pytest.fixture(scope="module")
def clean() -> list[np.ndarray]:
    return ping_pong(load_clip(CLEAN_CLIP, max_frames=60))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("faults")
    store = Store(folder / "monitor.db")
    async with serving(store=store) as srv:
        yield srv
    store.close()


async def device(server: Server, call: Call, role: str, frames: list[np.ndarray]) -> Device:
    return (await join_device(server, call, role, frames))[0]  # a store token: the server has a store


def audit(server: Server, call_id: str, kind: str) -> list[Any]:
    assert server.store is not None
    return [r for r in AuditLog(server.store).for_call(call_id) if r.kind == kind]


async def test_visitor_network_drop_and_reconnect_within_the_grace_window(
    server: Server, clean: list[np.ndarray]
) -> None:
    call = book_now(server, "fault-reconnect")
    pool = server.pool
    assert pool is not None
    prison = await device(server, call, "prisoner", clean)
    visitor = await device(server, call, "visitor", clean)
    again: Device | None = None
    try:
        await until(lambda: call.state is State.LIVE, 120, "the call to go live")
        before = len(call.decisions)
        await visitor.close()  # the visitor's network goes: signalling and media with it
        await until(lambda: "v1" not in call.devices, 10, "the server to notice the drop")
        dropped_at = call.now()
        await asyncio.sleep(2.0)
        again = await device(server, call, "visitor", clean)  # the same link, within the grace
        assert call.now() - dropped_at < call.config.reconnect_grace_s
        key = call.source_key("v1")
        analysed = pool.stats().streams[key].analysed
        # the new connection's frames are analysed again (the check goes on watching the visitor)
        await until(lambda: pool.stats().streams[key].analysed > analysed + 10, 60, "analysis to resume")
        await asyncio.sleep(call.config.reconnect_grace_s)  # past the grace: nothing comes due
        assert call.state is State.LIVE
        changes = [d for d in call.decisions[before:] if isinstance(d, StateChanged)]
        assert changes == [], changes  # the call went on: no pause, no end
        assert call.gate.is_open
        presence = [(r.kind, r.data["participant"]) for r in audit(server, call.call_id, "left")]
        assert ("left", "v1") in presence
        assert len(audit(server, call.call_id, "joined")) == 3  # prisoner, visitor, visitor again
    finally:
        for dev in (visitor, prison, again):
            if dev is not None:
                await dev.close()
        await call.close()


async def test_prison_side_disappears_the_call_pauses_and_staff_are_alerted(
    server: Server, clean: list[np.ndarray]
) -> None:
    call = book_now(server, "fault-prison-gone")
    prison = await device(server, call, "prisoner", clean)
    visitor = await device(server, call, "visitor", clean)
    try:
        await until(lambda: call.state is State.LIVE, 120, "the call to go live")
        await prison.close()  # the prison terminal vanishes and does not come back
        limit = call.config.reconnect_grace_s + call.config.no_face_pause_after_s + 10
        await until(lambda: call.state is State.PAUSED, limit, "the call to pause")
        assert not call.gate.is_open  # the visitor now receives the paused slate, not the prison side
        await until(lambda: audit(server, call.call_id, "alert"), 5, "the alert in the audit log")
        alert = audit(server, call.call_id, "alert")[0]
        assert alert.data["reason"] == "no_face" and alert.data["source"] == "side:prisoner", alert.data
        # the console's board shows the pause, the alert unacknowledged, and who is left
        assert server.store is not None
        row = server.store.booking(call.call_id)
        assert row is not None
        summary = board.call_summary(server.store, AuditLog(server.store), row, time.time(), server.calls)
        assert summary["state"] == "paused" and summary["unacknowledged"] >= 1
        assert [p["participant"] for p in summary["present"]] == ["v1"]
        assert any(r.data["participant"] == "A1234BC" for r in audit(server, call.call_id, "left"))
    finally:
        await visitor.close()
        await prison.close()
        await call.close()


async def test_recording_disk_full_pauses_the_call_until_the_recording_is_written_again(
    server: Server, clean: list[np.ndarray], tmp_path: Path
) -> None:
    """Every call is recorded: a recording that cannot be written (a real tmpfs filled to the last
    byte) pauses the call with ``recording_error`` and staff are told; once space is back the
    recorders write new parts and the call resumes after the security check."""
    with small_disk(tmp_path, "256m") as disk:
        server.record_dir = disk.path
        try:
            call = book_now(server, "fault-disk-full")
        finally:
            server.record_dir = None
        prison = await device(server, call, "prisoner", clean)
        visitor = await device(server, call, "visitor", clean)
        try:
            await wait_state(prison, "live", timeout=120)
            folder = disk.path / call.call_id
            try:
                await until(lambda: any(p.stat().st_size > 0 for p in folder.glob("v1.camera.*.webm")), 30)
            except AssertionError:
                raise AssertionError([(p.name, p.stat().st_size) for p in folder.iterdir()]) from None
            disk.fill()
            paused = await wait_state(prison, "paused", timeout=30)
            assert paused["reasons"] == ["recording_error"], paused
            assert "cannot be recorded" in paused["explanation"], paused
            assert not call.gate.is_open
            await until(
                lambda: audit(server, call.call_id, "recording_failed"), 10, "a recording_failed record"
            )
            failed = audit(server, call.call_id, "recording_failed")[0]
            assert "No space left on device" in failed.data["error"], failed.data

            def alerts() -> list[Any]:
                return [
                    r for r in audit(server, call.call_id, "alert") if r.data["reason"] == "recording_error"
                ]

            await until(alerts, 10, "the recording_error alert")
            alert = alerts()[0]
            assert "No space left on device" in alert.data["detail"], alert.data
            await asyncio.sleep(4.0)  # the check would pass by now: the recording holds the call
            assert call.state is State.PAUSED
            assert server.store is not None
            row = server.store.booking(call.call_id)
            assert row is not None
            summary = board.call_summary(server.store, AuditLog(server.store), row, time.time(), server.calls)
            assert summary["unacknowledged"] >= 2  # the pause's alert and the failed file

            disk.free()
            await wait_state(prison, "live", timeout=60)  # new parts reach the disk, then the check
            failed_files = {r.data["file"] for r in audit(server, call.call_id, "recording_failed")}
            archives = failed_files - {"timeline.jsonl"}
            assert archives, failed_files
            for archive in archives:  # each archive that failed is written again, in a new part
                parts = sorted(folder.glob(f"{archive}.*.webm"), key=lambda p: int(p.name.split(".")[2]))
                assert int(parts[-1].name.split(".")[2]) > 1 and parts[-1].stat().st_size > 0, parts
            timeline = (folder / "timeline.jsonl").read_text().splitlines()
            assert sum('"recording_error"' in line for line in timeline) >= 1  # the lines kept were written
        finally:
            await visitor.close()
            await prison.close()
            await call.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _booking_file(folder: Path, call_id: str) -> Path:
    document = json.loads(BOOKING.read_text())
    starts = datetime.now(UTC) - timedelta(seconds=1)
    document.update(
        call_id=call_id, starts_at=starts.isoformat(), ends_at=(starts + timedelta(minutes=30)).isoformat()
    )
    shutil.copy(BOOKING.parent / "v1.jpg", folder / "v1.jpg")
    path = folder / "booking.json"
    path.write_text(json.dumps(document))
    return path


def _serve(folder: Path, booking: Path) -> tuple[subprocess.Popen[str], list[dict[str, str]]]:
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    return process, printed_links(process)[0]


async def _call_through(links: list[dict[str, str]], clean: list[np.ndarray]) -> list[Device]:
    devices = []
    for role in ("prisoner", "visitor"):
        url = next(x["url"] for x in links if x["role"] == role)
        base, token = url.split("/join/")
        dev = Device(base.replace("http://", "ws://") + "/ws/call")
        await dev.open()
        assert (await dev.join(token))["type"] == "joined"
        await dev.call(ClipTrack(clean), ToneTrack())
        devices.append(dev)
    return devices


async def test_server_killed_mid_call_store_and_audit_survive_and_the_call_is_marked_interrupted(
    tmp_path: Path, clean: list[np.ndarray], loopback_ice: None
) -> None:
    booking = _booking_file(tmp_path, "fault-kill")
    process, links = _serve(tmp_path, booking)
    devices: list[Device] = []
    try:
        devices = await _call_through(links, clean)
        store = Store(tmp_path / "m.db")
        try:

            def live() -> bool:
                row = store.call("fault-kill")
                return row is not None and row.state == "live"

            await until(live, 120, "the call to be live in the store")
        finally:
            store.close()
        children = _children(process.pid)
        assert children  # its analysis worker
        process.send_signal(signal.SIGKILL)  # no shutdown code runs
        assert process.wait(timeout=10) == -signal.SIGKILL
        # the orphaned analysis worker notices and leaves (it would otherwise hold ~400 MB forever)
        gone = lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children)  # noqa: E731
        await until(gone, 15, "the orphaned worker to exit")
    finally:
        for dev in devices:
            await dev.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    verify = await asyncio.to_thread(
        subprocess.run,
        [*MONITOR, "audit", "verify", "--db", str(tmp_path / "m.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0 and verify.stdout.startswith("ok:"), verify.stderr
    restarted, links_again = _serve(tmp_path, booking)
    try:
        store = Store(tmp_path / "m.db")
        try:
            row = store.call("fault-kill")
            # flagged interrupted; the restarted server serves it again, from its security check
            assert row is not None and row.interrupted
            assert store.booking("fault-kill") is not None
            log = AuditLog(store)
            assert log.verify().ok
            records = log.for_call("fault-kill")
            assert "joined" in [r.kind for r in records]
            assert any(r.kind == "state" and r.data["state"] == "live" for r in records)  # before the kill
        finally:
            store.close()
        assert {x["call_id"] for x in links_again} == {"fault-kill"}  # still on: served again
        # the earlier links' tokens still work after the restart (new links do not void them)
        base = links_again[0]["url"].split("/join/")[0]
        earlier = [{**x, "url": f"{base}/join/{x['url'].split('/join/')[1]}"} for x in links]
        devices = await _call_through(earlier, clean)
        for dev in devices:
            await dev.close()
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0
        assert restarted.stderr is not None
        assert "marked interrupted (the server stopped while they ran): fault-kill" in restarted.stderr.read()
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.wait()
    assert os.path.exists(tmp_path / "m.db")  # noqa: ASYNC240 (one stat, the server is gone)
