"""`monitor serve --relay-workers 2`: calls run in relay worker processes, the front keeps the port.

Real server on a real port with a real SQLite store, two real relay worker processes (each with its
own analysis worker), real aiortc devices sending the fixture clips, a real console WebSocket and
watch. Nothing is simulated: a worker is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from aiortc import RTCPeerConnection, RTCSessionDescription
from support.live_server import booking_now, call_clips, join_device, serving, wait_state
from support.pictures import is_clip
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from monitor.media.tracks import PAUSED_BGR
from monitor.relay_workers.remote_call import RemoteCall
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.config import load_policy
from signalling.client import Watch, shows_slate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    return call_clips()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("relay-workers")
    store = Store(folder / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    async with serving(record_dir=folder / "record", store=store, relay_workers=2) as srv:
        yield srv
    store.close()


def book(server: Server, name: str) -> RemoteCall:
    call = server.add_booking(booking_now(name))
    assert isinstance(call, RemoteCall), "a server with relay workers makes RemoteCall stand-ins"
    return call


async def placed(call: Any, timeout: float = 60.0) -> int:
    """The pid of the worker process the call runs in."""
    await asyncio.wait_for(call.placed.wait(), timeout)
    return int(call.link.pid)


async def hub_until(subscription: Any, predicate: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not any(predicate(r) for r in seen):
        left = deadline - time.monotonic()
        assert left > 0, seen
        seen.append(await asyncio.wait_for(subscription.__anext__(), left))
    return seen


def udp_ports_of(pid: int) -> set[int]:
    """Local UDP ports of the sockets process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


CALLS: dict[str, Any] = {}


