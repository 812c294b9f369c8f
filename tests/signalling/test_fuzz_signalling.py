"""Fuzzing the signalling WebSocket of a real running server (hypothesis, bounded).

The server (``monitor serve``'s ``Server`` with one analysis worker) runs on its own loop in a
thread on 127.0.0.1 (``tests/live_server.py``); the fuzzing clients are real WebSocket clients over
the socket. Every bad frame must get an ``error`` frame with a known code and a message (or, past
the transport limit, a 1009 close; past too many bad frames, a 1008 close), nothing may be logged
as a crash, a normal device can still join afterwards, and a live call on the same server keeps
receiving its frames while a flood of bad clients hits the server. Text fields get hostile text too
(lone surrogates as JSON escapes, control characters, line separators, path tricks): a joined
device's every message is answered (an error naming the field for text no record may hold), and
at the end the live call is still live at its frame rate and the server's memory has not grown
past a bound.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile import hostile_text
from support.live_server import FlowingCall, LiveServer, booking_now
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from monitor.server.signalling import MAX_ERRORS
from policies.text import text_problem
from signalling.messages import MAX_DETAIL_CHARS, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, MAX_TOKEN_CHARS

pytestmark = pytest.mark.slow

ERROR_CODES = {
    "bad_json",
    "bad_message",
    "unknown_type",
    "too_large",
    "not_joined",
    "bad_sdp",
    "bad_token",
    "already_joined",
    "token_in_use",
    "call_over",
    "too_early",
    "rate_limited",
}
KINDS = ("join", "offer", "capture_attempt", "leave", "ping")
#: What the fuzzing may cost the server's process (allocator high-water, hypothesis' own data): a
#: leak per connection or per message would be far more over thousands of them.
MEMORY_BOUND_MB = 150
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    bookings = [booking_now("call-flow"), booking_now("call-fuzz"), booking_now("call-check")]
    server = LiveServer(bookings, analysis_workers=1).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def flowing(live: LiveServer) -> Iterator[FlowingCall]:
    with FlowingCall.live_throughout(live, "call-flow") as call:
        yield call


@pytest.fixture(scope="module")
def baseline(flowing: FlowingCall) -> dict[str, float]:
    """The live call's frame rate and the server's memory before the fuzzing (the first test that
    asks for it)."""
    return flowing.baseline()


@pytest.fixture(scope="module")
def real_offer(live: LiveServer) -> str:
    """An SDP offer as a real aiortc device makes it (camera, microphone)."""

    async def make() -> str:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from support.live_server import CLEAN_CLIP

        from signalling.client import ClipTrack, ToneTrack, load_clip

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(ClipTrack(load_clip(CLEAN_CLIP, max_frames=2)), direction="sendrecv")
        pc.addTransceiver(ToneTrack(), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return live.run(make())


@pytest.fixture(autouse=True)
def server_still_serves(live: LiveServer) -> Iterator[None]:
    yield
    live.errors.assert_clean()
    assert join_ok(live, live.token("call-check", "prisoner"))


def open_ws(live: LiveServer) -> ClientConnection:
    # max_queue=None: the client reads every reply at once (a bounded queue stops reading the socket)
    return connect(live.ws_url, max_size=2**22, max_queue=None, open_timeout=10, close_timeout=2)


def reply_to(live: LiveServer, frame: str | bytes) -> dict[str, Any] | int:
    """The server's answer to ``frame`` on a fresh connection: a frame, or the close code."""
    with open_ws(live) as ws:
        ws.send(frame)
        try:
            answer: dict[str, Any] = json.loads(ws.recv(timeout=10))
            return answer
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else -1


def assert_clear_error(reply: dict[str, Any] | int, *also: str) -> None:
    assert isinstance(reply, dict), f"expected a frame, the server closed with {reply}"
    if reply["type"] == "error":
        assert reply["code"] in ERROR_CODES, reply
        assert isinstance(reply["message"], str) and reply["message"].strip(), reply
        assert "Traceback" not in reply["message"]
    else:
        assert reply["type"] in also, reply


