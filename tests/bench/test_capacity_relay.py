"""The capacity bench's relay analyses each visitor camera on the live calls' frame path, in both
modes: through the real analysis worker (forward) and inline on the event loop (naive), at the
busy grid's pace (6 a second) and no faster."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiortc.contrib.media import MediaRelay

from bench.capacity import ANALYSIS_FPS, Relay
from monitor.media.tracks import Feed
from signalling.client import ClipTrack, load_clip

pytestmark = pytest.mark.slow

CLEAN = Path(__file__).resolve().parents[2] / "fixtures" / "clips" / "clean.webm"


@pytest.mark.parametrize("mode", ["naive", "forward"])
async def test_the_relay_analyses_a_camera_at_the_busy_pace(mode: str) -> None:
    relay = Relay(mode, conn=None)
    camera = ClipTrack(load_clip(CLEAN, max_frames=60))
    key = "c0/visitor"
    try:
        await relay.start()
        feed = Feed(MediaRelay(), "video", key)
        feed.attach(camera)
        relay.add_camera(key, feed)
        deadline = time.monotonic() + 60
        while relay.analysed.get(key, 0) < 3:  # the first frames (a cold pipeline is slower)
            assert time.monotonic() < deadline, "no analysis results"
            await asyncio.sleep(0.1)
        before, started = relay.analysed[key], time.monotonic()
        await asyncio.sleep(3.0)
        rate = (relay.analysed[key] - before) / (time.monotonic() - started)
        assert 1.0 <= rate <= ANALYSIS_FPS + 0.5, rate
        assert relay.failures == 0
    finally:
        await relay.stop()
        camera.stop()
