"""Raw bytes on the server's one port (hypothesis, bounded): garbage request lines, random methods,
paths and headers, huge and numerous headers, broken WebSocket upgrades.

The real server (``monitor serve``'s ``Server`` with its SQLite store, so the console routes are
there too) runs in a thread on 127.0.0.1; each example opens a plain TCP connection, writes bytes
and reads until the server closes. The server must answer with an HTTP status below 500 or close
the connection, must never log a traceback, must go on serving pages and joins, and a call on the
same port keeps receiving video while it is fuzzed. Hostile text percent-encoded into the paths
that carry a call id or a token (lone surrogates as their UTF-8-with-surrogates bytes, control
characters, traversal) gets a plain answer too, with a staff session as without.
"""

from __future__ import annotations

import base64
import string
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile import hostile_text
from support.live_server import (
    FlowingCall,
    LiveServer,
    booking_now,
    exchange,
    status_of,
    websockets_eof_assertion,
)

from monitor.store import auth
from monitor.store.database import Store

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KNOWN_PATHS = (
    "/",
    "/join/",
    "/web/join.js",
    "/web/",
    "/ws/call",
    "/metrics",
    "/console",
    "/console/login",
    "/console/logout",
    "/console/api/me",
    "/console/api/calls",
    "/console/api/calls/",
    "/console/api/evidence/",
    "/console/static/console.js",
    "/console/ws",
    "/console/watch",
)
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    store = Store(tmp_path_factory.mktemp("fuzz-http") / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", "correct horse battery")
    server = LiveServer([booking_now("call-flow"), booking_now("call-check")], store=store)
    server.errors.tolerate.append(websockets_eof_assertion)  # see test_pipelined_garbage_... below
    server.start()
    try:
        yield server
    finally:
        server.stop()
        store.close()


@pytest.fixture(scope="module")
def flowing(live: LiveServer) -> Iterator[FlowingCall]:
    call = FlowingCall.open(live, "call-flow")  # no analysis here: the prisoner receives the slate
    try:
        yield call
    finally:
        call.close()


@pytest.fixture(autouse=True)
def server_still_serves(live: LiveServer) -> Iterator[None]:
    yield
    live.errors.assert_clean()
    join_page = f"{live.base}/join/{live.token('call-check', 'visitor')}"
    with urllib.request.urlopen(join_page, timeout=10) as page:
        assert page.status == 200 and b"join.js" in page.read()


@FUZZ
@given(st.binary(max_size=3000))
def test_garbage_bytes_are_refused_or_dropped(live: LiveServer, garbage: bytes) -> None:
    status_of(exchange(live.port, garbage + b"\r\n\r\n"))


@FUZZ
@given(
    verb=st.text(st.sampled_from(string.ascii_letters), min_size=1, max_size=12),
    target=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    version=st.sampled_from(("HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 extra", "", "http/1.1")),
)
def test_garbage_request_lines(live: LiveServer, verb: str, target: str, version: str) -> None:
    line = f"{verb} {target} {version}".encode()
    status = status_of(exchange(live.port, line + b"\r\nHost: 127.0.0.1\r\n\r\n"))
    if version in ("HTTP/1.1", "HTTP/1.0"):
        assert status is not None  # a well-formed request line always gets an answer


headers = st.lists(
    st.tuples(
        st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=30),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200),
    ),
    max_size=12,
)


@FUZZ
@given(
    method=st.sampled_from(("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")),
    path=st.one_of(
        st.sampled_from(KNOWN_PATHS),
        st.builds(
            lambda known, extra: known + extra,
            st.sampled_from(KNOWN_PATHS),
            st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
        ),
    ),
    fields=headers,
    special=st.lists(
        st.sampled_from(
            (
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Version", "8"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Key", "short"),
                ("Content-Length", "5"),
                ("Content-Length", "0"),
                ("Transfer-Encoding", "chunked"),
                ("Cookie", "monitor_session=forged"),
                ("Cookie", '"\\;;=;'),
                ("Authorization", "Basic !!!"),
                ("Authorization", "Bearer x"),
                ("Origin", "http://evil"),
            )
        ),
        max_size=6,
    ),
    body=st.binary(max_size=200),
)
def test_random_methods_paths_headers_and_bodies_get_a_status(
    live: LiveServer,
    method: str,
    path: str,
    fields: list[tuple[str, str]],
    special: list[tuple[str, str]],
    body: bytes,
) -> None:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{live.port}"]
    lines += [f"{name}: {value}" for name, value in [*fields, *special]]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    reply = exchange(live.port, request, timeout=15)
    status = status_of(reply)
    if status == 101:  # a complete upgrade on a WebSocket path: the server then waits for frames
        return
    if status is None:
        # dropped without an answer: only a request websockets' parser refuses (a body, chunked),
        # or one followed by bytes that are not a request (the websockets bug described below)
        framing = {name.lower() for name, _ in [*fields, *special]} & {"content-length", "transfer-encoding"}
        assert framing or body, f"a well-formed request was dropped: {request[:300]!r}"


