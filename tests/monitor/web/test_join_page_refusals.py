"""The join page in Chromium against the real server, for links that cannot join: the page stops
trying, its badge names the problem (not "Connecting…" or "Call ended" for a link that is not
valid) and its notice says what to do, in sentences."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from support.chromium import ARGS as BASE_ARGS
from support.chromium import CHROMIUM, FAKE_MEDIA, require_chromium
from support.live_server import serving

from monitor.bookings import load_booking
from monitor.server.serve import Server
from policies.config import load_policy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
ARGS = [*BASE_ARGS, *FAKE_MEDIA]
require_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    config = load_policy()
    base = load_booking(BOOKING, config)
    later = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
    future = dataclasses.replace(
        base, call_id="call-future", starts_at=later, ends_at=later + (base.ends_at - base.starts_at)
    )
    async with serving([future], analysis_workers=0) as srv:
        yield srv


def future_link(server: Server) -> str:
    call = server.calls.get("call-future")
    assert call is not None
    token = next(t for t, seat in call.seats.items() if seat.role.value == "visitor")
    return f"{server.base_url}/join/{token}"


async def page_after(playwright: Any, profile: Path, url: str) -> dict[str, Any]:
    browser = await playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=ARGS
    )
    try:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        await page.goto(url)
        await page.wait_for_function("window.monitorCall.errors.length > 0", timeout=15_000)
        await page.wait_for_timeout(2500)  # past the first reconnect the page would have made
        return {
            "state": await page.evaluate("window.monitorCall.state"),
            "rejoins": await page.evaluate("window.monitorCall.rejoins || 0"),
            "badge": await page.locator("#badge").inner_text(),
            "notice": await page.locator("#notice").inner_text(),
            "left": await page.locator("#left").inner_text(),
        }
    finally:
        await browser.close()


async def test_a_link_that_cannot_join_says_why_and_what_to_do(server: Server, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        unknown = await page_after(p, tmp_path / "a", f"{server.base_url}/join/not-a-real-link")
        early = await page_after(p, tmp_path / "b", future_link(server))
    assert unknown == {
        "state": "ended",
        "rejoins": 0,
        "badge": "Link not valid",
        "notice": "This join link is not valid.",
        "left": "",
    }
    assert (early["state"], early["rejoins"], early["badge"]) == ("ended", 0, "Not open yet"), early
    assert early["left"] == "", early
    assert early["notice"].startswith("This link works from ") and early["notice"].endswith(
        ". Open this link again then."
    ), early
