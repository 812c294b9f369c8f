"""Chromium's console when the server cannot write its audit records: the database is on a real
tmpfs filled to the last byte while a call publishes. Staff see a red banner in the server's words
with the call paused because of it, the board marks the call, and both go once space is back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from console_site import PASSWORD, booking_now
from support.chromium import ARGS, CHROMIUM, require_chromium
from support.small_disk import small_disk
from websockets.asyncio.server import serve

from monitor import console
from monitor.admin import import_booking
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.http import Router
from monitor.hub import Hub
from monitor.store import auth
from monitor.store.database import Store

pytestmark = [pytest.mark.browser]
require_chromium()


async def test_staff_see_a_store_error_and_its_end(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    with small_disk(tmp_path, "8m") as disk:
        store = Store(disk.path / "monitor.db")
        auth.add_staff(store, "alice", "HMP Example", PASSWORD)
        import_booking(store, booking_now("call-ex"))
        router, hub = Router(), Hub()
        recorder = console.register(router, store=store, hub=hub, calls=Calls[Call]())
        server = await serve(router.handle_websocket, "127.0.0.1", 0, process_request=router.process_request)
        port = next(iter(server.sockets)).getsockname()[1]
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch_persistent_context(
                    str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS
                )
                try:
                    page = browser.pages[0] if browser.pages else await browser.new_page()
                    page.set_default_timeout(15_000)
                    await page.goto(f"http://127.0.0.1:{port}/console")
                    await page.fill("#login-user", "alice")
                    await page.fill("#login-password", PASSWORD)
                    await page.click("#login-button")
                    await expect(page.locator("#connection")).to_have_text("live")
                    banner = page.locator("#store-error")
                    await expect(banner).to_be_hidden()

                    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    disk.fill()
                    hub.publish("call-ex", {"kind": "alert", "t": 3.0, "reason": "capture_attempt"})
                    await expect(banner).to_be_visible()
                    await expect(banner).to_contain_text("Store error: records cannot be written")
                    await expect(banner).to_contain_text("database or disk is full")
                    await expect(banner).to_contain_text("Calls paused until they are: call-ex.")
                    row = page.locator('tr[data-call="call-ex"]')
                    await expect(row).to_contain_text("records waiting (store error)")

                    disk.free()
                    await expect(banner).to_be_hidden()
                    await expect(row).not_to_contain_text("records waiting")
                    await expect(page.locator("#alert-feed li")).to_have_count(1)  # the alert, written
                finally:
                    await browser.close()
        finally:
            server.close()
            await server.wait_closed()
            if recorder is not None:
                recorder.stop()
            store.close()
