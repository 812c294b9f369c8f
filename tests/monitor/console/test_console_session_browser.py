"""Chromium's console when its feed socket is refused at the handshake.

The server refuses a console WebSocket without a valid session with a plain HTTP 401 (no socket),
which a page only sees as close code 1006, the same as a server that is down. The page must tell
the two apart: while the server is down it keeps retrying (no login form), and once the server
answers again but refuses the session (here: the server restarted and the session was revoked
meanwhile), it shows the login form; signing in again brings the live feed back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_site import PASSWORD
from support.chromium import ARGS, CHROMIUM, require_chromium
from websockets.asyncio.server import Server, serve

from monitor import console
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.http import Router
from monitor.hub import Hub
from monitor.store import auth
from monitor.store.database import Store

pytestmark = [pytest.mark.browser]
require_chromium()


async def start(router: Router, port: int = 0) -> Server:
    return await serve(router.handle_websocket, "127.0.0.1", port, process_request=router.process_request)


async def test_a_feed_refused_at_the_handshake_shows_the_login_and_signing_in_again_reconnects(
    tmp_path: Path,
) -> None:
    from playwright.async_api import async_playwright, expect

    store = Store(tmp_path / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    router, calls = Router(), Calls[Call]()
    recorder = console.register(router, store=store, hub=Hub(), calls=calls)
    server = await start(router)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS
            )
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                page.set_default_timeout(15_000)

                async def sign_in() -> None:
                    await page.fill("#login-user", "alice")
                    await page.fill("#login-password", PASSWORD)
                    await page.click("#login-button")
                    await expect(page.locator("#connection")).to_have_text("live")

                await page.goto(f"http://127.0.0.1:{port}/console")
                await sign_in()
                session = next(c["value"] for c in await browser.cookies() if c["name"] == "monitor_session")

                # the server goes away: the page retries and does not ask anyone to sign in
                server.close()
                await server.wait_closed()
                await expect(page.locator("#connection")).to_have_text("offline")
                auth.logout(store, session)  # the session is revoked while the server is down
                await asyncio.sleep(2.0)  # a few refused connection attempts (no answer at all)
                assert await page.locator("#login-view").is_hidden()
                assert await page.locator("#app-view").is_visible()

                # it comes back and refuses the session at the handshake (401): the login shows
                server = await start(router, port)
                await expect(page.locator("#login-view")).to_be_visible(timeout=20_000)
                await expect(page.locator("#login-error")).to_have_text(
                    "Your session ended. Please sign in again."
                )
                await sign_in()  # a new session, a new feed
                assert await page.locator("#login-view").is_hidden()
            finally:
                await browser.close()
    finally:
        server.close()
        await server.wait_closed()
        if recorder is not None:
            recorder.stop()
        await calls.close()
        store.close()
