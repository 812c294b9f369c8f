"""The analysis pool's warm start: workers load and run the models on a real face before they say
ready, and a booking is enrolled as soon as it is added (not at the call's first frame)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import pytest

from monitor.bookings import load_booking
from monitor.workers.analysis_pool import AnalysisPool, frame_planes
from monitor.workers.analysis_worker import WARMUP_PHOTO
from policies.config import load_policy
from policies.events import Observation, Role
from signalling.client import load_clip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


async def test_workers_warm_up_on_a_real_face_and_enrol_bookings_when_added(tmp_path: Path) -> None:
    results: list[Observation] = []
    failures: list[str] = []
    got = asyncio.Event()

    def on_result(key: str, observation: Observation, spent: float) -> None:
        results.append(observation)
        got.set()

    not_a_photo = tmp_path / "broken.jpg"
    not_a_photo.write_bytes(b"not a jpeg")
    warm = AnalysisPool(1, on_result, lambda key, detail: failures.append(detail))
    broken = AnalysisPool(1, on_result, lambda key, detail: failures.append(detail), warmup_photo=not_a_photo)
    await asyncio.gather(warm.start(), broken.start())
    try:
        assert WARMUP_PHOTO.is_file()
        assert len(warm.warmup_s) == 1 and warm.warmup_s[0] > 0  # the models ran on the real photo
        assert broken.warmup_s == [-1.0]  # a failed warm-up is reported, and the worker still serves
        booking = load_booking(ROOT / "fixtures" / "bookings" / "clean" / "booking.json", load_policy())
        image = load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=1)[0]
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        for pool in (warm, broken):
            got.clear()
            pool.add_booking("call", booking)
            assert pool._workers[0].enrolled == {"call"}  # sent to the worker at once
            pool.open("call/v1", "call", "v1", Role.VISITOR)
            assert pool.submit("call/v1", frame_planes(frame), 0.5)
            await asyncio.wait_for(got.wait(), 60)
        assert not failures, failures
        assert [r.source for r in results] == ["v1", "v1"]
        assert all(len(r.faces) == 1 for r in results)  # the booked visitor's face, found by both
    finally:
        await asyncio.gather(warm.stop(), broken.stop())
