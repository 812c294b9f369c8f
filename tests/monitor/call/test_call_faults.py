"""A live call survives its analysis worker dying: the worker restarts, analysis resumes, the call
goes on (or, if analysis was gone past the policy's window, pauses with analysis_error and resumes
after the recheck)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioice.ice
import pytest
import pytest_asyncio

from monitor.bookings import load_booking
from monitor.server.serve import Server
from policies.config import load_policy
from policies.decisions import State, StateChanged
from policies.reasons import Reason
from signalling.client import ClipTrack, Device, ToneTrack, load_clip

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    config = load_policy()
    base = load_booking(BOOKING, config)
    start = datetime.now(UTC) - timedelta(seconds=1)
    booking = dataclasses.replace(
        base, call_id="call-crash", starts_at=start, ends_at=start + (base.ends_at - base.starts_at)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
        srv = Server([booking], config, port=0, analysis_workers=1)
        await srv.start()
        yield srv
        await srv.stop()


async def until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.1)


async def test_worker_crash_restarts_and_the_call_recovers(server: Server) -> None:
    call = server.calls.get("call-crash")
    assert call is not None and server.pool is not None
    pool = server.pool
    frames = load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=60)
    frames = frames + frames[-2:0:-1]
    devices = []
    for role in ("prisoner", "visitor"):
        token = next(t for t, seat in call.seats.items() if seat.role.value == role)
        device = Device(f"ws://127.0.0.1:{server.port}/ws/call")
        await device.open()
        assert (await device.join(token))["type"] == "joined"
        await device.call(ClipTrack(frames), ToneTrack())
        devices.append(device)
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
