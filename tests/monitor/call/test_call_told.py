"""What the people on a call are told and shown (issue 13, point 9), with real parts: the real server
(signalling, relay, an analysis worker with the real models, the policy session), real aiortc
devices playing real footage (``live_server.visitor_cameras``, the group clip).

- Before the booked start the other side's picture is the "waiting to start" slate (its own
  colour, naming the start time), not "call paused"; after the start, until the check passes,
  the security check's slate.
- A call paused because nobody is in view on the visitors' side tells the visitor to sit in
  front of the camera, and the prisoner (who is in view) only that nobody is in view on the other
  side, and to wait.
- While it is paused, strangers walk into the visitor's view: what each side is told follows
  what holds the call now (unbooked faces, too many faces), no longer "nobody is in view".
- The console's evidence frames of the live call have each face boxed and labelled, as replay's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from support.ice import loopback_ice
from support.live_server import GROUP_CLIP, booking_now, join_seat, ping_pong, visitor_cameras

from monitor.analysis.evidence import face_text
from monitor.call.call import Call
from monitor.call.explain import OTHER_SIDE_NEEDS
from monitor.media.tracks import PAUSED_BGR, STARTING_BGR
from monitor.server.serve import Server
from policies.config import load_policy
from policies.events import Face, Verdict
from signalling.client import Device, Watch, load_clip, shows_slate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

STARTS_IN = 25.0  # seconds: the prison terminal joins before the start


@pytest.fixture(scope="module")
def cameras() -> dict[str, list[Any]]:
    found = visitor_cameras()
    found["strangers"] = ping_pong(load_clip(GROUP_CLIP, max_frames=68)[37:68])  # people booked on no call
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    # nobody in view pauses after 2 s here (15 s by default), so the test need not wait
    config = dataclasses.replace(load_policy(), no_face_warn_after_s=0.5, no_face_pause_after_s=2.0)
    with loopback_ice():
        srv = Server([], config, port=0, analysis_workers=1)
        await srv.start()
        try:
            yield srv
        finally:
            await srv.stop()


async def state_frame(dev: Device, check: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """The device's next ``state`` frame that passes ``check`` (earlier ones are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await dev.expect_any(("state",), timeout=max(0.1, deadline - time.monotonic()))
        assert frame["type"] != "closed", "the device was disconnected"
        if check(frame):
            return frame


def boxed(call: Call, source: str, verdict: Verdict) -> int:
    """Pixels of the colour ``verdict``'s boxes and labels are drawn in that the evidence frame of
    ``source`` (``Call.evidence_jpeg``, what the audit log keeps with an alert) has and the analysed
    frame itself has not."""
    jpeg = call.evidence_jpeg(source)
    assert jpeg is not None
    evidence = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert evidence is not None
    raw = cv2.cvtColor(call.evidence_seen[source][0].rgb(), cv2.COLOR_RGB2BGR)
    colour = np.array(face_text(Face(1, verdict, "v1"))[1])

    def near(image: np.ndarray) -> int:
        return int((np.abs(image.astype(int) - colour).max(axis=2) < 40).sum())

    return near(evidence) - near(raw)


async def test_each_side_is_told_what_concerns_it_and_the_words_follow_what_holds_the_call(
    server: Server, cameras: dict[str, list[Any]]
) -> None:
    booking = booking_now("told", starts_in=STARTS_IN)
    call = server.add_booking(booking)
    assert isinstance(call, Call)
    prison, _ = await join_seat(server, call, "A1234BC", cameras["prison"])
    assert prison.joined is not None and prison.joined["state"] == "waiting"
    view = Watch(prison.received[0])  # the prisoner's view of visitor v1 (not connected yet)
    devices = [prison]
    try:
        # before the start: the "waiting to start" slate (its own colour), not "call paused"
        await view.until(lambda image: shows_slate(image, STARTING_BGR), timeout=15)
        assert call.now() < 0
        visitor, camera = await join_seat(server, call, "v1", cameras["v1"])
        devices.append(visitor)
        await view.until(lambda image: shows_slate(image, STARTING_BGR), timeout=5)  # still before it
        # the call starts: until the check passes, the security check's slate
        await state_frame(prison, lambda f: f["state"] in ("verifying", "live"), STARTS_IN + 30)
        await state_frame(visitor, lambda f: f["state"] == "live", 120)
        # the console's evidence frame of the visitor: the booked man boxed and labelled, as in replay
        assert boxed(call, "v1", Verdict.MATCH) > 150

        camera.play(cameras["nobody"])  # the visitor walks away
        told_visitor = await state_frame(visitor, lambda f: f["state"] == "paused", 60)
        told_prisoner = await state_frame(prison, lambda f: f["state"] == "paused", 5)
        await view.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=5)
        assert told_visitor["reasons"] == told_prisoner["reasons"] == ["no_face"], (
            told_visitor,
            told_prisoner,
        )
        assert told_visitor["explanation"] == "Nobody is in view."
        assert "Sit in front of the camera" in told_visitor["needs"]
        assert told_prisoner["explanation"] == "Nobody is in view on the other side."
        assert told_prisoner["needs"] == OTHER_SIDE_NEEDS  # the prisoner is in view: nothing to fix

        camera.play(cameras["strangers"])  # strangers walk into the visitor's view while it is paused
        wrong = ("unbooked_face", "too_many_faces")
        now_visitor = await state_frame(visitor, lambda f: bool(set(f["reasons"]) & set(wrong)), 60)
        now_prisoner = await state_frame(prison, lambda f: bool(set(f["reasons"]) & set(wrong)), 10)
        # once the empty view has cleared, what each side is told is only what holds the call now
        settled_visitor = await state_frame(visitor, lambda f: "no_face" not in f["reasons"], 10)
        settled_prisoner = await state_frame(prison, lambda f: "no_face" not in f["reasons"], 10)
        for frame in (now_visitor, now_prisoner, settled_visitor, settled_prisoner):
            assert frame["state"] == "paused", frame
        assert set(settled_visitor["reasons"]) <= set(wrong) and settled_visitor["reasons"], settled_visitor
        assert "Nobody is in view" not in settled_visitor["explanation"], settled_visitor
        assert any(
            words in settled_visitor["explanation"]
            for words in ("not booked on this call is in view.", "More people are in view")
        ), settled_visitor
        assert "Nobody is in view" not in settled_prisoner["explanation"], settled_prisoner
        assert "on the other side" in settled_prisoner["explanation"], settled_prisoner
        assert settled_prisoner["needs"] == OTHER_SIDE_NEEDS, settled_prisoner
        assert boxed(call, "v1", Verdict.UNBOOKED) + boxed(call, "v1", Verdict.PENDING) > 150  # the strangers
    finally:
        view.stop()
        for device in devices:
            await device.close()
        await call.close()
