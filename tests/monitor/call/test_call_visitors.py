"""Calls with several booked visitors, each on their own device, in process: real aiortc devices,
the real server (signalling, relay, analysis worker processes with the real models, the policy
session) and real footage (``live_server.visitor_cameras``).

The booking (fixtures/bookings/four_visitors, of which the test books the first two: the man and
Grace Hopper, each with their own reference photo, each on a full-size 640x480 camera; the
booking also has Emma and Lucy Hart, whose cameras can only be cut small from the group clip, and
on those the analysis flickered between a face and a faceless person, so 3- and 4-visitor calls
are not run here yet). Each device's camera
shows only its own person, except that the last visitor's device first shows a man who is booked
on no call. While he is in view the call never goes live (the security check needs every connected
face to be a booked person): it pauses with ``unbooked_face``, alerted on that device. Once he has
left and the visitor sits in front of the camera, the call goes live; the prison side then
receives each visitor's camera in the slot the relay announced for that visitor, and every
visitor receives the prison side. A further device cannot take a seat that is in use. (A second
device on a one-visitor call's link is refused in tests/signalling/test_server.py and
tests/monitor/test_serve_store.py; a booking of five visitors is refused in
tests/policies/test_booking.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from support.live_server import (
    FOUR_VISITORS,
    add_call,
    booking_now,
    join_seat,
    seat_token,
    serving,
    visitor_cameras,
    wait_state,
)
from support.pictures import closest_camera

from monitor.analysis.settings import AnalysisSettings
from monitor.media.tracks import PAUSED_BGR
from monitor.server.serve import Server
from policies.decisions import Alert, State, StateChanged
from policies.reasons import Reason
from signalling.client import ClipTrack, Device, Watch, shows_slate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

#: Cameras send 15 frames a second: five devices encoding VP8 share the test's one process (and
#: event loop) with the server, and analysis samples at most 6 a second anyway.
FPS = 15.0


@pytest.fixture(scope="module")
def cameras() -> dict[str, list[Any]]:
    return visitor_cameras()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    # One analysis worker, the default on this 2-core machine: five cameras share it. A camera's
    # first frame goes right after alarms (monitor/workers/analysis_pool.py); before that, four cameras
    # joining at once got their first results 2.2-5.3 s after joining and the call failed closed.
    async with serving(analysis_workers=1) as srv:
        yield srv


def is_from(camera: str, cameras: dict[str, list[Any]]) -> Any:
    return lambda image: closest_camera(image, cameras) == camera


async def shows(view: Watch, camera: str, cameras: dict[str, list[Any]], what: str) -> Any:
    """The view's first frame from ``camera`` within 15 s; else a failure that says what it shows."""
    try:
        return await view.until(is_from(camera, cameras), timeout=15)
    except AssertionError as failure:
        image = view.frame
        if image is None:
            seen = "nothing"
        elif shows_slate(image, PAUSED_BGR):
            seen = "the paused slate"
        else:
            near = [w for w in (14, 20, 30, 45, 70, 255) if closest_camera(image, cameras, within=w)]
            best = closest_camera(image, cameras, within=255)
            seen = f"{best!r} at best, nearer than {near[0]}, {image.shape}"
        raise AssertionError(f"{what}: {failure}; it shows {seen}") from None


@pytest.mark.parametrize("count", [2])
async def test_visitors_on_their_own_devices_each_get_their_own_slot_on_the_prison_side(
    server: Server, cameras: dict[str, list[Any]], count: int
) -> None:
    booking = booking_now(f"call-visitors-{count}", path=FOUR_VISITORS)
    booking = dataclasses.replace(booking, participants=booking.participants[:count])
    visitors = booking.visitor_ids
    last = visitors[-1]
    call = add_call(server, booking)
    prisoner = booking.prisoner.id
    prison, _ = await join_seat(server, call, prisoner, cameras["prison"], FPS)
    assert prison.joined is not None
    slots = [slot["participant"] for slot in prison.joined["slots"]]
    assert sorted(slots) == list(visitors), prison.joined
    devices: dict[str, Device] = {}
    camera: ClipTrack | None = None
    watches: list[Watch] = []
    try:
        # the last visitor's device joins first, showing the unbooked man: from then on the check
        # cannot pass, however the others' joins and analyses interleave
        for visitor in (last, *visitors[:-1]):
            shown = cameras["unbooked" if visitor == last else visitor]
            devices[visitor], track = await join_seat(server, call, visitor, shown, FPS)
            joined = devices[visitor].joined
            assert joined is not None and [s["participant"] for s in joined["slots"]] == [prisoner]
            if visitor == last:
                camera = track
        assert camera is not None
        # transceivers in slot order, video then audio: slot i's video is received[2 * i]
        slot_views = {participant: Watch(prison.received[2 * i]) for i, participant in enumerate(slots)}
        visitor_views = {visitor: Watch(devices[visitor].received[0]) for visitor in visitors}
        watches += [*slot_views.values(), *visitor_views.values()]

        # one more device: every visitor seat is taken, so no visitor link gets it in
        extra = Device(f"ws://127.0.0.1:{server.port}/ws/call")
        await extra.open()
        try:
            for visitor in visitors:
                refused = await extra.join(seat_token(server, call, visitor))
                assert refused["type"] == "error" and refused["code"] == "token_in_use", refused
                assert refused["message"] == "this link is already in use on another device", refused
        finally:
            await extra.close()
        assert sorted(call.devices) == sorted([prisoner, *visitors])

        # an unbooked face on one device: the call never goes live, it pauses (from verifying)
        paused = await wait_state(prison, "paused", timeout=120)
        alerts = [d for d in call.decisions if isinstance(d, Alert)]
        assert paused["reasons"] == ["unbooked_face"], (paused, alerts)
        assert [(a.reason, a.source) for a in alerts] == [(Reason.UNBOOKED_FACE, last)], alerts
        assert State.LIVE not in [d.state for d in call.decisions if isinstance(d, StateChanged)]
        for view in slot_views.values():  # the prison side sees a slate in every slot
            await view.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=5)

        # the man leaves, the booked visitor sits down in front of the camera: everyone in view
        # is booked. (Nobody is in view for longer than the tracker keeps a face: when a face
        # replaces his in the same place within one analysed interval, the analysis keeps his
        # track, judges the changed face "covered" (partial, so it is never re-identified) and the
        # call stays paused; see the report of this test's author.)
        camera.play(cameras["nobody"])
        await asyncio.sleep(AnalysisSettings().track_max_missed_s + 1.0)
        camera.play(cameras[last])
        await wait_state(prison, "live", timeout=120)
        for visitor in visitors:
            await wait_state(devices[visitor], "live", timeout=10)

        # each slot carries its own visitor's camera, and only that one
        for participant, view in slot_views.items():
            image = await shows(view, participant, cameras, f"the prison side's slot for {participant}")
            assert image.shape == cameras[participant][0].shape
        # ... and every visitor sees the prison side
        for visitor, view in visitor_views.items():
            await shows(view, "prison", cameras, f"{visitor}'s view of the prison side")
        assert call.state is State.LIVE
    finally:
        for watch in watches:
            watch.stop()
        for device in devices.values():
            await device.close()
        await prison.close()
        await call.close()
    states = [(d.state, d.reasons) for d in call.decisions if isinstance(d, StateChanged)]
    assert states == [
        (State.VERIFYING, ()),
        (State.PAUSED, (Reason.UNBOOKED_FACE,)),
        (State.LIVE, ()),
    ], states