async def test_calls_run_on_different_workers_and_media_goes_straight_to_them(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    first, second = book(server, "relay-a"), book(server, "relay-b")
    pid_a, pid_b = await placed(first), await placed(second)
    assert pid_a != pid_b and {pid_a, pid_b} == set(server.relay.pids) and os.getpid() not in (pid_a, pid_b)
    prison, _ = await join_device(server, first, "prisoner", clips["clean"])
    visitor, camera = await join_device(server, first, "visitor", clips["clean"])
    CALLS.update(first=first, second=second, prison=prison, visitor=visitor, camera=camera)
    # the relay's ICE candidates in the answer are UDP ports of the worker process, not of the front
    answer = prison.pc.remoteDescription.sdp  # type: ignore[union-attr]
    ports = {int(m) for m in re.findall(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ", answer, re.I)}
    assert ports and ports <= udp_ports_of(pid_a), (ports, udp_ports_of(pid_a))
    assert not ports & udp_ports_of(os.getpid())
    received = Watch(prison.received[0])  # the prisoner's view of the visitor, forwarded by the worker
    try:
        await received.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=20)
        await wait_state(visitor, "live", timeout=120)  # the worker's analysis checked the booked face
        await received.until(is_clip(clips["clean"], within=14, samples=30), timeout=15)
    finally:
        received.stop()
    assert str(first.state) == "live"
    other, _ = await join_device(server, second, "prisoner", clips["clean"])
    CALLS["other"] = other
    for _ in range(100):  # the worker's snapshots tell the front the media is connected
        if any(d.participant == "A1234BC" and d.media_connected for d in second.stats().devices):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(second.devices)
    page = server.metrics.render()
    assert 'monitor_relay_workers{state="up"} 2' in page
    assert (
        'monitor_relay_worker_calls{worker="0"} 1' in page
        and 'monitor_relay_worker_calls{worker="1"} 1' in page
    )


async def test_an_intruder_pause_reaches_the_front_hub_and_the_audit_with_evidence(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    first, prison, visitor, camera = CALLS["first"], CALLS["prison"], CALLS["visitor"], CALLS["camera"]
    subscription = server.hub.subscribe()
    try:
        camera.play(clips["intruder"])
        paused = await wait_state(prison, "paused", timeout=90)
        assert set(paused["reasons"]) <= {"unbooked_face", "too_many_faces"}, paused
        seen = await hub_until(subscription, lambda r: r["call_id"] == "relay-a" and r["kind"] == "alert")
        assert any(r["kind"] == "state" and r["state"] == "paused" for r in seen), seen
    finally:
        subscription.close()
    assert str(first.state) == "paused"
    assert server.store is not None
    for _ in range(100):  # the front's audit recorder stores the alert with the worker's frame
        alerts = [r for r in AuditLog(server.store).for_call("relay-a") if r.kind == "alert"]
        if alerts and alerts[0].evidence:
            break
        await asyncio.sleep(0.1)
    assert alerts and alerts[0].evidence, alerts
    camera.play(clips["clean"])
    await wait_state(visitor, "live", timeout=120)


async def _console(server: Server) -> tuple[Any, str]:
    origin = server.base_url
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Basic {basic}\r\n"
        f"Origin: {origin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    )
    head = (await reader.read()).decode(errors="replace")
    writer.close()
    cookie = re.search(r"monitor_session=([^;\s]+)", head)
    assert cookie, head
    return origin, cookie.group(1)


@contextlib.asynccontextmanager
async def console_watch(
    server: Server, call_id: str
) -> AsyncIterator[tuple[Any, RTCPeerConnection, dict[str, Any]]]:
    """A logged-in console watching ``call_id`` (/console/watch, a receive-only aiortc peer): the
    watch socket, the peer and the server's offer, once the server said ``watching``."""
    origin, cookie = await _console(server)
    async with connect(
        f"ws://127.0.0.1:{server.port}/console/watch",
        origin=origin,
        additional_headers={"Cookie": f"monitor_session={cookie}"},
        max_size=2**20,
    ) as watch:
        await watch.send(json.dumps({"type": "watch", "call_id": call_id}))
        offer = json.loads(await asyncio.wait_for(watch.recv(), 20))
        assert offer["type"] == "offer", offer
        pc = RTCPeerConnection()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await watch.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
            assert json.loads(await asyncio.wait_for(watch.recv(), 20))["type"] == "watching"
            yield watch, pc, offer
        finally:
            await pc.close()


async def test_staff_pause_from_the_front_pauses_the_call_in_its_worker_and_watch_works(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    first, prison, visitor = CALLS["first"], CALLS["prison"], CALLS["visitor"]
    origin, cookie = await _console(server)
    headers = {"Cookie": f"monitor_session={cookie}"}
    async with connect(
        f"ws://127.0.0.1:{server.port}/console/ws", origin=origin, additional_headers=headers
    ) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        await ws.send(json.dumps({"type": "pause", "call_id": "relay-a", "note": "check", "ref": "p1"}))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] not in ("done", "error"):
            pass
        assert reply["type"] == "done" and reply["ref"] == "p1", reply
        paused = await wait_state(visitor, "paused", timeout=10)  # the worker's session paused it
        assert "staff_pause" in paused["reasons"]
        assert str(first.state) == "paused"
        # a console watches the call: the receive-only peer is made in the worker
        async with console_watch(server, "relay-a") as (_watch, pc, offer):
            assert [s["participant"] for s in offer["slots"]] == ["A1234BC", "v1"]
            staff_view = Watch(pc.getTransceivers()[2].receiver.track)  # the visitor's camera
            try:  # staff see the visitor while the call is paused for the participants
                await staff_view.until(is_clip(clips["clean"], within=14, samples=30), timeout=20)
            finally:
                staff_view.stop()
        await ws.send(json.dumps({"type": "resume", "call_id": "relay-a", "ref": "r1"}))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] not in ("done", "error"):
            pass
        assert reply["type"] == "done", reply
    await wait_state(prison, "live", timeout=60)


async def test_a_killed_worker_pauses_its_calls_visibly_and_a_restarted_worker_serves(
    server: Server, clips: dict[str, list[np.ndarray]], caplog: pytest.LogCaptureFixture
) -> None:
    second, other = CALLS["second"], CALLS["other"]
    dead = second.link.pid
    analysis = children_of(dead)
    assert analysis  # its analysis worker
    subscription = server.hub.subscribe()
    caplog.set_level(logging.WARNING)
    try:
        async with console_watch(server, "relay-b") as (watch, _pc, _offer):  # staff watching it
            os.kill(dead, signal.SIGKILL)
            paused = await wait_state(other, "paused", timeout=10)
            assert paused["reasons"] == ["analysis_error"]
            error = await other.expect("error", timeout=5)
            assert error["code"] == "relay_restarted"
            assert (await other.expect_any(("closed",), timeout=5))["type"] == "closed"
            seen = await hub_until(
                subscription, lambda r: r["call_id"] == "relay-b" and r["kind"] == "alert", 10
            )
            # the watch's peer died with the worker: the console is told, not left on a frozen view
            told = json.loads(await asyncio.wait_for(watch.recv(), 10))
            assert told["type"] == "error" and "media was restarted" in told["message"], told
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(watch.recv(), 10)
            assert watch.close_code == 1011
    finally:
        subscription.close()
    state = next(r for r in seen if r["call_id"] == "relay-b" and r["kind"] == "state")
    assert state["state"] == "paused" and state["reasons"] == ["analysis_error"]
    alert = next(r for r in seen if r["call_id"] == "relay-b" and r["kind"] == "alert")
    assert "relay worker" in alert["detail"]
    # paused until it is placed again on the restarted worker, whose session starts from the check
    assert str(second.state) in ("paused", "waiting", "verifying")
    await other.close()
    for _ in range(100):  # the dead worker's analysis worker leaves too (it watches its parent)
        if not any(alive(p) for p in analysis):
            break
        await asyncio.sleep(0.1)
    assert not any(alive(p) for p in analysis)
    # the worker comes back; the call is placed again and a device rejoins it with its link
    for _ in range(1200):
        if len(server.relay.pids) == 2 and all(link.ready.is_set() for link in server.relay.links):
            break
        await asyncio.sleep(0.1)
    assert len(server.relay.pids) == 2 and dead not in server.relay.pids
    await placed(second)
    back, _ = await join_device(server, second, "prisoner", clips["clean"])
    await back.close()
    # a call booked now goes to the least-loaded worker: the restarted one
    third = book(server, "relay-c")
    new_pid = await placed(third)
    assert new_pid not in (dead, CALLS["first"].link.pid) and new_pid in server.relay.pids
    late, _ = await join_device(server, third, "prisoner", clips["clean"])
    await late.close()
    assert str(CALLS["first"].state) == "live"  # the other worker's call went on
    logged = [r for r in caplog.records if r.name.startswith("monitor")]
    assert any("relay worker" in r.getMessage() and "died" in r.getMessage() for r in logged)
    assert not [r for r in logged if r.exc_info], [r.getMessage() for r in logged if r.exc_info]
    page = server.metrics.render()
    assert "monitor_relay_worker_restarts_total" in page


async def test_stopping_the_server_leaves_no_worker_process(tmp_path: Path) -> None:
    store = Store(tmp_path / "monitor.db")
    srv = Server([], load_policy(), port=0, analysis_workers=1, store=store, relay_workers=1)
    await srv.start()
    workers = list(srv.relay.pids)
    grandchildren = [p for w in workers for p in children_of(w)]
    assert workers and grandchildren and set(workers) <= set(children_of(os.getpid()))
    await srv.stop()
    store.close()
    for _ in range(50):
        if not any(alive(p) for p in workers + grandchildren):
            break
        await asyncio.sleep(0.1)
    assert not [p for p in workers + grandchildren if alive(p)]
