"""Staff judge an undecided face in headless Chromium, against the real server.

Two calls through the real server (relay, analysis worker with the real models, policy session,
store, audit recorder) of the ``undecided`` fixture: the visitor is booked with another woman's
photo, and the visitor's camera (an in-process aiortc device) shows a woman whose face dlib puts
0.49-0.56 from it, so identity can neither confirm nor rule her out; the prison side's camera shows
the clean clip (no prisoner photo: not analysed). A member of staff sees each call's
``identity_unconfirmed`` alert with the frame the call saw and the booked photo side by side, and
clicks "This is Mei Chen" on the first call (it goes live) and "Not booked" on the second (it
pauses as unbooked and never goes live); each call's history names the verdict, and a verdict on a
call that has ended is refused with the reason shown on the alert. Screenshots go to
test-artifacts/ (console-identity-*.png).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from support.chromium import ARGS, CHROMIUM, require_chromium
from support.live_server import add_call, booking_now, call_clips, join_device, ping_pong, serving
from support.waiting import until

from monitor.admin import import_booking
from monitor.call.call import Call
from monitor.record.timeline import decision_record
from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.decisions import State
from signalling.client import load_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
UNDECIDED = ROOT / "fixtures" / "bookings" / "undecided" / "booking.json"
UNDECIDED_CLIP = ROOT / "fixtures" / "clips" / "undecided.webm"
PASSWORD = "correct horse battery"

require_chromium()


@pytest.fixture(scope="module")
def cameras() -> dict[str, list[np.ndarray]]:
    # the first 2 s of the undecided clip (before she reaches for her hair), ping-ponged
    return {"clean": call_clips()["clean"], "undecided": ping_pong(load_clip(UNDECIDED_CLIP, max_frames=60))}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    store = Store(tmp_path_factory.mktemp("db") / "monitor.db")
    auth.add_staff(store, "officer", "HMP Example", PASSWORD)
    async with serving(store=store) as srv:
        yield srv
    store.close()


def book(server: Server, call_id: str) -> Call:
    booking = booking_now(call_id, path=UNDECIDED)
    assert server.store is not None
    import_booking(server.store, booking)
    return add_call(server, booking)


SIDE_BY_SIDE = """(callId) => {
  // the feed is redrawn as records arrive: everything is read from one redraw, at once
  const item = [...document.querySelectorAll('#alert-feed li.alert')]
    .find((li) => li.querySelector('.identity-pictures') && li.textContent.includes(`call ${callId}`));
  const shown = item ? [...item.querySelectorAll('.identity-pictures img')] : [];
  if (shown.length !== 2 || !shown.every((i) => i.complete && i.naturalWidth > 50)) return false;
  const [seen, booked] = shown.map((i) => i.getBoundingClientRect());
  return { alts: shown.map((i) => i.alt), seen: [seen.left, seen.top, seen.width, seen.height],
    booked: [booked.left, booked.top, booked.width, booked.height] };
}"""


async def side_by_side(page: Any, call_id: str) -> None:
    """The alert's frame and the booked photo are both shown, loaded, next to each other."""
    found = await page.wait_for_function(SIDE_BY_SIDE, arg=call_id, timeout=30_000)
    shown = await found.json_value()
    assert shown["alts"] == ["face seen on the call", "booked reference photo of Mei Chen"], shown
    (x1, y1, w1, h1), (x2, y2, w2, h2) = shown["seen"], shown["booked"]
    assert abs(y1 - y2) < 4 and x2 >= x1 + w1 - 1, shown  # one row, the photo to the right
    assert min(w1, w2, h1, h2) > 80, shown  # big enough to compare faces


