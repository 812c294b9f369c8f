"""Chromium plays a recorded call from the console's history view (``<video>``/``<audio>``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_site import Site, console_page
from support.chromium import require_chromium
from test_console_recordings import record

pytestmark = [pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
require_chromium()


@pytest.fixture
def store_at(tmp_path: Path) -> str:
    """SQLite only: the browser shows the same console on either engine, and the console's API
    tests run on both (a second Chromium per test would buy nothing)."""
    return str(tmp_path / "monitor.db")


async def test_history_view_plays_the_recordings(site: Site, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1", video_frames=30)
    async with async_playwright() as p, console_page(p, site, tmp_path / "profile") as page:
        await page.locator('#board-body tr[data-call="call-ex"]').click()
        await expect(page.locator("#recordings figure")).to_have_count(2)
        first = page.locator("#recordings figure").first
        await expect(first).to_contain_text("v1 analysed frames, part 1 from 3.5 s")
        video, audio = page.locator("#recordings video"), page.locator("#recordings audio")
        await expect(video).to_have_attribute("src", "/console/api/recordings/call-ex/v1.video.1.webm")
        await page.wait_for_function(
            "() => { const v = document.querySelector('#recordings video'); return v.readyState >= 1; }"
        )
        width, height, duration = await video.evaluate("v => [v.videoWidth, v.videoHeight, v.duration]")
        assert (width, height) == (640, 480) and 0.8 < duration < 1.2
        await video.evaluate("v => { v.muted = true; return v.play(); }")
        await page.wait_for_function("() => document.querySelector('#recordings video').currentTime > 0.3")
        await page.wait_for_function("() => document.querySelector('#recordings audio').readyState >= 1")
        assert 0.4 < await audio.evaluate("a => a.duration") < 0.6
        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator("#call-view").screenshot(path=str(ARTIFACTS / "console-recordings.png"))


async def test_a_recording_larger_than_one_answer_plays_through_from_its_parts(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers cut to a few KB (the server's real limit is 4 MB): Chromium asks for the rest of the
    file range by range as it plays, and seeks into parts it has not fetched yet."""
    from playwright.async_api import async_playwright

    from monitor.console import recordings

    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1", video_frames=30)
    size = (site.record_dir / "call-ex" / "v1.video.1.webm").stat().st_size
    monkeypatch.setattr(recordings, "MAX_PART_BYTES", max(4096, size // 12))
    async with async_playwright() as p, console_page(p, site, tmp_path / "profile") as page:
        ranges: list[str] = []
        page.on(
            "request",
            lambda r: ranges.append(r.headers.get("range", "")) if "v1.video.1.webm" in r.url else None,
        )
        await page.locator('#board-body tr[data-call="call-ex"]').click()
        await page.wait_for_function("() => document.querySelector('#recordings video')?.readyState >= 1")
        video = page.locator("#recordings video")
        assert 0.8 < await video.evaluate("v => v.duration") < 1.2
        await video.evaluate("v => { v.muted = true; return v.play(); }")
        await page.wait_for_function(
            "() => document.querySelector('#recordings video').ended", timeout=20_000
        )
        await video.evaluate("v => { v.currentTime = 0.5; }")
        await page.wait_for_function(
            "() => { const v = document.querySelector('#recordings video'); "
            "return !v.seeking && v.readyState >= 2; }"
        )
        assert len(ranges) >= 2 and all(r.startswith("bytes=") for r in ranges), ranges
