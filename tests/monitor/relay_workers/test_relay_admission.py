"""`monitor serve --relay-workers 2 --max-calls 1`: admission sees the workers.

A real server on a real port with two real relay worker processes and real aiortc devices sending
the fixture clip. Three calls are loaded (placed at load: a on worker 0, b on worker 1, c on worker
0). When c's first device joins, worker 0 already runs a, so c is moved to worker 1 and its media
runs there; then b, which would be a third call, is refused with ``over_capacity`` naming both
workers, while a second device of a running call is let in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from support.live_server import CLEAN_CLIP, booking_now, join_device, join_token, serving

from monitor.call.admission import Limits
from monitor.relay_workers.pool import WorkerAdmission
from monitor.server.serve import Server
from policies.decisions import State
from signalling.client import Device, load_clip

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    async with serving(analysis_workers=0, relay_workers=2, limits=Limits(max_calls=1)) as srv:
        yield srv


async def media_connected(call: Any, participant: str, timeout: float = 30.0) -> None:
    """Until the worker running ``call`` reports ``participant``'s media connected (its snapshots)."""
    for _ in range(int(timeout * 10)):
        if any(d.participant == participant and d.media_connected for d in call.stats().devices):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{participant} never connected: {call.devices}")


async def test_a_new_call_goes_to_a_worker_with_room_and_is_refused_when_every_worker_is_full(
    server: Server,
) -> None:
    assert isinstance(server.calls.admission, WorkerAdmission)
    links = server.relay.links
    calls: dict[str, Any] = {name: server.add_booking(booking_now(name)) for name in ("a", "b", "c")}
    for call in calls.values():
        await asyncio.wait_for(call.placed.wait(), 60)
    a, b, c = calls["a"], calls["b"], calls["c"]
    assert (a.link, b.link, c.link) == (links[0], links[1], links[0])  # fewest calls when loaded
    for _ in range(300):  # c's session on worker 0 has started (published waiting -> verifying)
        if c.state is State.VERIFYING:
            break
        await asyncio.sleep(0.1)
    assert c.state is State.VERIFYING
    published = server.hub.subscribe()
    frames = load_clip(CLEAN_CLIP, max_frames=30)
    devices: list[Device] = []
    try:
        prison_a, _ = await join_device(server, a, "prisoner", frames)
        devices.append(prison_a)
        assert a.link is links[0]
        # worker 0 runs a (its limit is 1): c's first device moves c to worker 1, and runs there
        prison_c, _ = await join_device(server, c, "prisoner", frames)
        devices.append(prison_c)
        assert c.link is links[1] and "c" in links[1].calls and "c" not in links[0].calls
        await media_connected(c, "A1234BC")  # reported by worker 1, the only one that knows c now
        await media_connected(a, "A1234BC")
        # b would be a third call: refused with one clear error frame naming each worker's reason
        late = Device(f"ws://127.0.0.1:{server.port}/ws/call")
        await late.open()
        devices.append(late)
        refused = await late.join(join_token(server, b, "visitor"))
        assert refused["type"] == "error" and refused["code"] == "over_capacity", refused
        assert "relay worker 0: 1 call running, the limit is 1" in refused["message"]
        assert "relay worker 1: 1 call running, the limit is 1" in refused["message"]
        assert not b.devices and b.link is links[1]  # b itself is untouched, still waiting
        # a device of a call already running is always let in
        visitor_a, _ = await join_device(server, a, "visitor", frames)
        devices.append(visitor_a)
        await media_connected(a, "v1")
        admission = server.calls.admission
        assert (admission.admitted, admission.refused) == (2, 1)
        page = server.metrics.render()
        assert 'monitor_relay_worker_calls{worker="0"} 1' in page
        assert 'monitor_relay_worker_calls{worker="1"} 2' in page  # c running, b waiting
        assert 'monitor_call_starts_total{result="over_capacity"} 1' in page
        assert 'monitor_call_starts_total{result="admitted"} 2' in page
        assert "monitor_max_calls 1" in page
        # the move did not announce c's start a second time (staff and the audit log saw it once)
        seen = []
        while not published.queue.empty():
            seen.append(await anext(published))
        assert seen and not [r for r in seen if r["call_id"] == "c" and r["kind"] == "state"], seen
    finally:
        for device in devices:
            await device.close()