def join_ok(live: LiveServer, token: str, timeout: float = 10.0) -> bool:
    """A normal device joins (retrying while the server is still releasing the previous one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open_ws(live) as ws:
            ws.send(json.dumps({"type": "join", "token": token}))
            reply = json.loads(ws.recv(timeout=10))
            if reply["type"] == "joined":
                ws.send(json.dumps({"type": "ping"}))
                while (frame := json.loads(ws.recv(timeout=10)))["type"] != "pong":
                    assert frame["type"] in ("state", "warning", "warning_cleared"), frame
                return True
            assert reply.get("code") == "token_in_use", reply
        time.sleep(0.1)
    return False


@FUZZ
@given(st.one_of(st.text(max_size=500), st.binary(max_size=500), json_values.map(json.dumps)))
def test_any_frame_gets_a_clear_error(
    live: LiveServer, baseline: dict[str, float], frame: str | bytes
) -> None:
    assert_clear_error(reply_to(live, frame), "pong")


@FUZZ
@given(
    kind=st.one_of(st.sampled_from(KINDS), st.text(max_size=30), json_values),
    fields=st.dictionaries(
        st.one_of(st.sampled_from(("token", "sdp", "detail", "pad")), st.text(max_size=12)),
        json_values,
        max_size=4,
    ),
)
def test_known_and_unknown_kinds_with_wrong_fields_and_types(
    live: LiveServer, kind: Any, fields: dict[str, Any]
) -> None:
    reply = reply_to(live, json.dumps({**fields, "type": kind}))
    assert_clear_error(reply, "pong")
    if isinstance(reply, dict) and reply["type"] == "error" and kind in ("offer", "capture_attempt", "leave"):
        assert reply["code"] in ("not_joined", "bad_message", "bad_sdp", "too_large")


@settings(FUZZ, max_examples=20)
@given(
    size=st.one_of(
        st.integers(MAX_MESSAGE_BYTES - 64, MAX_MESSAGE_BYTES + 64),
        st.integers(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES + 4096),
    ),
    kind=st.sampled_from(KINDS),
)
def test_huge_frames_are_refused_clearly(live: LiveServer, size: int, kind: str) -> None:
    head = json.dumps({"type": kind, "pad": ""})[:-2]
    frame = head + "x" * max(0, size - len(head) - 2) + '"}'
    reply = reply_to(live, frame)
    if len(frame.encode()) > MAX_FRAME_BYTES:
        assert reply == 1009  # the transport refuses it: "message too big"
    elif len(frame.encode()) > MAX_MESSAGE_BYTES:
        assert isinstance(reply, dict) and reply.get("code") == "too_large", reply
    else:
        assert_clear_error(reply)  # a "pad" field is unknown to every kind


@settings(FUZZ, max_examples=15)
@given(depth=st.integers(1_000, 30_000), opener=st.sampled_from("[{"))
def test_deeply_nested_json_is_refused_clearly(live: LiveServer, depth: int, opener: str) -> None:
    frame = ('{"a":' * depth + "1" + "}" * depth) if opener == "{" else ("[" * depth + "]" * depth)
    assert_clear_error(reply_to(live, frame))


@st.composite
def mutated_sdp(draw: st.DrawFn, base: str) -> str:
    lines = base.split("\r\n")
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(("drop", "replace", "insert", "garble", "duplicate", "truncate")))
        i = draw(st.integers(1, max(1, len(lines) - 1)))
        junk = draw(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60))
        if op == "drop" and len(lines) > 2:
            del lines[i]
        elif op == "replace":
            lines[i] = junk
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from("amcbtsi")) + "=" + junk)
        elif op == "garble" and i < len(lines) and "=" in lines[i]:
            key, _, rest = lines[i].partition("=")
            words = rest.split(" ")
            words[draw(st.integers(0, len(words) - 1))] = junk
            lines[i] = key + "=" + " ".join(words)
        elif op == "duplicate" and i < len(lines):
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines = lines[: max(2, i)]
    return "\r\n".join(lines)


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_bad_sdp_after_a_good_join_gets_bad_sdp_or_an_answer(
    live: LiveServer, real_offer: str, data: st.DataObject
) -> None:
    sdp = data.draw(mutated_sdp(real_offer), label="sdp")
    token = live.token("call-fuzz", "visitor")
    deadline = time.monotonic() + 10
    while True:
        with open_ws(live) as ws:
            ws.send(json.dumps({"type": "join", "token": token}))
            reply = json.loads(ws.recv(timeout=10))
            if reply["type"] == "joined":
                ws.send(json.dumps({"type": "offer", "sdp": sdp}))
                while (reply := json.loads(ws.recv(timeout=20)))["type"] not in ("answer", "error"):
                    pass
                if reply["type"] == "answer":
                    assert reply["sdp"].startswith("v=0")
                elif reply["code"] == "bad_message":  # a control character no SDP line may hold
                    assert reply["message"].startswith("offer.sdp: contains"), reply
                else:
                    assert reply["code"] == "bad_sdp" and "could not be used" in reply["message"], reply
                return
        assert reply.get("code") == "token_in_use" and time.monotonic() < deadline, reply
        time.sleep(0.1)


def flood(live: LiveServer, stop: threading.Event, tally: dict[str, int]) -> None:
    """Bad clients as fast as one thread can go: garbage, unknown kinds, big frames, ping storms.
    Each connection must get error frames for its first ``MAX_ERRORS`` bad frames and then nothing:
    the server has given up on it (it closes with 1008; see the note in the report about the close
    handshake of a client whose frames the server no longer reads)."""
    frames: list[str | bytes] = [
        "garbage{",
        b"\x00\xff" * 50,
        '{"type": "dance"}',
        '{"type": "offer", "sdp": "v=0"}',
        json.dumps({"type": "ping", "pad": "x" * 70_000}),
        '{"type": "join", "token": 7}',
        json.dumps({"type": "join", "token": "not-a-token"}),
        "[" * 20_000 + "]" * 20_000,
    ]
    while not stop.is_set():
        errors = 0
        with connect(live.ws_url, max_size=2**22, max_queue=None, open_timeout=10, close_timeout=0.2) as ws:
            try:
                for _ in range(20):
                    for frame in frames:
                        ws.send(frame)
                    ws.send('{"type": "ping"}')
                while errors < MAX_ERRORS:
                    reply = json.loads(ws.recv(timeout=10))
                    tally[reply["type"]] = tally.get(reply["type"], 0) + 1
                    if reply["type"] == "error":
                        assert reply["code"] in ERROR_CODES and reply["message"], reply
                        errors += 1
                    else:
                        assert reply["type"] == "pong", reply
                try:
                    extra = ws.recv(timeout=0.5)
                    raise AssertionError(f"the server still answers after {errors} errors: {extra!r}")
                except TimeoutError:
                    tally["cut_off"] = tally.get("cut_off", 0) + 1
            except ConnectionClosed as exc:
                # closed while we were still sending or reading: replies may be left unread
                code = exc.rcvd.code if exc.rcvd is not None else -1
                tally[f"closed_{code}"] = tally.get(f"closed_{code}", 0) + 1


def test_a_flood_of_bad_clients_leaves_a_live_call_flowing(live: LiveServer, flowing: FlowingCall) -> None:
    baseline = flowing.rate(3.0)
    assert baseline > 10, f"the live call only received {baseline:.1f} frames/s before the flood"
    stop, tallies = threading.Event(), [dict[str, int](), dict[str, int]()]
    failures: list[BaseException] = []

    def run(tally: dict[str, int]) -> None:
        try:
            flood(live, stop, tally)
        except BaseException as exc:
            failures.append(exc)

    floods = [threading.Thread(target=run, args=(tally,)) for tally in tallies]
    for thread in floods:
        thread.start()
    try:
        during = flowing.rate(5.0)
    finally:
        stop.set()
        for thread in floods:
            thread.join(30)
    if failures:
        raise failures[0]
    for tally in tallies:
        # every flooding client was answered with errors, then cut off after MAX_ERRORS of them
        assert set(tally) <= {"error", "pong", "cut_off", "closed_1008"}, tally
        connections = tally.get("cut_off", 0) + tally.get("closed_1008", 0)
        assert connections >= 1, tally
        errors = tally.get("error", 0)
        assert MAX_ERRORS * tally.get("cut_off", 0) <= errors <= MAX_ERRORS * connections, tally
    assert flowing.call.state.value == "live"
    assert during >= 0.5 * baseline, f"{during:.1f} frames/s during the flood, {baseline:.1f} before"


joined_messages = st.one_of(
    st.builds(lambda detail: {"type": "capture_attempt", "detail": detail}, hostile_text),
    st.builds(lambda token: {"type": "join", "token": token}, hostile_text),
    st.builds(lambda sdp: {"type": "offer", "sdp": "v=0\r\n" + sdp}, hostile_text),
    st.builds(
        lambda key, value: {"type": "ping", key: value},
        hostile_text.filter(lambda k: k != "type"),
        hostile_text,
    ),
    st.just({"type": "ping"}),
)


def refusal(frame: dict[str, Any]) -> str | None:
    """What the error frame for ``frame`` must say, or None when the server may take it. The parser
    checks, in order: the frame's size, unknown fields, emptiness, length, then the text rule."""
    kind = frame["type"]
    if len(json.dumps(frame).encode()) > MAX_MESSAGE_BYTES:
        return "larger than"
    if kind == "ping":
        return None if len(frame) == 1 else f"{kind}: unknown field"
    name, limit = {
        "capture_attempt": ("detail", MAX_DETAIL_CHARS),
        "join": ("token", MAX_TOKEN_CHARS),
        "offer": ("sdp", MAX_MESSAGE_BYTES),
    }[kind]
    value = frame[name]
    if kind == "join" and not value:
        return "join.token: must not be empty"
    if len(value) > limit:
        return f"{kind}.{name}: longer than"
    if text_problem(value, lines=kind == "offer") is not None:
        return f"{kind}.{name}: contains"
    return None


