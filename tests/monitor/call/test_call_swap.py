"""A live call whose booked visitor is swapped for someone who is not booked, in process: real
aiortc devices, the real server (signalling, relay, one analysis worker process with the real
models, the policy session) and real footage.

The visitor's camera first shows the booked man (clean.webm); then, from one frame to the next, it
shows only Grace Hopper (cut from unbooked_walk_in.webm; not booked on this call): the booked face
has left and an unbooked face is the one face in view. One face for one booked person is not too
many faces, and her face is fully visible, so the only finding is ``unbooked_face`` (identity
voting calls her unbooked, the policy waits ``unbooked_face_pause_after_s``): the call pauses with
exactly that reason, the prison side gets the slate, and only putting the booked man back lets the
recheck pass and the call resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from support.live_server import add_call, booking_now, join_device, serving, visitor_cameras, wait_state
from support.pictures import closest_camera

from monitor.media.tracks import PAUSED_BGR
from monitor.server.serve import Server
from policies.decisions import Alert, RecheckPassed, State, StateChanged
from policies.reasons import Reason
from signalling.client import Watch, shows_slate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest.fixture(scope="module")
def cameras() -> dict[str, list[Any]]:
    return visitor_cameras()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    async with serving(analysis_workers=1) as srv:
        yield srv


async def test_booked_visitor_swapped_for_an_unbooked_person_pauses_for_unbooked_face_only(
    server: Server, cameras: dict[str, list[Any]]
) -> None:
    call = add_call(server, booking_now("call-swap"))  # the clean booking: the man is v1, alone
    man = {"v1": cameras["v1"]}
    prison, _ = await join_device(server, call, "prisoner", cameras["prison"])
    visitor, camera = await join_device(server, call, "visitor", cameras["v1"])
    received = Watch(prison.received[0])  # the prison side's view of visitor v1
    try:
        await wait_state(visitor, "live", timeout=120)
        await received.until(lambda image: closest_camera(image, man) == "v1", timeout=10)
        await asyncio.sleep(2.0)  # live for a while: the man is the only face, and booked
        assert call.state is State.LIVE

        swapped = time.monotonic()
        camera.play(cameras["v2"])  # the man is gone; only Grace Hopper (not booked) is in view
        paused = await wait_state(prison, "paused", timeout=60)
        took = time.monotonic() - swapped
        assert paused["reasons"] == ["unbooked_face"], paused
        # the prison side is told what happened on the other side (the visitor is told to fix it)
        assert paused["explanation"] == "Someone who is not booked on this call is in view on the other side."
        assert paused["needs"], paused
        await received.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=2)
        alerts = [d for d in call.decisions if isinstance(d, Alert)]
        assert [(a.reason, a.source) for a in alerts] == [(Reason.UNBOOKED_FACE, "v1")], alerts

        # she stays: the call stays paused and the prison side keeps the slate (well past a recheck)
        deadline = time.monotonic() + call.config.recheck_clean_for_s + 2.0
        while time.monotonic() < deadline:
            assert call.state is State.PAUSED
            assert received.frame is not None and shows_slate(received.frame, PAUSED_BGR)
            await asyncio.sleep(0.1)

        camera.play(cameras["v1"])  # the booked man is back: the recheck passes, the call resumes
        await wait_state(visitor, "live", timeout=120)
        await received.until(lambda image: closest_camera(image, man) == "v1", timeout=10)
    finally:
        received.stop()
        await visitor.close()
        await prison.close()
        await call.close()
    states = [(d.state, d.reasons) for d in call.decisions if isinstance(d, StateChanged)]
    assert states == [
        (State.VERIFYING, ()),
        (State.LIVE, ()),
        (State.PAUSED, (Reason.UNBOOKED_FACE,)),
        (State.LIVE, ()),
    ], states
    passed = [d for d in call.decisions if isinstance(d, RecheckPassed)]
    assert len(passed) == 1 and not passed[0].awaiting_staff, passed
    alerts = [d for d in call.decisions if isinstance(d, Alert)]
    assert [a.reason for a in alerts] == [Reason.UNBOOKED_FACE], alerts  # nothing else, ever
    print(f"swap to pause seen by the prison side: {took:.2f} s")
