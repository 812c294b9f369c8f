"""Three ``monitor serve --redis`` processes on one PostgreSQL database and one Redis, as in
service: node b is SIGKILLed mid-call with a pause that needs staff; the call continues on another
node after its security check and stays held until staff approve; an intruder on a call on b
reaches a console on a, evidence and all; SIGTERM drains a node; the audit chain of every node's
records verifies.

Real parts throughout: PostgreSQL and redis-server started for the session
(``support.postgres``, ``support.redis_server``), the nodes as operators run them, real aiortc
devices playing the booked man's clip, the console over its real WebSocket.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from support.cluster import Console, NodeProcess, add_staff, book
from support.live_server import booking_now, call_clips, recover_like_a_browser, wait_state
from support.waiting import until

from monitor.cluster.registry import Registry
from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import Store
from signalling.client import ClipTrack, Device, ToneTrack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CALL = "failover"


@pytest.fixture
def shared(tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A new PostgreSQL database and the folder its files live in (``MONITOR_STORE_DIR``, one
    for every node, as a shared volume is in service)."""
    from monitor.store.sql import STORE_DIR_ENV

    folder = tmp_path / "shared"
    folder.mkdir()
    monkeypatch.setenv(STORE_DIR_ENV, str(folder))
    url = postgres.create_database(migrated=True)
    try:
        yield url, folder
    finally:
        postgres.drop_database(url)


def records(db: str, call_id: str = CALL) -> list[AuditRecord]:
    with Store(db) as store:
        return AuditLog(store).for_call(call_id)


