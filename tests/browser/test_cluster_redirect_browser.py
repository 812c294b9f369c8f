"""End to end in headless Chromium across two nodes (``--routing redirect``): a visitor opens
their link on node a, whose calls run on node b; the join page follows the redirect to b's
signalling socket (b accepts a's pages' origin), joins there and, with the prison terminal (an
aiortc device that reached a too), the call goes live on b with the browser's media going to b.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.chromium import ARGS, CHROMIUM, FAKE_MEDIA, require_chromium
from support.cluster import book, nodes, ws_url
from support.live_server import CLEAN_CLIP, booking_now, ping_pong, recover_like_a_browser

from monitor.call.call import Call
from monitor.cluster.routing import signalling_url
from policies.decisions import State
from signalling.client import ClipTrack, Device, ToneTrack, load_clip, write_y4m

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
require_chromium()


async def test_the_join_page_follows_a_redirect_to_the_calls_node_and_goes_live(
    tmp_path: Path, redis_url: str
) -> None:
    from playwright.async_api import async_playwright

    clean = ping_pong(load_clip(CLEAN_CLIP, max_frames=45))
    camera = write_y4m(tmp_path / "clean.y4m", clean)
    async with nodes(tmp_path / "monitor.db", redis_url, ["a", "b"], routing="redirect") as cluster:
        a, b = cluster["a"], cluster["b"]
        await a.cluster.drain()  # the call goes to b; a redirects its devices there
        tokens = book(a.store, booking_now("redirected"))
        prisoner = Device(ws_url(a))
        await prisoner.open()
        assert (await prisoner.join(tokens["A1234BC"]))["type"] == "joined"
        await prisoner.call(ClipTrack(clean), ToneTrack())
        recover_like_a_browser(prisoner)
        async with async_playwright() as playwright:
            context: Any = await playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=[*ARGS, *FAKE_MEDIA, f"--use-file-for-fake-video-capture={camera}"],
            )
            try:
                page = await context.new_page()
                await page.goto(f"{a.base_url}/join/{tokens['v1']}")
                await page.wait_for_function(
                    "window.monitorCall && window.monitorCall.state === 'live'", timeout=90_000
                )
                view = await page.evaluate(
                    "({redirects: window.monitorCall.redirects, server: window.monitorCall.server})"
                )
            finally:
                await context.close()
        assert view == {"redirects": 1, "server": signalling_url(b.node_url())}
        call = b.calls.get("redirected")
        assert isinstance(call, Call) and call.state is State.LIVE and a.calls.get("redirected") is None
        assert a.cluster.stats.redirected == 2
        await prisoner.close()
