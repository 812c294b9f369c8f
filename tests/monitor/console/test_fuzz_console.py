"""Fuzzing the staff console on the real server (hypothesis, bounded): its HTTP routes with random
methods, paths, headers, cookies and bodies; its WebSockets (/console/ws, /console/watch) without
credentials, with forged ones, and, logged in, with random messages.

The server (``monitor serve``'s ``Server`` with a SQLite store and one staff account) runs in a
thread on 127.0.0.1 (``tests/live_server.py``). Every bad request gets a status below 500 (and,
unauthenticated, learns nothing), every bad console message an ``error`` answer on a connection
that stays open, nothing is logged as a crash, and a normal member of staff can still log in.
A call on the same server is live at full frame rate throughout; console messages carry hostile
text too (lone surrogates as JSON escapes, control characters, unsafe call ids), each refused
with an error naming the field; at the end that call is still live at its rate and the server's
memory has not grown past a bound.
"""

from __future__ import annotations

import base64
import contextlib
import json
import string
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.hostile import hostile_ids, hostile_text
from support.live_server import (
    FlowingCall,
    LiveServer,
    booking_now,
    exchange,
    status_of,
    websockets_eof_assertion,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from monitor.admin import import_booking
from monitor.console.messages import MAX_BYTES, MAX_NOTE
from monitor.store import auth
from monitor.store.database import Store
from policies.text import id_problem, text_problem

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
FUZZ = settings(
    max_examples=50,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PATHS = (
    "/console",
    "/console/",
    "/console/static/",
    "/console/static/console.js",
    "/console/login",
    "/console/logout",
    "/console/api/me",
    "/console/api/calls",
    "/console/api/calls/",
    "/console/api/calls/call-console",
    "/console/api/evidence/",
    "/console/api/identity/1",
    "/console/api/reference/call-console/v1/" + "0" * 64,
    "/console/ws",
    "/console/watch",
)
PUBLIC = ("/console", "/console/static/")
SECRETS = (b"call-console", b"A1234BC", b"HMP Example", b"alice")
KINDS = ("hello", "pause", "resume", "end", "ack", "confirm_identity", "reject_identity", "watch", "answer")
FIELDS = ("call_id", "note", "audit_id", "alert_id", "participant", "after", "ref", "sdp")

#: What the fuzzing may cost the server's process (see tests/signalling/test_fuzz_signalling.py).
MEMORY_BOUND_MB = 150

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


class Clock:
    """The store's wall time; the test moves it past the login rate-limit window at the end."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[LiveServer]:
    store = Store(tmp_path_factory.mktemp("fuzz-console") / "monitor.db", clock=clock)
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    booking, flowing = booking_now("call-console"), booking_now("call-flow")
    import_booking(store, booking)
    import_booking(store, flowing)
    server = LiveServer([booking, flowing], store=store, analysis_workers=1)
    server.errors.tolerate.append(websockets_eof_assertion)  # see tests/monitor/test_fuzz_http.py
    server.start()
    try:
        yield server
    finally:
        server.stop()
        store.close()


def login(live: LiveServer, username: str = "alice", password: str = PASSWORD) -> tuple[int, str | None]:
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{live.base}/console/login",
        method="POST",
        headers={"Authorization": f"Basic {basic}", "Origin": live.base},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            cookie = reply.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
            return reply.status, cookie
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture(scope="module")
def flowing(live: LiveServer) -> Iterator[FlowingCall]:
    """A call live at full frame rate while the console is fuzzed (no fuzzed message names it)."""
    with FlowingCall.live_throughout(live, "call-flow") as call:
        yield call


@pytest.fixture(scope="module")
def baseline(flowing: FlowingCall) -> dict[str, float]:
    """The live call's frame rate and the server's memory before the fuzzing."""
    return flowing.baseline()


@pytest.fixture(scope="module")
def cookie(live: LiveServer) -> str:
    status, value = login(live)
    assert status == 200 and value
    return value


@pytest.fixture(autouse=True)
def console_still_works(live: LiveServer, clock: Clock) -> Iterator[None]:
    yield
    live.errors.assert_clean()
    status, value = login(live)
    if status == 429:  # the fuzzing tripped the login rate limit (as it should): wait the window out
        clock.skew += auth.WINDOW_S + 1
        status, value = login(live)
    assert status == 200 and value


def open_ws(live: LiveServer, path: str, cookie: str | None, origin: str | None) -> ClientConnection:
    headers = {"Cookie": f"monitor_session={cookie}"} if cookie else {}
    return connect(
        f"ws://127.0.0.1:{live.port}{path}",
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
        max_size=2**22,
        max_queue=None,
        open_timeout=10,
        close_timeout=2,
    )


def answer(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next reply to us (pushed feed records are skipped)."""
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if message["type"] not in ("records", "welcome"):
            return message


# ---- HTTP ---------------------------------------------------------------------------------------


@settings(FUZZ, max_examples=150)
@given(
    method=st.sampled_from(("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS")),
    path=st.builds(
        lambda known, extra: known + extra,
        st.sampled_from(PATHS),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=70),
    ),
    query=st.lists(
        st.tuples(
            st.sampled_from(("day", "utc_offset_min", "x")),
            st.text(string.printable[:62] + "-:+", max_size=25),
        ),
        max_size=3,
    ),
    cookies=st.lists(
        st.one_of(
            st.just("monitor_session=VALID"),
            st.builds("monitor_session={}".format, st.text(string.ascii_letters + '";=, \\', max_size=60)),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
        ),
        max_size=3,
    ),
    origins=st.lists(st.sampled_from(("SELF", "http://evil.example", "null", "")), max_size=2),
    authorization=st.lists(
        st.one_of(
            st.builds(lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=40)),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
        ),
        max_size=2,
    ),
)
def test_console_http_routes_refuse_bad_requests_cleanly(
    live: LiveServer,
    baseline: dict[str, float],
    cookie: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    cookies: list[str],
    origins: list[str],
    authorization: list[str],
) -> None:
    target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{live.port}"]
    lines += [f"Cookie: {c.replace('VALID', cookie)}" for c in cookies]
    lines += [f"Origin: {live.base if o == 'SELF' else o}" for o in origins]
    lines += [f"Authorization: {a}" for a in authorization]
    reply = exchange(live.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    status = status_of(reply)
    if status is None:  # websockets' parser refused the request line (e.g. a space in the query)
        return
    authed = any("VALID" in c for c in cookies)
    public = any(
        path.split("?")[0].rstrip("/") == p.rstrip("/") or path.startswith("/console/static/") for p in PUBLIC
    )
    if not authed and not public and "/console/login" not in path:
        assert status != 200 or path.startswith("/console/static/"), reply[:300]
        body = reply.split(b"\r\n\r\n", 1)[-1]
        assert not any(secret in body for secret in SECRETS), body[:300]


# ---- WebSockets ---------------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(
    path=st.sampled_from(("/console/ws", "/console/watch")),
    cookie_value=st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "-_", max_size=60)),
    origin=st.one_of(st.none(), st.sampled_from(("SELF", "http://evil.example", "null"))),
)
def test_console_websockets_refuse_without_a_session_or_origin(
    live: LiveServer, path: str, cookie_value: str | None, origin: str | None
) -> None:
    origin_header = live.base if origin == "SELF" else origin
    with pytest.raises(InvalidStatus) as refused:  # refused at the handshake: no WebSocket at all
        open_ws(live, path, cookie_value, origin_header).close()
    reply = refused.value.response
    assert reply.status_code == (401 if origin == "SELF" else 403), reply
    assert not any(secret in reply.body for secret in SECRETS), reply.body