@settings(FUZZ, max_examples=15)
@given(
    count=st.integers(1, 300),
    size=st.integers(1, 12_000),
    where=st.sampled_from(("header", "path")),
)
def test_huge_and_numerous_headers_are_refused(live: LiveServer, count: int, size: int, where: str) -> None:
    if where == "path":
        request = f"GET /{'a' * size} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    else:
        fields = "".join(f"X-Fuzz-{i}: {'v' * (size // count + 1)}\r\n" for i in range(count))
        request = f"GET /console HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode()
    status = status_of(exchange(live.port, request))
    too_long = (size + 6 > 8192) if where == "path" else (size // count + 1 + 12 > 8192 or count + 1 > 128)
    if too_long:
        assert status in (414, 431, None), status
    else:
        assert status in (200, 404), status


def test_a_call_keeps_receiving_video_while_the_port_is_fuzzed(
    live: LiveServer, flowing: FlowingCall
) -> None:
    baseline = flowing.rate(2.0)
    before, started = flowing.count, time.monotonic()
    for i in range(200):  # garbage and refused upgrades, back to back
        assert status_of(exchange(live.port, bytes([i % 256]) * (i * 7 % 500) + b"\r\n\r\n")) in (None, 400)
        refused = exchange(live.port, b"GET /ws/call HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        assert status_of(refused) in (400, 426)
    during = (flowing.count - before) / (time.monotonic() - started)
    assert baseline > 5, f"the call received only {baseline:.1f} frames/s before"
    assert during >= 0.5 * baseline, f"{during:.1f} frames/s while fuzzed, {baseline:.1f} before"


def test_an_unknown_path_gets_a_whole_404(live: LiveServer) -> None:
    reply = exchange(live.port, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(reply) == 404 and reply.endswith(b'{"error": "not found"}')


@pytest.mark.xfail(strict=True, reason="websockets 17.4: garbage pipelined after a request trips an assert")
def test_pipelined_garbage_after_a_good_request_still_gets_its_answer(live: LiveServer) -> None:
    """Known websockets bug (tolerated by this module's traceback check, and only it): the good
    request first in the packet gets no answer and websockets logs an internal AssertionError.
    When websockets fixes it this test passes, strict xfail fails, and the tolerance can go."""
    seen = len(live.errors.known)
    reply = exchange(live.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nxyz\r\n\r\n")
    time.sleep(0.2)
    assert status_of(reply) == 200 and len(live.errors.known) == seen


@pytest.mark.parametrize("name", ["Host", "Origin", "Authorization", "Cookie"])
def test_a_header_that_must_be_single_is_refused_when_repeated(live: LiveServer, name: str) -> None:
    request = f"POST /console/login HTTP/1.1\r\nHost: x\r\n{name}: a\r\n{name}: b\r\n\r\n"
    if name == "Host":
        request = "GET /console/api/me HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"
    reply = exchange(live.port, request.encode())
    assert status_of(reply) == 400 and b"may each be sent once" in reply


@pytest.fixture(scope="module")
def session(live: LiveServer) -> str:
    basic = base64.b64encode(b"alice:correct horse battery").decode()
    request = urllib.request.Request(
        f"{live.base}/console/login", method="POST", headers={"Authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=15) as reply:
        return str(reply.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])


@FUZZ
@given(
    prefix=st.sampled_from(
        (
            "/console/api/calls/",
            "/console/api/recordings/",
            "/console/api/evidence/",
            "/join/",
            "/console/static/",
        )
    ),
    text=hostile_text,
    tail=st.sampled_from(("", "/v1.video.1.webm", ".jpg")),
    with_session=st.booleans(),
)
def test_percent_encoded_hostile_text_in_paths_gets_a_plain_answer(
    live: LiveServer, session: str, prefix: str, text: str, tail: str, with_session: bool
) -> None:
    encoded = quote(text.encode("utf-8", "surrogatepass"), safe="")
    cookie = f"Cookie: monitor_session={session}\r\n" if with_session else ""
    request = f"GET {prefix}{encoded}{tail} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}\r\n"
    status = status_of(exchange(live.port, request.encode()))
    assert status in (200, 401, 404, 414), status
    if status == 200:  # only the join page (its token is checked on the WebSocket) and static files
        assert prefix in ("/join/", "/console/static/"), (prefix, encoded, tail)
