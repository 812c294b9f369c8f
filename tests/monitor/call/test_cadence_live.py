"""The cadence and the ticker as a live call uses them: frames arriving with jitter while the worker
is sometimes busy, and ticks that land when a policy window ends."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from monitor.analysis.cadence import ANALYSIS_FPS, Cadence
from monitor.bookings import load_booking
from monitor.call.call import TICK_S, Call
from monitor.call.sampler import FRAME_STEP_S
from policies.config import load_policy
from policies.events import Face, Observation, ParticipantJoined, Role, Tick, Verdict

BOOKING = Path(__file__).resolve().parents[3] / "fixtures" / "bookings" / "clean" / "booking.json"


def _luma() -> np.ndarray:
    return np.zeros((60, 80), np.uint8)


def test_live_frames_with_jitter_and_a_busy_worker_keep_to_the_grid() -> None:
    """~30 fps arrivals with up to 10 ms of jitter; the worker takes 20-250 ms per frame (frames that
    arrive meanwhile are dropped). At most one analysed frame per slot, and no slot is skipped
    unless the worker was busy through it."""
    rng = random.Random(7)
    cadence = Cadence(ANALYSIS_FPS, None)
    period = 1 / ANALYSIS_FPS
    analysed: list[float] = []
    busy_until = -1.0
    skipped_while_idle = 0
    for i in range(30 * 20):
        t = i / 30 + rng.uniform(0, 0.01)
        if t < busy_until:
            continue
        if cadence.due(t, FRAME_STEP_S, True, _luma):
            cadence.analysed(t, FRAME_STEP_S, False, None)
            analysed.append(t)
            busy_until = t + rng.uniform(0.02, 0.25)
        elif analysed and t - analysed[-1] > 2 * period:
            skipped_while_idle += 1
    slots = [int((t + FRAME_STEP_S / 4) // period) for t in analysed]
    assert len(slots) == len(set(slots))  # never two frames for one slot
    assert skipped_while_idle == 0  # an idle worker never lets a due frame go
    assert 2.5 * 20 < len(analysed) <= ANALYSIS_FPS * 20 + 1


def _call(now: list[float]) -> Call:
    config = load_policy()
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    booking = dataclasses.replace(
        load_booking(BOOKING, config), starts_at=start, ends_at=start + timedelta(minutes=30)
    )
    return Call(booking, config, wall_clock=lambda: start.timestamp() + now[0])


async def test_the_ticker_wakes_when_a_window_ends_not_a_tick_later() -> None:
    now = [0.5]
    call = _call(now)
    visitor = call.booking.participants[0].id
    await call.handle(ParticipantJoined(0.0, visitor, Role.VISITOR, visitor, True))
    match = Face(1, Verdict.MATCH, visitor, 0.3)
    intruder = Face(2, Verdict.PENDING)  # not identified yet: only counting can pause
    for t in (0.1, 0.3, 0.5):  # two faces for one booked visitor: too_many_faces from 0.1
        await call.handle(Observation(t, visitor, Role.VISITOR, (match, intruder)))
    assert call.session.next_due() is not None
    now[0] = 1.04
    assert abs(call.tick_wait() - (1.1 - 1.04 + 0.001)) < 1e-6  # the pause is due at 1.1
    now[0] = 1.101
    await call.handle(Tick(call.tick_time()))  # no analysis pool: nothing holds the clock back
    assert call.state.value == "paused"
    now[0] = 2.0
    due = call.session.next_due()
    assert due == 1.5  # the frame at 0.5 goes stale at 1.5: overdue, so the next tick is a tick away
    assert call.tick_wait() == TICK_S
    await call.close()