message_bodies = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=100),
    json_values.map(json.dumps),
    st.builds(
        lambda kind, fields: json.dumps({**fields, "type": kind}),
        st.one_of(st.sampled_from(KINDS), json_values),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)),
            st.one_of(json_values, st.integers(min_value=2**62, max_value=2**70), st.integers(max_value=-1)),
            max_size=3,
        ),
    ),
    st.integers(1, 4000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(4000, 20000).map(lambda size: json.dumps({"type": "ack", "ref": "x" * size})),
)


class FeedHolder:
    """One logged-in console feed kept across examples (reopened only if an example lost it)."""

    def __init__(self, live: LiveServer, cookie: str) -> None:
        self.live, self.cookie = live, cookie
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection | None = None

    def get(self) -> ClientConnection:
        if self.ws is None:
            ws = self.stack.enter_context(open_ws(self.live, "/console/ws", self.cookie, self.live.base))
            ws.send(json.dumps({"type": "hello", "after": None}))
            assert json.loads(ws.recv(timeout=10))["type"] == "welcome"
            self.ws = ws
        return self.ws


@pytest.fixture(scope="module")
def feed(live: LiveServer, cookie: str) -> Iterator[FeedHolder]:
    holder = FeedHolder(live, cookie)
    with holder.stack:
        yield holder


NASTY = (
    "[" * 3000 + "]" * 3000,  # nested deeper than the JSON decoder's recursion limit
    json.dumps({"type": "ack", "audit_id": 2**70}),  # larger than SQLite's integers
    json.dumps({"type": "hello", "after": 2**70}),
    json.dumps({"type": "ack", "audit_id": 2**63}),
    json.dumps({"type": "pause", "call_id": "call-console", "note": "\u0000" * 10}),
    json.dumps({"type": "end", "call_id": "x" * 100, "note": 5}),
)


