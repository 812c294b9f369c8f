"""The join page fits the screen of a laptop: the other side's picture and the notice that the call
is monitored are in view without scrolling (the page's own HTML and CSS in Chromium; the slots are
the elements join.js makes for each booked person on the other side)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.chromium import ARGS, CHROMIUM, require_chromium

pytestmark = [pytest.mark.browser]
WEB = Path(__file__).resolve().parents[3] / "monitor" / "web"
ADD_SLOT = """n => {
  const figure = document.createElement("figure");
  figure.dataset.slot = String(n);
  const video = document.createElement("video");
  const caption = document.createElement("figcaption");
  caption.textContent = "Jane Smith";
  figure.append(video, caption);
  document.getElementById("remote").append(figure);
}"""

require_chromium()


@pytest.mark.parametrize("width,height", [(1100, 700), (1366, 768), (1920, 1080)])
@pytest.mark.parametrize("slots", [1, 2])
async def test_the_picture_and_the_monitoring_notice_fit_without_scrolling(
    width: int, height: int, slots: int, tmp_path: Path
) -> None:
    from playwright.async_api import Route, async_playwright

    async def serve(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[1]
        if name == "join.css":
            await route.fulfill(body=(WEB / "join.css").read_text(), content_type="text/css")
        elif name == "join.js":  # the layout only: no call
            await route.fulfill(body="", content_type="text/javascript")
        else:
            await route.fulfill(body=(WEB / "join.html").read_text(), content_type="text/html")

    async with async_playwright() as p:
        browser = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            await page.route("http://join.test/**", serve)
            await page.goto("http://join.test/join/token")
            for n in range(slots):
                await page.evaluate(ADD_SLOT, n)
            scroll = await page.evaluate("document.documentElement.scrollHeight")
            footer = await page.evaluate("document.querySelector('footer').getBoundingClientRect().bottom")
            video = await page.evaluate(
                "document.querySelector('#remote video').getBoundingClientRect().toJSON()"
            )
            assert scroll <= height and footer <= height, (scroll, footer)
            assert video["height"] >= 0.4 * height and video["width"] >= 0.3 * width, video  # still large
        finally:
            await browser.close()
