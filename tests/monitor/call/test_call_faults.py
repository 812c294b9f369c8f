"""A live call survives its analysis worker dying: the worker restarts, analysis resumes, the call
goes on (or, if analysis was gone past the policy's window, pauses with analysis_error and resumes
after the recheck)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from support.live_server import CLEAN_CLIP, booking_now, join_device, ping_pong, serving
from support.waiting import until

from monitor.call.call import Call
from monitor.server.serve import Server
from policies.decisions import State, StateChanged
from policies.reasons import Reason
from signalling.client import Device, load_clip

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    async with serving([booking_now("call-crash")]) as srv:
        yield srv


async def test_worker_crash_restarts_and_the_call_recovers(server: Server) -> None:
    call = server.calls.get("call-crash")
    assert isinstance(call, Call) and server.pool is not None
    pool = server.pool
    frames = ping_pong(load_clip(CLEAN_CLIP, max_frames=60))
    devices: list[Device] = []
    for role in ("prisoner", "visitor"):
        devices.append((await join_device(server, call, role, frames))[0])
    try:
        await until(lambda: call.state is State.LIVE, 120)
        key = call.source_key("v1")
        before = len(call.decisions)
        pool.crash_worker_of(key)
        await until(lambda: pool.restarts == 1, 20)
        analysed = pool.stats().streams[key].analysed
        await until(lambda: pool.stats().streams[key].analysed > analysed + 5, 120)  # the new worker analyses
        await until(lambda: call.state is State.LIVE, 120)
        after = [d for d in call.decisions[before:] if isinstance(d, StateChanged)]
        for change in after:  # a pause, if analysis was gone long enough, is the fail-closed rule
            if change.state is State.PAUSED:
                assert change.reasons == (Reason.ANALYSIS_ERROR,)
    finally:
        for device in devices:
            await device.close()
