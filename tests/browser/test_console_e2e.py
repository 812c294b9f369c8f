"""The staff console end to end in headless Chromium, against the real server.

A fixture-driven call runs through the real server (relay, analysis worker with the real models,
policy session, store): the prison side and the visitor are in-process aiortc devices playing the
fixture clips. A member of staff logs in with Chromium, watches the board, sees the
``unbooked_face`` alert arrive live with its evidence frame (and the badge and beep), acknowledges
it, pauses the call with a reason, approves the resume, ends the call, and reads the history.
Screenshots of each step go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from support.chromium import ARGS, CHROMIUM, require_chromium
from support.live_server import book_now, call_clips, join_device, serving
from support.waiting import until

from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.database import Store
from policies.decisions import State

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [*ARGS, "--autoplay-policy=no-user-gesture-required"]

require_chromium()


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    return call_clips()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    store = Store(tmp_path_factory.mktemp("db") / "monitor.db")
    auth.add_staff(store, "officer", "HMP Example", PASSWORD)
    async with serving(store=store) as srv:
        yield srv
    store.close()


async def test_staff_console_in_chromium(
    server: Server, clips: dict[str, list[np.ndarray]], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    call = book_now(server, "console-call")  # in the store too: the console lists it
    prison, _ = await join_device(server, call, "prisoner", clips["clean"])
    visitor, camera = await join_device(server, call, "visitor", clips["clean"])
    async with async_playwright() as p:
        browser = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"http://127.0.0.1:{server.port}/console")

            # log in (a wrong password first)
            await page.fill("#login-user", "officer")
            await page.fill("#login-password", "not the password")
            await page.click("#login-button")
            await expect(page.locator("#login-error")).to_contain_text("wrong user name or password")
            await page.screenshot(path=str(ARTIFACTS / "console-1-login.png"))
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-button")
            await expect(page.locator("#prison-name")).to_have_text("HMP Example")
            await expect(page.locator("#connection")).to_have_text("live")

            # the board shows the call going live
            row = page.locator('#board-body tr[data-call="console-call"]')
            await expect(row).to_contain_text("John Smith")
            await expect(row.locator(".pill")).to_have_text("live", timeout=45_000)
            await expect(row).to_contain_text("prison side")
            await expect(row).to_contain_text("visitor side")
            await page.screenshot(path=str(ARTIFACTS / "console-2-board-live.png"))

            # watch and listen: receive-only WebRTC from the relay, one picture per booked seat
            await row.click()
            await page.click("#watch-button")
            await expect(page.locator("#watch-status")).to_have_text("live")
            playing = "[...document.querySelectorAll('#watch-videos video')]"
            await page.wait_for_function(
                f"() => {playing}.length === 2 && {playing}.every(v => v.videoWidth && v.currentTime > 0.5)",
                timeout=30_000,
            )
            sound = await page.evaluate(f"{playing}.map(v => v.srcObject.getAudioTracks().length)")
            assert sound == [1, 1]

            # an unbooked person walks in: the alert arrives live with its evidence frame
            camera.play(clips["intruder"])
            alert = page.locator("#alert-feed li.alert", has_text="Unbooked person in view").first
            await expect(alert).to_be_visible(timeout=45_000)
            await expect(alert.locator("img.evidence")).to_be_visible()
            images = "[...document.querySelectorAll('#alert-feed img.evidence')]"
            await page.wait_for_function(f"() => {images}.some(i => i.naturalWidth > 100)")
            await expect(page.locator("#alert-badge")).to_be_visible()
            assert int(await page.locator("#alert-badge").inner_text()) >= 1
            assert int(await page.evaluate("document.body.dataset.beeps || '0'")) >= 1
            await expect(row.locator(".pill")).to_have_text("paused")
            # an automatic pause needs no approval: staff are told it resumes by itself
            await expect(page.locator("#resume-hint")).to_contain_text(
                "Resumes by itself when the security check passes."
            )
            await expect(page.locator("#resume-button")).to_be_disabled()
            await expect(page.locator("#pause-button")).to_be_enabled()  # to hold it for approval
            await page.screenshot(path=str(ARTIFACTS / "console-3-alert.png"), full_page=True)
            await page.click("#unwatch-button")  # staff saw the intruder while the participants were paused
            await expect(page.locator("#watch-videos video")).to_have_count(0)

            # acknowledge it
            await alert.get_by_role("button", name="Acknowledge").click()
            await expect(page.locator("#alert-feed li.alert.acknowledged").first).to_be_visible()

            # the intruder leaves: the recheck passes and the call resumes by itself
            camera.play(clips["clean"])
            await expect(row.locator(".pill")).to_have_text("live", timeout=45_000)

            # staff pause with a reason
            await row.click()
            await expect(page.locator("#call-view")).to_be_visible()
            await page.fill("#pause-note", "inappropriate behaviour")
            await page.click("#pause-button")
            await expect(page.locator("#call-state")).to_have_text("paused")
            await expect(page.locator("#call-meta")).to_contain_text("Paused by staff")
            assert call.state is State.PAUSED
            await page.screenshot(path=str(ARTIFACTS / "console-4-staff-pause.png"))

            # the recheck passes (clean camera), then staff approve the resume and the call goes live
            hint = page.locator("#resume-hint")
            await expect(hint).to_contain_text("Security check passed", timeout=30_000)
            await page.click("#resume-button")
            await expect(page.locator("#call-state")).to_have_text("live", timeout=30_000)
            await until(lambda: call.state is State.LIVE, 10, "the call to be live")

            # end the call
            page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.click("#end-button")
            await expect(page.locator("#call-state")).to_have_text("ended", timeout=15_000)
            await asyncio.wait_for(call.ended.wait(), 10)
            await expect(page.locator("#end-button")).to_be_disabled()

            # the history: every step, the alert with its evidence, the staff actions
            timeline = page.locator("#timeline-body")
            for text in (
                "alert: Unbooked person in view",
                "staff: watch",
                "staff: pause",
                "officer: inappropriate behaviour",
                "staff: approve resume",
                "staff: end",
                "live → paused",
                "paused → live",
                "→ ended",
            ):
                await expect(timeline).to_contain_text(text)
            assert await timeline.locator("img").count() >= 1
            await page.locator("#call-view").scroll_into_view_if_needed()
            await page.screenshot(path=str(ARTIFACTS / "console-5-history.png"), full_page=True)

            # signing out ends the session: the data routes refuse the old cookie
            async with page.expect_navigation():  # logout reloads the page: wait for it
                await page.click("#logout-button")
            await expect(page.locator("#login-view")).to_be_visible()
            status = await page.evaluate("fetch('/console/api/calls').then(r => r.status)")
            assert status == 401
        finally:
            await browser.close()
            await visitor.close()
            await prison.close()
            await call.close()
    assert server.store is not None
    from monitor.store.audit import AuditLog

    assert AuditLog(server.store).verify().ok