async def judge(page: Any, call: Call, verdict: str) -> None:
    """Staff see ``call``'s undecided face beside the booked photo and give ``verdict``."""
    from playwright.async_api import expect

    call_id = call.call_id
    row = page.locator(f'#board-body tr[data-call="{call_id}"]')
    first = page.locator(f'#alert-feed li.alert:has(.identity):has-text("call {call_id}")').first
    await expect(first).to_be_visible(timeout=60_000)
    # this alert, whatever comes after it (the feed shows the newest first)
    alert = page.locator(f'#alert-feed li[data-audit="{await first.get_attribute("data-audit")}"]')
    await expect(alert.locator(".alert-reason")).to_have_text("Face not confirmed")
    await side_by_side(page, call_id)
    await expect(alert.locator(".alert-guidance")).to_contain_text("face the camera")
    await expect(row.locator(".pill")).to_have_text("paused")
    assert call.state is State.PAUSED
    await page.screenshot(path=str(ARTIFACTS / f"console-identity-{verdict}-1.png"), full_page=True)

    if verdict == "confirm":
        await alert.get_by_role("button", name="This is Mei Chen").click()
        await expect(alert.locator(".identity-verdict")).to_contain_text("confirmed as Mei Chen (by officer)")
        await expect(row.locator(".pill")).to_have_text("live", timeout=30_000)
        await until(lambda: call.state is State.LIVE, 10, "the confirmed call to be live")
    else:
        await alert.get_by_role("button", name="Not booked").click()
        await expect(alert.locator(".identity-refused")).to_have_text("")
        await expect(alert.locator(".identity-verdict")).to_contain_text("rejected: not booked")
        unbooked = page.locator(
            f'#alert-feed li.alert:has-text("call {call_id}")', has_text="Unbooked person in view"
        )
        await expect(unbooked.first).to_be_visible(timeout=30_000)
        await asyncio.sleep(4.0)  # longer than a recheck: it must not go live
        assert call.state is State.PAUSED
    await expect(alert).to_have_class("alert acknowledged")  # a verdict answers the alert
    await page.screenshot(path=str(ARTIFACTS / f"console-identity-{verdict}-2.png"), full_page=True)

    # the call's history says who decided what, about which face
    await row.click()
    action = "confirm identity" if verdict == "confirm" else "reject identity"
    await expect(page.locator("#timeline-body")).to_contain_text(f"staff: {action}")
    said = r"confirmed as Mei Chen \(v1\)" if verdict == "confirm" else "rejected: not booked"
    await expect(page.locator("#timeline-body")).to_contain_text(
        re.compile(rf"officer: face \d+ on v1 {said}")
    )
    if verdict == "reject":  # once the call has ended a verdict is refused, and staff see why
        await call.staff_end("test over", "officer")
        await asyncio.wait_for(call.ended.wait(), 10)
        await alert.get_by_role("button", name="This is Mei Chen").click()
        refused = alert.locator(".identity-refused")
        await expect(refused).to_have_text("Not done: this call is not running now")


async def test_staff_confirm_and_reject_an_undecided_face_in_chromium(
    server: Server, cameras: dict[str, list[np.ndarray]], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    devices = []
    async with async_playwright() as p:
        browser = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=list(ARGS),
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"http://127.0.0.1:{server.port}/console")
            await page.fill("#login-user", "officer")
            await page.fill("#login-password", PASSWORD)
            await page.click("#login-button")
            await expect(page.locator("#connection")).to_have_text("live")

            for call_id, verdict in (("undecided-confirm", "confirm"), ("undecided-reject", "reject")):
                call = book(server, call_id)
                for role, frames in (("prisoner", cameras["clean"]), ("visitor", cameras["undecided"])):
                    devices.append((await join_device(server, call, role, frames))[0])
                try:
                    await judge(page, call, verdict)
                except AssertionError as exc:  # what the call decided says why
                    story = "\n".join(str(decision_record(d)) for d in call.decisions)
                    raise AssertionError(f"{exc}\n{call_id} decided:\n{story}") from None
                while devices:  # one call's cameras at a time on this small machine
                    await devices.pop().close()
        finally:
            await browser.close()
            for device in devices:
                await device.close()
    assert server.store is not None
    log = AuditLog(server.store)
    said = {
        r.call_id: r
        for r in log.for_call("undecided-confirm") + log.for_call("undecided-reject")
        if r.kind == "staff_action" and r.data["action"] in ("confirm_identity", "reject_identity")
    }
    assert said["undecided-confirm"].data["participant"] == "v1"
    assert said["undecided-confirm"].actor == "staff:officer"
    assert said["undecided-reject"].data["action"] == "reject_identity"
    for record in said.values():
        assert record.data["evidence"] and len(record.data["reference_photos"]["v1"]) == 1
    states = [r.data["state"] for r in log.for_call("undecided-reject") if r.kind == "state"]
    assert "live" not in states, states
    assert log.verify().ok
