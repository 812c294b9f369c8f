"""Chromium reads a call's history in the console: devices joining and leaving are named the way
staff know the people (name, id, side), and a device the server dropped says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_site import Site, console_page, next_message, records_until
from support.chromium import require_chromium

pytestmark = [pytest.mark.browser]
require_chromium()


@pytest.fixture
def store_at(tmp_path: Path) -> str:
    """SQLite only: the browser shows the same console on either engine, and the console's API
    tests run on both (a second Chromium per test would buy nothing)."""
    return str(tmp_path / "monitor.db")


async def test_history_names_who_joined_and_left(site: Site, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    ws = await site.ws(await site.login("alice"))
    await ws.send(json.dumps({"type": "hello"}))
    await next_message(ws, "welcome")
    presence = [  # as monitor.call.effects.Effects.presence publishes them
        {"kind": "joined", "t": 1.5, "source": "A1234BC", "participant": "A1234BC", "role": "prisoner"},
        {"kind": "joined", "t": 2.0, "source": "v1", "participant": "v1", "role": "visitor"},
        {"kind": "left", "t": 9.0, "source": "v1", "participant": "v1", "role": "visitor", "actor": "system"},
    ]
    for record in presence:
        site.hub.publish("call-ex", {"actor": "device", **record})
    await records_until(ws, lambda r: r["kind"] == "left")
    await ws.close()

    async with async_playwright() as p, console_page(p, site, tmp_path / "profile") as page:
        await page.locator('#board-body tr[data-call="call-ex"]').click()
        rows = page.locator("#timeline-body tr.kind-joined, #timeline-body tr.kind-left")
        await expect(rows).to_have_count(3)
        # each row's cells as text: a row's innerText only has tabs between cells while it is laid
        # out, so under load it could come back as one run of text
        details = await rows.evaluate_all("rows => rows.map((r) => [...r.cells].map((c) => c.textContent))")
        assert [(row[2], row[3]) for row in details] == [
            ("joined", "John Smith (A1234BC), prison side"),
            ("joined", "Daniel Park (v1), visitor side"),
            ("left", "Daniel Park (v1), visitor side, disconnected by the server"),
        ], details
