"""Bad input on the signalling WebSocket and the join routes, against the real server.

Each bad client gets a clear error frame (or, past the frame size limit, a 1009 close), and a
call in progress on the same server keeps receiving media at its rate meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from support.live_server import booking_now, serving
from support.raw_ws import CLOSE, TEXT, RawWebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from monitor.call.call import Call
from monitor.errors import UserError
from monitor.server.command import origins_from
from monitor.server.serve import CLOSE_TIMEOUT_S, Server
from monitor.server.signalling import MAX_ERRORS
from policies.config import load_policy
from signalling.client import ClipTrack, Device, ToneTrack, Watch, load_clip

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / "fixtures" / "clips" / "clean.webm"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    bookings = [
        booking_now("call-a", starts_in=0),
        booking_now("call-b", starts_in=0),
        booking_now("call-past", starts_in=-2 * 3600),
        booking_now("call-future", starts_in=2 * 3600),
    ]
    async with serving(bookings, analysis_workers=0) as srv:
        yield srv


def url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/call"


def token(server: Server, call_id: str, role: str = "visitor") -> str:
    call = server.calls.get(call_id)
    assert call is not None
    return next(t for t, seat in call.seats.items() if seat.role.value == role)


async def exchange(ws: object, frame: str | bytes) -> dict[str, object]:
    await ws.send(frame)  # type: ignore[attr-defined]
    reply: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[attr-defined]
    return reply


@pytest_asyncio.fixture(loop_scope="module")
async def flowing_call(server: Server) -> AsyncIterator[Watch]:
    """A prisoner device on call-b receiving its visitor slot (the slate while nobody is there)."""
    call = server.calls.get("call-b")
    assert isinstance(call, Call)
    dev = Device(url(server))
    await dev.open()
    assert (await dev.join(token(server, "call-b", "prisoner")))["type"] == "joined"
    await dev.call(ClipTrack(load_clip(CLIP, max_frames=10)), ToneTrack())
    watch = Watch(dev.received[0])
    await watch.until(lambda image: True, timeout=10)
    yield watch
    watch.stop()
    await dev.close()


async def test_bad_frames_get_error_frames_and_the_connection_stays_usable(
    server: Server, flowing_call: Watch
) -> None:
    before = flowing_call.count
    started = asyncio.get_running_loop().time()
    async with connect(url(server), max_size=2**22) as ws:
        cases: list[tuple[str | bytes, str]] = [
            ("{not json", "bad_json"),
            ('"just a string"', "bad_message"),
            ('{"type": "dance"}', "unknown_type"),
            (b"\x00\x01binary", "bad_message"),
            ('{"type": "offer", "sdp": "v=0"}', "not_joined"),
            ('{"type": "capture_attempt"}', "not_joined"),
            (json.dumps({"type": "ping", "pad": "x" * 100_000}), "too_large"),
        ]
        for _ in range(2):  # a small flood (under the limit of consecutive bad frames)
            for frame, code in cases:
                reply = await exchange(ws, frame)
                assert reply["type"] == "error" and reply["code"] == code, (frame[:40], reply)
                assert isinstance(reply["message"], str) and reply["message"]
        assert (await exchange(ws, '{"type": "ping"}'))["type"] == "pong"
    # meanwhile the call on the same server kept its frame rate (the slate runs at 15 fps)
    await asyncio.sleep(0.5)
    elapsed = asyncio.get_running_loop().time() - started
    assert flowing_call.count - before >= 10 * elapsed


async def test_a_client_that_only_sends_garbage_is_disconnected(server: Server) -> None:
    async with connect(url(server)) as ws:
        for _ in range(MAX_ERRORS - 1):
            assert (await exchange(ws, "garbage"))["code"] == "bad_json"
        await ws.send("garbage")
        assert json.loads(await ws.recv())["code"] == "bad_json"
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_a_garbage_client_that_never_answers_the_close_is_dropped_within_the_close_timeout(
    server: Server,
) -> None:
    """The last bad frame still gets its error frame, then the 1008 close; a peer that never
    answers the close costs the server at most the close timeout (websockets' default: 10 s)."""
    ws = await RawWebSocket.open("127.0.0.1", server.port, "/ws/call")
    try:
        for _ in range(MAX_ERRORS):
            await ws.send("garbage")
            reply = await ws.recv()
            assert reply.opcode == TEXT and json.loads(reply.text)["code"] == "bad_json"
        closing = await ws.recv()
        assert closing.opcode == CLOSE and closing.close_code == 1008
        held = await ws.until_dropped(timeout=8)
        assert held <= CLOSE_TIMEOUT_S + 1.0, f"the server held the connection {held:.1f} s after closing"
    finally:
        ws.abort()


async def test_a_frame_over_the_transport_limit_closes_with_1009(server: Server) -> None:
    async with connect(url(server), max_size=2**22) as ws:
        await ws.send("x" * (2**20 + 10))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


@pytest.mark.parametrize(
    ("which", "code", "words"),
    [
        ("unknown", "bad_token", "not valid"),
        ("call-past", "call_over", "ended"),
        ("call-future", "too_early", "this link works from"),
    ],
)
async def test_bad_or_expired_tokens_are_refused(server: Server, which: str, code: str, words: str) -> None:
    value = "no-such-token" if which == "unknown" else token(server, which)
    async with connect(url(server)) as ws:
        reply = await exchange(ws, json.dumps({"type": "join", "token": value}))
        assert reply["type"] == "error" and reply["code"] == code
        assert words in str(reply["message"])
        if code == "too_early":  # a time in words (the page says it in local time from opens_at)
            opens_at, message = str(reply["opens_at"]), str(reply["message"])
            opens = datetime.fromisoformat(opens_at)
            assert f"{opens:%H:%M} on {opens:%A} {opens.day} {opens:%B %Y}" in message, reply
            assert opens_at not in message, reply
        # still usable: the right token joins on the same connection
        joined = await exchange(
            ws, json.dumps({"type": "join", "token": token(server, "call-a", "prisoner")})
        )
        assert joined["type"] == "joined"


async def test_a_second_join_with_the_same_token_is_refused_while_the_first_is_connected(
    server: Server,
) -> None:
    value = token(server, "call-a")
    first = Device(url(server))
    await first.open()
    assert (await first.join(value))["type"] == "joined"
    second = Device(url(server))
    await second.open()
    refused = await second.join(value)
    assert refused["type"] == "error" and refused["code"] == "token_in_use"
    assert (await first.join(value))["code"] == "already_joined"
    await first.close()
    await asyncio.sleep(0.2)
    assert (await second.join(value))["type"] == "joined"  # free again once the first has gone
    await second.close()


async def test_failing_sdp_gets_a_clear_error_and_a_good_offer_still_works(server: Server) -> None:
    dev = Device(url(server))
    await dev.open()
    assert (await dev.join(token(server, "call-a")))["type"] == "joined"
    await dev.send({"type": "offer", "sdp": "v=0\r\nthis is not sdp\r\n"})
    reply = await dev.expect("error")
    assert reply["code"] == "bad_sdp" and "could not be used" in str(reply["message"])
    # an offer without the video and audio sections the call needs
    await dev.send({"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"})
    reply = await dev.expect("error")
    assert reply["code"] == "bad_sdp" and "1 video and 1 audio" in str(reply["message"])
    await dev.call(ClipTrack([np.zeros((480, 640, 3), np.uint8) + 128]), ToneTrack())
    assert dev.pc is not None and dev.received
    await dev.close()


def fetch(address: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(address, timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def test_join_page_and_its_files_are_served(server: Server) -> None:
    base = f"http://127.0.0.1:{server.port}"
    status, kind, body = await asyncio.to_thread(fetch, f"{base}/join/{token(server, 'call-a')}")
    assert status == 200 and kind.startswith("text/html") and b"/web/join.js" in body
    status, kind, body = await asyncio.to_thread(fetch, f"{base}/web/join.js")
    assert status == 200 and "javascript" in kind and b"capture_attempt" in body
    status, _, _ = await asyncio.to_thread(fetch, f"{base}/web/../serve.py")
    assert status == 404
    status, _, _ = await asyncio.to_thread(fetch, f"{base}/web/nope.js")
    assert status == 404
    status, _, _ = await asyncio.to_thread(fetch, f"{base}/nothing-here")
    assert status == 404


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",  # a sandboxed frame or a file:// page
        "https://127.0.0.1:{port}",  # the right host, another scheme
        "http://127.0.0.1:1",  # the right host, another port
        "http://127.0.0.1",
        "http://localhost:{port}",  # another name: not where this client reached the server
    ],
)
async def test_a_page_of_another_origin_is_refused_at_the_handshake(server: Server, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(server), origin=origin.format(port=server.port)):  # type: ignore[arg-type]
            pass
    reply = refused.value.response
    assert reply.status_code == 403 and json.loads(reply.body) == {"error": "origin not allowed"}


async def test_the_join_page_origin_and_clients_without_an_origin_join(server: Server) -> None:
    own = f"http://127.0.0.1:{server.port}"  # what the join page served here sends
    for origin in (own, own.upper().replace("HTTP://", "http://"), None):
        async with connect(url(server), origin=origin) as ws:  # type: ignore[arg-type]
            join = json.dumps({"type": "join", "token": token(server, "call-b")})
            for _ in range(50):  # the previous connection's seat is freed once it has gone
                joined = await exchange(ws, join)
                if joined.get("code") != "token_in_use":
                    break
                await asyncio.sleep(0.1)
            assert joined["type"] == "joined", (origin, joined)


async def test_configured_origins_replace_the_servers_own() -> None:
    """``monitor serve --origin https://calls.example.org`` (behind a proxy that terminates TLS, the
    server cannot see the origin its pages have): that origin joins, the server's own no longer."""
    allowed = origins_from(["https://Calls.Example.org/"])
    srv = Server([], load_policy(), port=0, analysis_workers=0, origins=allowed)
    await srv.start()
    try:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(srv), origin=f"http://127.0.0.1:{srv.port}"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        async with connect(url(srv), origin="https://calls.example.org") as ws:  # type: ignore[arg-type]
            reply = await exchange(ws, json.dumps({"type": "join", "token": "no-such-token"}))
            assert reply["code"] == "bad_token"  # in: the token decides
    finally:
        await srv.stop()


@pytest.mark.parametrize(
    "value", ["calls.example.org", "https://x.org/join", "ftp://x.org", "https://x.org:0"]
)
async def test_a_bad_origin_flag_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(UserError, match=r"^--origin .*expected http\(s\)://HOST\[:PORT\]"):
        origins_from([value])
