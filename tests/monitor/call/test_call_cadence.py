"""A live call's analysed camera on replay's cadence, with the real analysis worker and real clips:
a steady live call is analysed at the calm pace (so a worker shared by several calls keeps time for
the ones that need it), and a person walking in is analysed at once (the change gate), pauses the
call, and the call resumes when they leave."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS
from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.workers.analysis_pool import AnalysisPool
from policies.config import load_policy
from policies.decisions import State
from policies.reasons import Reason
from signalling.client import ClipTrack, load_clip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
CLIPS = ROOT / "fixtures" / "clips"


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def test_steady_live_camera_is_analysed_calmly_and_a_walk_in_at_once() -> None:
    config = load_policy()
    start = datetime.now(UTC) - timedelta(seconds=1)
    base = load_booking(BOOKING, config)
    end = start + timedelta(minutes=30)
    booking = dataclasses.replace(base, call_id="cadence", starts_at=start, ends_at=end)
    calls: Calls[Call] = Calls()
    pool = AnalysisPool(1, calls.on_result, calls.on_failure)
    await pool.start()
    call = Call(booking, config, wall_clock=time.time, pool=pool)
    calls.add(call)
    clean = load_clip(CLIPS / "clean.webm", max_frames=60)
    clean = clean + clean[-2:0:-1]
    intruder = load_clip(CLIPS / "unbooked_walk_in.webm", max_frames=240)[170:230]
    camera = ClipTrack(clean)
    sent: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        sent.append(frame)

    async def close() -> None:
        return None

    seat = next(s for s in call.seats.values() if s.participant == "v1")
    key = call.source_key("v1")
    try:
        call.start()
        await call.join(seat, send, close)
        call.video["v1"].attach(camera)  # as the device's camera track arrives
        call._tap("v1")
        await until(lambda: call.state is State.LIVE, 90, "the security check passing")
        await until(lambda: pool.steady(key), 30, "a steady frame")

        analysed = pool.stats().streams[key].analysed
        await asyncio.sleep(4.0)
        calm = pool.stats().streams[key].analysed - analysed
        # the calm pace (2 a second) rather than the busy grid (6 a second: ~24 frames)
        assert 3 <= calm <= CALM_FPS * 4 + 4 < ANALYSIS_FPS * 4, calm
        assert call.state is State.LIVE

        cadence = call.cadences["v1"]
        gated = cadence.gated
        camera.play(intruder)  # a second person is in view from this frame on
        await until(lambda: cadence.gated > gated, 10, "the change gate letting the walk-in through")
        await until(lambda: call.state is State.PAUSED, 30, "the pause")
        assert set(call.last_reasons) <= {Reason.TOO_MANY_FACES, Reason.UNBOOKED_FACE}

        camera.play(clean)  # they leave: the recheck passes on fresh frames
        await until(lambda: call.state is State.LIVE, 60, "the resume")
    finally:
        await call.close()
        await pool.stop()
        camera.stop()