@settings(FUZZ, max_examples=200)
@given(raw=message_bodies)
@example(raw=NASTY[0])
@example(raw=NASTY[1])
@example(raw=NASTY[2])
@example(raw=NASTY[3])
@example(raw=NASTY[4])
@example(raw=NASTY[5])
def test_console_feed_answers_every_bad_message_and_stays_open(feed: FeedHolder, raw: str | bytes) -> None:
    ws = feed.get()
    ws.send(raw)
    try:
        reply = answer(ws)
    except ConnectionClosed as exc:
        feed.ws = None
        raise AssertionError(f"the console feed closed on {raw[:80]!r}: {exc}") from None
    assert reply["type"] in ("error", "done"), reply
    assert isinstance(reply["message"], str) and reply["message"].strip()
    # still open and answering
    ws.send(json.dumps({"type": "ack", "audit_id": 0, "ref": "probe"}))
    probe = answer(ws)
    assert probe["type"] == "error" and probe.get("ref") == "probe", probe


@settings(FUZZ, max_examples=100)
@given(raw=message_bodies)
@example(raw=NASTY[0])
@example(raw=json.dumps({"type": "watch", "call_id": "call-console", "ref": 7}))
def test_console_watch_refuses_bad_messages_clearly(live: LiveServer, cookie: str, raw: str | bytes) -> None:
    with open_ws(live, "/console/watch", cookie, live.base) as ws:
        ws.send(raw)
        try:
            reply = json.loads(ws.recv(timeout=15))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code in (1000, 1008, 4400), exc
            return
        assert reply["type"] in ("error", "offer"), reply
        if reply["type"] == "error":
            assert isinstance(reply["message"], str) and reply["message"].strip()


console_ids = hostile_ids.filter(lambda value: value.strip() != "call-flow")  # the live call is not fuzzed
refs = st.one_of(st.none(), hostile_text, st.text(max_size=64))
console_messages = st.one_of(
    st.builds(
        lambda c, n, r: {"type": "pause", "call_id": c, "note": n, "ref": r}, console_ids, hostile_text, refs
    ),
    st.builds(lambda c, r: {"type": "resume", "call_id": c, "ref": r}, console_ids, refs),
    st.builds(
        lambda c, n, r: {"type": "end", "call_id": c, "note": n, "ref": r}, console_ids, hostile_text, refs
    ),
    st.builds(lambda r: {"type": "ack", "audit_id": 0, "ref": r}, refs),
)


def refused_fields(message: dict[str, Any]) -> set[str]:
    """The fields of ``message`` the parser must refuse (the rules of monitor/console/messages.py)."""
    bad = set()
    ref = message.get("ref")
    if ref is not None and (len(ref) > 64 or text_problem(ref) is not None):
        bad.add("ref")
    call_id = message.get("call_id")
    if call_id is not None:
        value = call_id.strip()
        if not value or len(value) > 100 or text_problem(value) is not None or id_problem(value) is not None:
            bad.add("call_id")
    note = message.get("note")
    if note is not None:
        value = note.strip()
        if (
            (message["type"] == "pause" and not value)
            or len(value) > MAX_NOTE
            or text_problem(value) is not None
        ):
            bad.add("note")
    return bad


@settings(FUZZ, max_examples=200)
@given(message=console_messages)
def test_console_actions_with_hostile_text_are_refused_naming_the_field(
    feed: FeedHolder, baseline: dict[str, float], message: dict[str, Any]
) -> None:
    """Every action a console sends with text no record may hold (or an unsafe call id) gets one
    error naming that field; the rest are carried out or refused as actions ("no such call")."""
    if message.get("ref") is None:
        message.pop("ref")
    ws = feed.get()
    ws.send(json.dumps(message))  # a lone surrogate travels as its JSON escape
    try:
        reply = answer(ws)
    except ConnectionClosed as exc:
        feed.ws = None
        raise AssertionError(f"the console feed closed on {message!r}: {exc}") from None
    bad = refused_fields(message)
    if len(json.dumps(message).encode()) > MAX_BYTES:
        assert reply["type"] == "error" and reply["message"].startswith("message too large"), reply
    elif bad:
        assert reply["type"] == "error" and reply["message"].split(":")[0] in bad, (bad, reply)
    else:
        assert reply["type"] in ("done", "error") and reply["message"].split(":")[0] not in FIELDS, reply
    ws.send(json.dumps({"type": "ack", "audit_id": 0, "ref": "probe"}))
    probe = answer(ws)
    assert probe["type"] == "error" and probe.get("ref") == "probe", probe


def test_after_the_fuzzing_the_live_call_flows_and_memory_is_bounded(
    live: LiveServer, flowing: FlowingCall, baseline: dict[str, float]
) -> None:
    """Last in the module: the call live before the fuzzing is live now at its frame rate, and the
    server's process has not grown past MEMORY_BOUND_MB."""
    assert flowing.call.state.value == "live"
    after = flowing.rate(3.0)
    assert after >= 0.5 * baseline["rate"], f"{after:.1f} frames/s now, {baseline['rate']:.1f} before"
    grew = live.rss_mb() - baseline["rss_mb"]
    assert grew < MEMORY_BOUND_MB, f"the server grew by {grew:.0f} MB during the fuzzing"
