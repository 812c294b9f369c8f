"""The family pages in headless Chromium on a phone-sized screen (390 x 844, touch), against the real
server: register, confirm through the mailed link, sign in, a photo refused saying why, a real face
photo and photo ID, the prisoner not matched then matched, staff verify (through the store's staff
API: the console's pages come later), a call booked from the day and time pickers, shown with its
cancel button. Every control the family touches is at least 44 px high and nothing is wider than
the screen. Screenshots go to test-artifacts/family/.

(The whole walk with a real SMTP server, the console in a second browser, axe-core on every view
and the mailed link joining the live call is test_family_walkthrough.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from support.chromium import ARGS, CHROMIUM, require_chromium
from support.family_site import NO_FACE, OBAMA, PASSWORD, PRISONER, Clock, MemoryMailer, prison_with_staff

from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.database import Store
from monitor.store.family_staff import change_settings, verify_account
from policies.config import load_policy

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "family"
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=ZoneInfo("Europe/London"))

require_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Server, Store, MemoryMailer, auth.Staff, auth.Staff]]:
    store = Store(tmp_path_factory.mktemp("db") / "monitor.db", clock=Clock(MONDAY.timestamp()))
    officer, governor = prison_with_staff(store)
    mailer = MemoryMailer()
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store)
    server.mailer = mailer
    await server.start()
    yield server, store, mailer, officer, governor
    await server.stop()
    store.close()


async def touch_sized(page: Any) -> None:
    """Every visible button, input and select is at least 44 px high; nothing is wider than the page."""
    visible = "main button:visible, main input:visible, main select:visible, .file-button:visible"
    for control in await page.locator(visible).all():
        box = await control.bounding_box()
        if box is not None and await control.get_attribute("type") not in ("checkbox", "radio"):
            assert box["height"] >= 44, (await control.evaluate("e => e.outerHTML"), box)
        if box is not None:
            assert box["x"] + box["width"] <= 390 + 1, (await control.evaluate("e => e.outerHTML"), box)


async def test_a_family_registers_is_verified_and_books_on_a_phone(
    site: tuple[Server, Store, MemoryMailer, auth.Staff, auth.Staff], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    server, store, mailer, officer, governor = site
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=list(ARGS),
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
        )
        page = context.pages[0] if context.pages else await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            await page.goto(f"{base}/family")
            await page.get_by_role("button", name="Open an account").click()
            form = page.locator("#view-register")
            await form.get_by_label("Your full name").fill("Jane Smith")
            await form.get_by_label("Your date of birth").fill("1985-04-01")
            await form.get_by_label("Your home address").fill("1 High St, Leeds")
            await form.get_by_label("E-mail address").fill("jane@example.org")
            await form.get_by_label("Choose a password").fill(PASSWORD)
            await touch_sized(page)
            await page.screenshot(path=ARTIFACTS / "1-register.png", full_page=True)
            await page.get_by_role("button", name="Open my account").click()
            await page.wait_for_selector("#view-sent:not([hidden])")
            assert await page.inner_text("#sent-to") == "jane@example.org"

            await page.goto(mailer.last("confirm_email")["link"])
            await page.wait_for_selector("#notice:has-text('your e-mail address is confirmed')")
            form = page.locator("#view-signin")
            await form.get_by_label("E-mail address").fill("jane@example.org")
            await form.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_selector("#view-home:not([hidden])")
            await touch_sized(page)
            await page.screenshot(path=ARTIFACTS / "2-home.png", full_page=True)

            face = page.locator("#people li").first.locator("input[type=file]").nth(0)
            await face.set_input_files(NO_FACE)
            await page.wait_for_selector("#notice:has-text('no face found')", timeout=60_000)
            await face.set_input_files(OBAMA)
            await page.wait_for_selector("#notice:has-text('Received')", timeout=60_000)
            await page.locator("#people li").first.locator("input[type=file]").nth(1).set_input_files(OBAMA)
            await page.wait_for_selector("#people .have:has-text('Photo ID: received')", timeout=60_000)
            await page.get_by_label("My photo ID shows my current address").check()

            await page.get_by_role("button", name="Add the person in prison").click()
            await page.get_by_label("Their full name").fill("John Smith")
            await page.get_by_label("Their prison number").fill(PRISONER[0])
            await page.get_by_label("Their date of birth").fill("1980-02-04")
            await page.get_by_role("button", name="Add", exact=True).click()
            await page.wait_for_selector("#contact-error:has-text('We could not match these details.')")
            await page.screenshot(path=ARTIFACTS / "3-no-match.png", full_page=True)
            await page.get_by_label("Their date of birth").fill(PRISONER[2])
            await page.get_by_role("button", name="Add", exact=True).click()
            await page.wait_for_selector("#account-status[data-status=pending]")
            await page.screenshot(path=ARTIFACTS / "4-pending.png", full_page=True)

            account = store.db.execute("SELECT id FROM family_accounts").fetchone()[0]
            verify_account(store, officer, account, load_policy(), mailer)
            await page.reload()
            await page.wait_for_selector("#account-status[data-status=verified]")
            await page.get_by_role("button", name="Book a call with John Smith").click()
            await page.wait_for_selector("#slots input[type=radio]")
            await page.get_by_label("Day").select_option("2030-06-04")
            await page.get_by_label("14:00").check()
            await touch_sized(page)
            await page.screenshot(path=ARTIFACTS / "5-book.png", full_page=True)
            await page.get_by_role("button", name="Book this call").click()
            await page.wait_for_selector("#notice:has-text('Booked: Tue 4 Jun, 14:00')")
            await page.wait_for_selector("#calls button:has-text('Cancel this call')")
            assert "Tue 4 Jun, 14:00 with John Smith" in await page.inner_text("#calls")
            await page.screenshot(path=ARTIFACTS / "6-booked.png", full_page=True)
            assert mailer.last("call_booked")["starts_at"] == "2030-06-04T14:00:00+01:00"

            # a prison where staff book: the family asks, with times that suit
            change_settings(store, governor, mode="staff_booked")
            await page.reload()
            await page.get_by_role("button", name="Ask for a call with John Smith").click()
            await page.get_by_label("First choice").fill("2030-06-06T10:00")
            await touch_sized(page)
            await page.screenshot(path=ARTIFACTS / "7-request.png", full_page=True)
            await page.get_by_role("button", name="Send the request").click()
            await page.wait_for_selector("#notice:has-text('Request sent')")
            assert "Waiting for the prison to book a time" in await page.inner_text("#requests")
            assert errors == []
        finally:
            await context.close()