async def joined_device(url: str, token: str, frames: list[Any], timeout: float = 60.0) -> Device:
    """A device that joins (trying again while the call's node is being replaced) and calls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        device = Device(url)
        try:
            await device.open()
            answer = await device.join(token)
            if answer["type"] == "joined":
                await device.call(ClipTrack(frames), ToneTrack())
                recover_like_a_browser(device)
                return device
        except (ConnectionError, OSError, TimeoutError):
            answer = {"type": "closed"}
        await device.close()
        if loop.time() > deadline:
            raise AssertionError(f"no join within {timeout:.0f} s: {answer}")
        await asyncio.sleep(1.0)


async def both_devices(url: str, tokens: dict[str, str], frames: list[Any]) -> list[Device]:
    """The prisoner's and the visitor's devices, joined through the node at ``url``."""
    return [await joined_device(url, tokens[who], frames) for who in ("A1234BC", "v1")]


def booked_with_staff(db: str, call_id: str) -> dict[str, str]:
    """``call_id`` booked now, with alice on the console of its prison: the join tokens."""
    with Store(db) as store:
        add_staff(store, "alice", "HMP Example")
        return book(store, booking_now(call_id))


async def shut(devices: list[Device], nodes: dict[str, NodeProcess]) -> None:
    for device in devices:
        await device.close()
    for node in nodes.values():
        node.stop()


async def reported(redis_url: str, node: str, drain: bool, timeout: float = 10.0) -> None:
    """Until ``node``'s report says it drains (``drain``) or takes calls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _reports_drain(redis_url, node, drain):
        if loop.time() > deadline:
            raise AssertionError(f"node {node} did not report draining={drain} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def set_drain(redis_url: str, node: str, drain: bool) -> None:
    """``monitor node drain|resume NODE``, and until the node says so."""
    command = "drain" if drain else "resume"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "monitor.cli", "node", command, node, "--redis", redis_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and f"node {node}" in done.stdout, done.stdout + done.stderr
    await reported(redis_url, node, drain)


async def _reports_drain(redis_url: str, node: str, drain: bool) -> bool:
    client = Redis.from_url(redis_url)
    try:
        nodes = await Registry(client).nodes()
        return any(n.node == node and n.draining == drain for n in nodes)
    finally:
        await client.aclose()


async def owner(redis_url: str, call_id: str = CALL) -> str | None:
    client = Redis.from_url(redis_url)
    try:
        return await Registry(client).owner(call_id)
    finally:
        await client.aclose()


async def test_a_killed_node_loses_its_call_to_another_node_which_keeps_the_staff_pause(
    tmp_path: Path, shared: tuple[str, Path], redis_url: str, loopback_ice: None
) -> None:
    db, folder = shared
    clips = call_clips()
    tokens = booked_with_staff(db, CALL)
    nodes = {name: NodeProcess(db, redis_url, name, tmp_path, folder) for name in ("a", "b", "c")}
    devices: list[Device] = []
    try:
        a = nodes["a"]
        await set_drain(redis_url, "a", True)
        await set_drain(redis_url, "c", True)
        # the devices reach a; the call is placed on b, the one node taking calls
        devices = await both_devices(a.ws_url, tokens, clips["clean"])
        assert await owner(redis_url) == "b"
        await wait_state(devices[1], "live", timeout=90)
        # staff on a pause the call on b: it needs their approval to go on
        console = await Console.open(a.port, "alice")
        done = await console.act({"type": "pause", "call_id": CALL, "note": "a check"})
        assert done["type"] == "done", done
        await wait_state(devices[1], "paused", timeout=15)
        await until(lambda: _stored_state(db) == "paused", 15, "b to write the pause")
        # b dies; a and c take calls again
        await set_drain(redis_url, "a", False)
        await set_drain(redis_url, "c", False)
        before = len(records(db))
        nodes["b"].kill()
        for device in devices:
            await device.close()
        # the devices come back through a: once b's report has expired the call is placed on a live node
        devices = await both_devices(a.ws_url, tokens, clips["clean"])
        moved_to = await owner(redis_url)
        assert moved_to in ("a", "c"), moved_to
        assert devices[1].joined is not None and devices[1].joined["state"] == "paused"
        # the security check runs again there and passes; the staff pause still holds the call
        await until(
            lambda: any(r.kind == "recheck" and r.data.get("awaiting_staff") for r in records(db)[before:]),
            120,
            "the security check to pass on the new node",
        )
        await asyncio.sleep(3.0)  # a released call would go live about 3 s after its devices rejoined
        assert _stored_state(db) == "paused"
        after = records(db)[before:]
        assert not any(r.kind == "state" and r.data["state"] == "live" for r in after)
        held = [r for r in after if r.kind == "alert" and r.data["reason"] == "staff_pause"]
        assert held and held[0].data["needs_staff"] and "node b" in held[0].data["detail"], held
        row = await console.board_row(CALL)
        assert row["running"] and row["state"] == "paused" and row["resume"] == "awaiting_staff", row
        # staff on a approve: the call goes live on its new node
        done = await console.act({"type": "resume", "call_id": CALL})
        assert done["type"] == "done", done
        await wait_state(devices[1], "live", timeout=60)
        await until(
            lambda: any(r.kind == "state" and r.data["state"] == "live" for r in records(db)[before:]),
            15,
            "the new node to write the call live",
        )
        await console.close()
    finally:
        await shut(devices, nodes)
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "monitor.cli", "audit", "verify", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _stored_state(db: str) -> str | None:
    with Store(db) as store:
        row = store.call(CALL)
    return row.state if row is not None else None


async def test_an_intruder_on_bs_call_reaches_the_console_on_a_with_its_evidence(
    tmp_path: Path, shared: tuple[str, Path], redis_url: str, loopback_ice: None
) -> None:
    db, folder = shared
    clips = call_clips()
    tokens = booked_with_staff(db, "intruded")
    nodes = {name: NodeProcess(db, redis_url, name, tmp_path, folder) for name in ("a", "b")}
    devices: list[Device] = []
    try:
        a = nodes["a"]
        await set_drain(redis_url, "a", True)  # the call goes to b; its devices reach a
        console = await Console.open(a.port, "alice")
        devices = await both_devices(a.ws_url, tokens, clips["clean"])
        assert await owner(redis_url, "intruded") == "b"
        await wait_state(devices[1], "live", timeout=90)
        # an unbooked woman walks in beside the visitor: b pauses the call, a's console is told
        camera = devices[1].pc.getSenders()[0].track  # type: ignore[union-attr]
        assert isinstance(camera, ClipTrack)
        camera.play(clips["intruder"])
        alert = await console.record(lambda r: r["kind"] == "alert" and r["call_id"] == "intruded", 60.0)
        assert alert["data"]["reason"] in ("unbooked_face", "too_many_faces"), alert
        assert alert["evidence"], alert  # the frame b saw, served by a from the shared store folder
        assert (await console.get(f"/console/api/evidence/{alert['evidence']}.jpg"))[:2] == b"\xff\xd8"
        await wait_state(devices[1], "paused", timeout=15)
        await console.close()
    finally:
        await shut(devices, nodes)


async def test_sigterm_drains_a_node_it_takes_no_new_call_and_stops_when_its_calls_end(
    tmp_path: Path, shared: tuple[str, Path], redis_url: str, loopback_ice: None
) -> None:
    import signal

    db, folder = shared
    with Store(db) as store:
        add_staff(store, "alice", "HMP Example")
        first = book(store, booking_now("running"))
        second = book(store, booking_now("new"))
    node = NodeProcess(db, redis_url, "solo", tmp_path, folder)
    device = new = None
    try:
        device = Device(node.ws_url)
        await device.open()
        assert (await device.join(first["v1"]))["type"] == "joined"
        node.process.send_signal(signal.SIGTERM)
        await reported(redis_url, "solo", True)
        new = Device(node.ws_url)
        await new.open()
        refused = await new.join(second["v1"])
        assert refused["type"] == "error" and refused["code"] == "over_capacity", refused
        assert "solo: draining" in refused["message"]
        # its running call goes on: another device of it joins
        again = Device(node.ws_url)
        await again.open()
        assert (await again.join(first["A1234BC"]))["type"] == "joined"
        await again.close()
        assert node.process.poll() is None
        # the call ends (staff end it): the node stops by itself
        console = await Console.open(node.port, "alice")
        done = await console.act({"type": "end", "call_id": "running", "note": "done"})
        assert done["type"] == "done", done
        await console.close()
        assert await asyncio.to_thread(node.process.wait, 30) == 0
    finally:
        for dev in (device, new):
            if dev is not None:
                await dev.close()
        node.stop()
