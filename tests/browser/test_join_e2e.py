"""End to end in headless Chromium: a browser prison terminal and a browser visitor make a call
through the real server (relay, analysis worker, policy); the intruder clip pauses it. The prison
side sees and hears the visitor while live, and the paused slate and silence while paused.

Chromium's fake camera plays a y4m file made here from the fixture clips. A fake camera cannot
switch clips mid-call, so the intruder arrives the way a real one would reach the relay: the
visitor's device reconnects (same link) with the camera that shows the second person.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import pytest_asyncio
from support.chromium import ARGS, CHROMIUM, FAKE_MEDIA, require_chromium
from support.live_server import booking_now, ping_pong, serving

from monitor.call.call import Call
from monitor.media.forward_audio import OPUS_SILENCE
from monitor.media.tracks import PAUSED_BGR
from monitor.server.serve import Server
from policies.decisions import State
from signalling.client import load_clip, write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "fixtures" / "clips"
ARTIFACTS = ROOT / "test-artifacts"
require_chromium()


@pytest.fixture(scope="module")
def cameras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("y4m")
    clean = load_clip(CLIPS / "clean.webm", max_frames=45)
    walk_in = load_clip(CLIPS / "unbooked_walk_in.webm", max_frames=230)[185:230]
    return {
        "clean": write_y4m(folder / "clean.y4m", ping_pong(clean)),
        "intruder": write_y4m(folder / "intruder.y4m", ping_pong(walk_in)),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    async with serving([booking_now("browser-call")]) as srv:
        yield srv


def link(server: Server, role: str) -> str:
    call = server.calls.get("browser-call")
    assert call is not None
    token = next(t for t, seat in call.seats.items() if seat.role.value == role)
    return f"{server.base_url}/join/{token}"


async def browser(playwright: Any, profile: Path, camera: Path) -> Any:
    return await playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=[*ARGS, *FAKE_MEDIA, f"--use-file-for-fake-video-capture={camera}"],
        viewport={"width": 1100, "height": 700},
    )


async def wait_state(page: Any, state: str, timeout_s: float) -> None:
    await page.wait_for_function(
        f"window.monitorCall && window.monitorCall.state === {state!r}", timeout=timeout_s * 1000
    )


async def audio_over(page: Any, seconds: float) -> dict[str, float]:
    """What the page received as audio over ``seconds``: packets, bytes and energy."""
    before = await page.evaluate("window.monitorCall.audioReceived()")
    await asyncio.sleep(seconds)
    after = await page.evaluate("window.monitorCall.audioReceived()")
    return {k: after[k] - before[k] for k in after}


def slate_in(png: bytes) -> bool:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a PNG"
    corner = image[10:60, 10:90].reshape(-1, 3).astype(float)
    return bool(np.abs(corner.mean(axis=0) - PAUSED_BGR).max() < 20)


async def test_browser_call_goes_live_and_the_intruder_pauses_it(
    server: Server, cameras: dict[str, Path], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    call = server.calls.get("browser-call")
    assert isinstance(call, Call)
    async with async_playwright() as playwright:
        prison = await browser(playwright, tmp_path / "prison", cameras["clean"])
        visitor = await browser(playwright, tmp_path / "visitor", cameras["clean"])
        try:
            prison_page = await prison.new_page()
            visitor_page = await visitor.new_page()
            await prison_page.goto(link(server, "prisoner"))
            await visitor_page.goto(link(server, "visitor"))
            await wait_state(visitor_page, "live", 60)
            await wait_state(prison_page, "live", 10)
            assert call.state is State.LIVE
            # the prison terminal shows the visitor's camera (not the slate)
            video = prison_page.locator("figure[data-slot='0'] video")
            await prison_page.wait_for_function(
                "document.querySelector(\"figure[data-slot='0'] video\").videoWidth === 640", timeout=10_000
            )
            await asyncio.sleep(1.0)
            assert not slate_in(await video.screenshot())
            await prison_page.screenshot(path=str(ARTIFACTS / "e2e-prison-live.png"))
            await visitor_page.screenshot(path=str(ARTIFACTS / "e2e-visitor-live.png"))
            # ... and hears the visitor's microphone (Chromium's fake one beeps), forwarded as Opus
            heard = await audio_over(prison_page, 3.0)
            assert heard["packets"] >= 100 and heard["energy"] > 0.05, heard
            assert heard["bytes"] / heard["packets"] > 20, heard
            left = await visitor_page.evaluate("window.monitorCall.secondsLeft")
            assert 0 < left <= call.booking.duration_s

            # the visitor's connection drops (the server side closes it): the page rejoins by itself
            # with the same link, and the security check puts the call live again
            token = link(server, "visitor").rsplit("/", 1)[1]
            dropped = next(ws for ws, joined in server.signalling.joined.items() if joined == token)
            await dropped.close(1011, "test: the network dropped")
            await visitor_page.wait_for_function("window.monitorCall.rejoins >= 1", timeout=10_000)
            await wait_state(visitor_page, "live", 60)
            await wait_state(prison_page, "live", 10)

            # the visitor's device comes back with a camera that shows a second, unbooked person
            await visitor.close()
            visitor = await browser(playwright, tmp_path / "visitor2", cameras["intruder"])
            visitor_page = await visitor.new_page()
            await visitor_page.goto(link(server, "visitor"))
            await wait_state(prison_page, "paused", 60)
            reasons = await prison_page.evaluate("window.monitorCall.reasons")
            assert set(reasons) & {"unbooked_face", "too_many_faces"}, reasons
            notice = await prison_page.locator("#notice").inner_text()  # what concerns the prison side
            assert "on the other side" in notice and "please wait" in notice, notice
            for _ in range(50):  # the prison side's video shows the paused slate
                if slate_in(await video.screenshot()):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the prison side never showed the paused slate")
            await prison_page.screenshot(path=str(ARTIFACTS / "e2e-prison-paused.png"))
            # paused: the sound goes on at the same pace, as the relay's 3-byte Opus silence. Measured
            # from 1 s after the slate showed: the browser's playout buffer may still hold tone received
            # just before the gate closed (its delay grows under load; a clean-clone run once heard
            # ~55 ms of it, energy 0.017, while every packet in the window was already silence)
            await asyncio.sleep(1.0)
            heard = await audio_over(prison_page, 3.0)
            assert heard["packets"] >= 100 and heard["energy"] < 0.01, heard
            assert heard["bytes"] / heard["packets"] <= len(OPUS_SILENCE), heard
            await wait_state(visitor_page, "paused", 10)
            await visitor_page.screenshot(path=str(ARTIFACTS / "e2e-visitor-paused.png"))
            assert call.state is State.PAUSED
        finally:
            await visitor.close()
            await prison.close()
    shutil.rmtree(tmp_path / "prison", ignore_errors=True)
