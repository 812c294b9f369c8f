"""Two nodes on one store and one Redis: a call placed on node B is joined through node A by real
WebRTC devices and goes live; a console on A sees its alerts and acts on it; drained nodes; two
nodes racing for one call; each node's cluster figures on /metrics. Each on a SQLite file and on
a PostgreSQL database (``store_at``): real redis-server and PostgreSQL servers, started for the
session."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest
from support.cluster import Console, add_staff, book, nodes, ws_url
from support.live_server import booking_now, call_clips, recover_like_a_browser, wait_state

from monitor.call.call import Call
from monitor.cluster.routing import signalling_url
from policies.decisions import State
from signalling.client import ClipTrack, Device, ToneTrack

pytestmark = pytest.mark.timeout(240)


async def device(url: str, token: str, frames: list[Any] | None = None) -> Device:
    dev = Device(url)
    await dev.open()
    joined = await dev.join(token)
    if joined["type"] == "redirect":
        await dev.close()
        dev = Device(joined["url"])
        await dev.open()
        joined = await dev.join(token)
    assert joined["type"] == "joined", joined
    if frames is not None:
        await dev.call(ClipTrack(frames), ToneTrack())
        recover_like_a_browser(dev)
    return dev


async def metrics_page(port: int) -> str:
    """``GET /metrics`` of the node on ``port`` (a loopback client, no token)."""
    reply = await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/metrics", timeout=10)
    return str(reply.read().decode())


@pytest.mark.parametrize("routing", ["proxy", "redirect"])
async def test_a_call_placed_on_b_is_joined_through_a_and_goes_live(
    store_at: str, redis_url: str, routing: str
) -> None:
    clips = call_clips()
    async with nodes(store_at, redis_url, ["a", "b"], routing=routing) as cluster:
        a, b = cluster["a"], cluster["b"]
        tokens = book(a.store, booking_now("routed"))
        await a.cluster.drain()  # a takes no new call, and still routes devices to the calls' nodes
        prisoner = await device(ws_url(a), tokens["A1234BC"], clips["clean"])
        visitor = await device(ws_url(a), tokens["v1"], clips["clean"])
        assert await a.cluster.registry.owner("routed") == "b"
        call = b.calls.get("routed")
        assert isinstance(call, Call) and a.calls.get("routed") is None
        await wait_state(visitor, "live", timeout=60.0)
        assert call.state is State.LIVE
        # media go straight to b: its peers carry the call; a holds no peer of it
        assert sorted(call.devices) == ["A1234BC", "v1"]
        assert all(d.pc is not None and d.pc.connectionState == "connected" for d in call.devices.values())
        if routing == "proxy":
            assert (a.cluster.stats.proxied, a.cluster.stats.redirected) == (2, 0)
        else:
            assert a.cluster.stats.redirected == 2
            assert visitor.url == signalling_url(b.node_url())
        # a drained node takes no new call: with b draining too, a new call is refused
        await b.cluster.drain()
        refused = Device(ws_url(a))
        await refused.open()
        other = book(a.store, booking_now("refused"))
        answer = await refused.join(other["v1"])
        assert answer["type"] == "error" and answer["code"] == "over_capacity", answer
        assert "a: draining; b: draining" in answer["message"]
        # ... while the running call's devices still reach it (a reconnect is routed to b)
        await visitor.close()
        visitor = await device(ws_url(a), tokens["v1"], clips["clean"])
        assert b.calls.get("routed") is call
        for dev in (prisoner, visitor, refused):
            await dev.close()


async def test_a_console_on_a_sees_the_pause_alert_of_a_call_on_b_and_acts_on_it(
    store_at: str, redis_url: str
) -> None:
    clips = call_clips()
    async with nodes(store_at, redis_url, ["a", "b"]) as cluster:
        a, b = cluster["a"], cluster["b"]
        add_staff(a.store, "alice", "HMP Example")
        await a.cluster.drain()  # a takes no new call: the call goes to b
        tokens = book(a.store, booking_now("watched"))
        console = await Console.open(a.port, "alice")
        prisoner = await device(ws_url(a), tokens["A1234BC"], clips["clean"])
        visitor = await device(ws_url(a), tokens["v1"], clips["clean"])
        assert await a.cluster.registry.owner("watched") == "b"
        await wait_state(visitor, "live", timeout=60.0)
        # an intruder walks in on the visitor's camera: b pauses the call, a's console is told
        camera = visitor.pc.getSenders()[0].track  # type: ignore[union-attr]
        assert isinstance(camera, ClipTrack)
        camera.play(clips["intruder"])
        alert = await console.record(lambda r: r["kind"] == "alert" and r["call_id"] == "watched", 60.0)
        assert alert["evidence"], alert  # the frame behind it, viewable from a's console
        evidence = await console.get(f"/console/api/evidence/{alert['evidence']}.jpg")
        assert evidence[:2] == b"\xff\xd8"
        await wait_state(visitor, "paused", timeout=10.0)
        # the board on a shows the call on b, paused (once b has written it), with its devices
        for _ in range(50):
            row = await console.board_row("watched")
            if row["state"] == "paused":
                break
            await asyncio.sleep(0.1)
        assert row["running"] and row["state"] == "paused" and len(row["present"]) == 2, row
        # staff on a end the call on b
        done = await console.act({"type": "end", "call_id": "watched", "note": "test over"})
        assert done["type"] == "done", done
        await wait_state(visitor, "ended", timeout=10.0)
        call = b.calls.get("watched")
        assert call is not None and call.state is State.ENDED
        for dev in (prisoner, visitor):
            await dev.close()
        await console.close()


async def test_two_nodes_racing_for_one_call_start_it_once_and_the_chain_verifies(
    store_at: str, redis_url: str
) -> None:
    """Both devices of a call reach different nodes at the same moment: one node claims the call,
    the other routes its device there; the call starts once, its records are written once."""
    async with nodes(store_at, redis_url, ["a", "b"]) as cluster:
        a, b = cluster["a"], cluster["b"]
        tokens = book(a.store, booking_now("raced"))
        prisoner, visitor = await asyncio.gather(
            device(ws_url(a), tokens["A1234BC"]), device(ws_url(b), tokens["v1"])
        )
        owner = await a.cluster.registry.owner("raced")
        running = [name for name, server in cluster.items() if server.calls.get("raced") is not None]
        assert running == [owner]
        call = cluster[str(owner)].calls.get("raced")
        assert call is not None and sorted(call.devices) == ["A1234BC", "v1"]
        stats = await a.cluster.registry.stats()
        assert stats.placed == 1
        # each node's /metrics: its own placements, and (from its next heartbeat) the cluster's
        pages = {name: await metrics_page(server.port) for name, server in cluster.items()}
        assert 'monitor_cluster_placements_total{result="placed_here"} 1' in pages[str(owner)]
        for _ in range(50):
            pages = {name: await metrics_page(server.port) for name, server in cluster.items()}
            if all('monitor_cluster_placements_all_total{result="placed"} 1' in p for p in pages.values()):
                break
            await asyncio.sleep(0.1)
        for page in pages.values():
            assert 'monitor_cluster_placements_all_total{result="placed"} 1' in page
            assert 'monitor_cluster_nodes{state="serving"} 2' in page
            assert "monitor_cluster_redis_ok 1" in page
        for dev in (prisoner, visitor):
            await dev.close()
        await asyncio.sleep(0.5)  # the leave records
    # every node's records in one chain: it verifies, and each join was written once, by the call's node
    from monitor.store.audit import AuditLog
    from monitor.store.database import Store

    store = Store(store_at)
    try:
        log = AuditLog(store)
        result = log.verify()
        assert result.ok, result
        joins = [r for r in log.for_call("raced") if r.kind == "joined"]
        assert sorted(r.data["participant"] for r in joins) == ["A1234BC", "v1"]
    finally:
        store.close()
