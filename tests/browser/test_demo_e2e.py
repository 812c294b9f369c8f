"""What a newcomer does after `make run`, in headless Chromium: the real `monitor serve --demo`
process (the command `make run` runs, on a free port and a scratch database), its printed prisoner
and visitor links opened in two browsers whose fake camera shows the demo's booked visitor, and the
console opened in a third browser with the printed staff account.

Done when (issues 4 and 5): the demo call goes live in both browsers, the console board shows it
live, the call view lets staff watch it, and the server stops cleanly. Screenshots go to
test-artifacts/demo-*.png.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.chromium import ARGS, CHROMIUM, FAKE_MEDIA, require_chromium
from support.live_server import ping_pong
from support.serve_process import printed_links

from signalling.client import load_clip, write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
MONITOR = Path(sys.executable).parent / "monitor"  # the command `make run` runs
require_chromium()


class Demo:
    """`monitor serve --demo` running; what it printed."""

    def __init__(self, db: Path) -> None:
        self.process = subprocess.Popen(
            [str(MONITOR), "serve", "--demo", "--port", "0", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        links, self.console = printed_links(self.process)
        self.links = {link["role"]: link["url"] for link in links}
        self.call_id = links[-1]["call_id"]

    def stderr(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        return self.process.stderr.read() if self.process.stderr else ""

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        return code, self.stderr()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    server = Demo(tmp_path / "monitor.db")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


async def launch(playwright: Any, profile: Path, camera: Path | None = None) -> Any:
    media = [*FAKE_MEDIA, f"--use-file-for-fake-video-capture={camera}"] if camera else []
    return await playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=[*ARGS, *media],
        viewport={"width": 1200, "height": 760},
    )


async def test_make_run_demo_call_in_browsers_is_live_on_the_console(demo: Demo, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    assert set(demo.links) == {"prisoner", "visitor"}, demo.links
    assert demo.console["username"] == "demo"
    # the demo's booked visitor is the man in clean.webm: his clip is the browsers' camera
    clip = load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=45)
    camera = write_y4m(tmp_path / "clean.y4m", ping_pong(clip))
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        prison = await launch(playwright, tmp_path / "prison", camera)
        visitor = await launch(playwright, tmp_path / "visitor", camera)
        staff = await launch(playwright, tmp_path / "staff")
        try:
            prison_page = await prison.new_page()
            visitor_page = await visitor.new_page()
            await prison_page.goto(demo.links["prisoner"])
            await visitor_page.goto(demo.links["visitor"])
            for page in (visitor_page, prison_page):
                await page.wait_for_function(
                    "window.monitorCall && window.monitorCall.state === 'live'", timeout=90_000
                )
            await visitor_page.screenshot(path=str(ARTIFACTS / "demo-visitor-live.png"))

            console = staff.pages[0] if staff.pages else await staff.new_page()
            console.set_default_timeout(20_000)
            await console.goto(demo.console["console"])
            await console.fill("#login-user", demo.console["username"])
            await console.fill("#login-password", demo.console["password"])
            await console.click("#login-button")
            row = console.locator(f'#board-body tr[data-call="{demo.call_id}"]')
            await expect(row.locator(".pill")).to_have_text("live")
            await console.screenshot(path=str(ARTIFACTS / "demo-console-board.png"))
            # staff open the call and watch it: the relay sends them the call's video
            await row.click()
            await console.click("#watch-button")
            await expect(console.locator("#watch-status")).to_have_text("live")
            await console.wait_for_function(
                "() => [...document.querySelectorAll('#watch-videos video')]"
                ".some(v => v.videoWidth && v.currentTime > 0.5)"
            )
            await console.screenshot(path=str(ARTIFACTS / "demo-console-watch.png"))
        finally:
            for browser in (staff, visitor, prison):
                await browser.close()
    code, errors = demo.stop()
    assert code == 0, errors
    assert "Traceback" not in errors, errors