@settings(FUZZ, max_examples=100)
@given(frames=st.lists(joined_messages, min_size=1, max_size=6))
def test_a_joined_devices_hostile_text_gets_errors_naming_the_field(
    live: LiveServer, baseline: dict[str, float], frames: list[dict[str, Any]]
) -> None:
    """A device joined to a call sends any mix of messages with hostile text: each one with text no
    record may hold gets an error naming the field (and nothing happens), the rest are handled."""
    token = live.token("call-fuzz", "visitor")
    deadline = time.monotonic() + 10
    while True:
        with open_ws(live) as ws:
            ws.send(json.dumps({"type": "join", "token": token}))
            reply = json.loads(ws.recv(timeout=10))
            if reply["type"] == "joined":
                for frame in frames:
                    ws.send(json.dumps(frame))  # a lone surrogate travels as its JSON escape
                ws.send('{"type": "ping"}')
                errors: list[dict[str, Any]] = []
                pongs = 0
                while pongs < 1 + sum(1 for f in frames if f == {"type": "ping"}):
                    answer = json.loads(ws.recv(timeout=20))
                    if answer["type"] == "error":
                        assert answer["code"] in ERROR_CODES and "Traceback" not in answer["message"], answer
                        errors.append(answer)
                    else:
                        assert answer["type"] in ("state", "warning", "warning_cleared", "answer", "pong"), (
                            answer
                        )
                        pongs += answer["type"] == "pong"
                expected = [r for f in frames if (r := refusal(f)) is not None]
                named = [
                    e["message"] for e in errors if e["code"] in ("bad_message", "bad_token", "too_large")
                ]
                for words in expected:
                    assert any(words in message for message in named), (words, named)
                return
        assert reply.get("code") == "token_in_use" and time.monotonic() < deadline, reply
        time.sleep(0.1)


def test_after_the_fuzzing_the_live_call_flows_and_memory_is_bounded(
    live: LiveServer, flowing: FlowingCall, baseline: dict[str, float]
) -> None:
    """Last in the module: the call that was live before all of the above is live now, at its frame
    rate, and the server process has not grown by more than a bound (no queue or buffer grew
    with what the clients sent)."""
    assert flowing.call.state.value == "live"
    after = flowing.rate(3.0)
    assert after >= 0.5 * baseline["rate"], f"{after:.1f} frames/s now, {baseline['rate']:.1f} before"
    grew = live.rss_mb() - baseline["rss_mb"]
    assert grew < MEMORY_BOUND_MB, f"the server grew by {grew:.0f} MB during the fuzzing"
