"""The join page in Chromium against the real server, for links that cannot join: the page stops
trying, its badge names the problem (not "Connecting…" or "Call ended" for a link that is not
valid, not "Connecting…" for a link already in use on another device) and its notice says what to
do, in sentences, with a time in words in the device's own time zone."""

from __future__ import annotations

import dataclasses
import re
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
from signalling.client import Device

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
    running = dataclasses.replace(base, call_id="call-now", starts_at=datetime.now(UTC), ends_at=later)
    async with serving([future, running], analysis_workers=0) as srv:
        yield srv


def visitor_link(server: Server, call_id: str = "call-future") -> str:
    call = server.calls.get(call_id)
    assert call is not None
    token = next(t for t, seat in call.seats.items() if seat.role.value == "visitor")
    return f"{server.base_url}/join/{token}"


def future_start(server: Server) -> datetime:
    call = server.calls.get("call-future")
    assert call is not None
    return call.booking.starts_at


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

    in_use = visitor_link(server, "call-now")
    holder = Device(f"ws://127.0.0.1:{server.port}/ws/call")  # a first device holds the link's seat
    await holder.open()
    try:
        assert (await holder.join(in_use.rsplit("/", 1)[1]))["type"] == "joined"
        async with async_playwright() as p:
            unknown = await page_after(p, tmp_path / "a", f"{server.base_url}/join/not-a-real-link")
            early = await page_after(p, tmp_path / "b", visitor_link(server))
            second = await page_after(p, tmp_path / "c", in_use)
    finally:
        await holder.close()
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
    # the time in words, in the device's own time zone: never the server's ISO text
    opens = (future_start(server) - timedelta(minutes=15)).astimezone()  # the browser's zone is ours
    said = early["notice"]
    assert f"{opens:%A}" in said and f"{opens.day}" in said, early  # weekday and day, in words
    assert f"at {opens:%H:%M}." in said or f"at {opens:%I:%M}" in said, early  # 24 h or 12 h clock
    assert re.search(r"\dT\d|[+-]\d\d:\d\d", early["notice"]) is None, early
    # a second device on a link in use: the refusal in plain words, and the page stops trying
    assert second == {
        "state": "ended",
        "rejoins": 0,
        "badge": "Link in use",
        "notice": "This link is already in use on another device. "
        "Close the call on the other device, or ask for a new link.",
        "left": "",
    }, second
