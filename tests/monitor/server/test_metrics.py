"""/metrics: the exposition text parses, access is restricted, and the figures follow a real call
(real server, real analysis worker, real aiortc devices with a fixture clip) as it pauses."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from support.ice import loopback_ice
from support.live_server import add_call, booking_now, join_device, ping_pong
from support.waiting import until
from websockets.datastructures import Headers

from monitor.call.call import Call
from monitor.http import HttpRequest, Router
from monitor.load import LoopLag
from monitor.server.metrics import CONTENT_TYPE, Exposition, Metrics, is_loopback, register_metrics
from monitor.server.serve import Server
from policies.config import load_policy
from policies.decisions import State, StateChanged
from signalling.client import Device, load_clip

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / "fixtures" / "clips" / "clean.webm"
TOKEN = "s3cret-metrics-token"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
_VALUE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|NaN|[+-]Inf)$")

Key = tuple[str, frozenset[tuple[str, str]]]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> dict[Key, float]:
    """A strict reader of the text format: HELP and TYPE come once, before their samples."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[Key, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"HELP twice for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types and name in helps, line
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, raw_labels, value = match.groups()
        assert name in types, f"{name} sampled before its TYPE"
        assert _VALUE.match(value), line
        labels: list[tuple[str, str]] = []
        if raw_labels:
            consumed = 0
            for label in _LABEL.finditer(raw_labels):
                assert label.start() == consumed, f"bad labels in {line!r}"
                consumed = label.end()
                labels.append((label.group(1), _unescape(label.group(2))))
            assert consumed == len(raw_labels), f"bad labels in {line!r}"
        key = (name, frozenset(labels))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    return samples


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_an_empty_registry_renders_valid_text_with_every_family() -> None:
    samples = parse(Metrics().render())
    names = {name for name, _ in samples}
    for family in (
        "monitor_calls",
        "monitor_peers",
        "monitor_analysis_frames_total",
        "monitor_analysis_fps_overall",
        "monitor_analysis_in_flight",
        "monitor_loop_lag_seconds",
        "monitor_queue_depth",
    ):
        assert family in names, family
    assert value(samples, "monitor_calls", state="live") == 0
    assert value(samples, "monitor_loop_lag_seconds", stat="p99") == 0


def test_label_values_are_escaped_and_read_back() -> None:
    page = Exposition()
    page.family("x_total", "counter", "a help text with a \\ backslash\nand a newline")
    nasty = 'call "7"\\\nnext'
    page.sample("x_total", 3, {"call": nasty})
    page.sample("x_total", 0.25, {"call": "plain"})
    samples = parse(page.text())
    assert value(samples, "x_total", call=nasty) == 3
    assert value(samples, "x_total", call="plain") == 0.25
    with pytest.raises(ValueError, match="declared twice"):
        page.family("x_total", "counter", "again")


def test_records_from_the_hub_count_pauses_alerts_and_transitions() -> None:
    metrics = Metrics()
    records: list[dict[str, Any]] = [
        {"call_id": "c1", "kind": "state", "state": "verifying", "previous": "waiting"},
        {
            "call_id": "c1",
            "kind": "state",
            "state": "paused",
            "previous": "verifying",
            "reasons": ["no_face"],
        },
        {"call_id": "c1", "kind": "alert", "reason": "no_face"},
        {
            "call_id": "c2",
            "kind": "state",
            "state": "paused",
            "previous": "live",
            "reasons": ["unbooked_face", "too_many_faces"],
        },
        {"call_id": "c2", "kind": "warning", "reason": "poor_lighting"},
    ]
    for record in records:
        metrics.observe_record(record)
    samples = parse(metrics.render())
    assert value(samples, "monitor_pauses_total", reason="no_face") == 1
    assert value(samples, "monitor_pauses_total", reason="unbooked_face") == 1
    assert value(samples, "monitor_pauses_total", reason="too_many_faces") == 1
    assert value(samples, "monitor_alerts_total", reason="no_face") == 1
    assert value(samples, "monitor_state_changes_total", **{"from": "live", "to": "paused"}) == 1
    assert value(samples, "monitor_calls_seen_total") == 2


async def test_loop_lag_sees_a_blocked_event_loop() -> None:
    lag = LoopLag(interval=0.02, window_s=5.0)
    lag.start()
    try:
        await asyncio.sleep(0.3)
        quiet = lag.window_max()
        time.sleep(0.25)  # noqa: ASYNC251 (a blocking call on the loop, as an inline model would be)
        await asyncio.sleep(0.1)
    finally:
        lag.stop()
    assert len(lag.samples) >= 5
    assert lag.window_max() >= 0.2 > quiet
    assert lag.max_ever >= 0.2
    assert lag.quantile(0.5) < 0.2  # one late wake-up among many on-time ones


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("::ffff:10.0.0.5", False),
        ("", False),
        ("nonsense", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


async def _get(router: Router, remote: str, headers: list[tuple[str, str]] | None = None) -> tuple[int, str]:
    handler = router.http[("GET", "/metrics")]
    reply = await handler(HttpRequest("GET", "/metrics", {}, Headers(headers or []), remote))
    return reply.status_code, reply.body.decode()


async def test_without_a_token_only_loopback_clients_are_served() -> None:
    router = Router()
    register_metrics(router, Metrics())
    status, body = await _get(router, "127.0.0.1")
    assert status == 200 and "monitor_calls" in body
    status, body = await _get(router, "203.0.113.9")
    assert status == 403 and "loopback" in body and "monitor_calls" not in body


PER_CALL_FAMILIES = (  # the families whose series are labelled with call and participant ids
    "monitor_forwarded_frames_total",
    "monitor_analysis_fps",
    "monitor_analysis_stream_frames_total",
    "monitor_analysis_seen_frames_total",
    "monitor_analysis_dropped_frames_total",
)


async def test_without_a_token_the_page_has_no_per_call_families() -> None:
    router = Router()
    register_metrics(router, Metrics())
    status, body = await _get(router, "127.0.0.1")
    assert status == 200
    for family in PER_CALL_FAMILIES:
        assert f"# TYPE {family} " not in body, family
        assert f"# TYPE {family} " in Metrics().render(detail=True), family
    names = {name for name, _ in parse(body)}
    assert {"monitor_calls", "monitor_analysis_fps_overall", "monitor_analysis_frames_total"} <= names


async def test_with_a_token_every_client_must_present_it() -> None:
    router = Router()
    register_metrics(router, Metrics(), token=TOKEN)
    for remote in ("127.0.0.1", "203.0.113.9"):
        assert (await _get(router, remote))[0] == 401
        assert (await _get(router, remote, [("Authorization", "Bearer wrong")]))[0] == 401
        assert (await _get(router, remote, [("Authorization", f"Basic {TOKEN}")]))[0] == 401
        twice = [("Authorization", f"Bearer {TOKEN}")] * 2
        assert (await _get(router, remote, twice))[0] == 401  # ambiguous: refused, not a crash
        status, body = await _get(router, remote, [("Authorization", f"Bearer {TOKEN}")])
        assert status == 200 and "monitor_calls" in body


# ---- a real server and a real call --------------------------------------------------------------


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    with loopback_ice():
        srv = Server([], load_policy(), port=0, analysis_workers=1)
        srv.metrics_token = TOKEN
        await srv.start()
        try:
            yield srv
        finally:
            await srv.stop()


def book(server: Server, name: str) -> Call:
    return add_call(server, booking_now(name))


def scrape(port: int, token: str | None = TOKEN) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


async def scrape_until(server: Server, predicate: object, timeout: float) -> dict[Key, float]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = await asyncio.to_thread(scrape, server.port)
        assert status == 200, body
        samples = parse(body)
        if predicate(samples):  # type: ignore[operator]
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched; last page:\n{body}")
        await asyncio.sleep(0.5)


def sent_to_prisoner(samples: dict[Key, float]) -> float:
    to_prisoner = {"call": "call-metrics", "to": "A1234BC", "kind": "video"}
    name = "monitor_forwarded_frames_total"
    return sum(value(samples, name, **to_prisoner, what=w) for w in ("media", "filler"))


@pytest.mark.slow
async def test_metrics_follow_a_real_call_that_pauses(server: Server) -> None:
    status, _, body = await asyncio.to_thread(scrape, server.port, None)
    assert status == 401 and "Bearer" in body  # the server was given a token: loopback needs it too
    status, kind, body = await asyncio.to_thread(scrape, server.port)
    assert status == 200 and kind == CONTENT_TYPE
    before = parse(body)
    assert value(before, "monitor_pauses_total", reason="capture_attempt") == 0

    call = book(server, "call-metrics")
    frames = ping_pong(load_clip(CLIP, max_frames=60))
    devices: list[Device] = []
    try:
        for role in ("prisoner", "visitor"):
            devices.append((await join_device(server, call, role, frames))[0])
        stream = {"call": "call-metrics", "stream": "v1"}

        def flowing(s: dict[Key, float]) -> bool:
            return (
                value(s, "monitor_peers", role="visitor") == 1
                and value(s, "monitor_peers", role="prisoner") == 1
                and value(s, "monitor_peers_media_connected") == 2
                and value(s, "monitor_analysis_fps", **stream) > 0
                and value(s, "monitor_analysis_dropped_frames_total", **stream) > 0
            )

        running = await scrape_until(server, flowing, timeout=120)
        assert value(running, "monitor_analysis_stream_frames_total", **stream) > 0
        assert value(running, "monitor_analysis_frames_total") > 0
        assert value(running, "monitor_analysis_seen_frames_total", **stream) >= value(
            running, "monitor_analysis_stream_frames_total", **stream
        )
        # 30 fps in, analysis slower than that: keep-latest skipped frames instead of queueing them
        overall = value(running, "monitor_analysis_fps_overall")
        assert 0 < overall < 30 and overall >= value(running, "monitor_analysis_fps", **stream)
        assert value(running, "monitor_loop_lag_window_seconds") > 0
        sent_before = sent_to_prisoner(running)
        assert sent_before > 0

        # the same live figures for a loopback client of a server without a token: nothing in
        # them names the call or anyone on it, and the totals are all there
        anonymous = Router()
        register_metrics(anonymous, server.metrics)
        status, body = await _get(anonymous, "127.0.0.1")
        assert status == 200
        assert "call-metrics" not in body and "A1234BC" not in body and '"v1"' not in body, body
        bare = parse(body)
        assert {label for _, labels in bare for label, _ in labels} <= {
            "state",
            "role",
            "reason",
            "from",
            "to",
            "event",
            "stat",
            "queue",
            "worker",
            "result",
        }
        assert value(bare, "monitor_peers", role="visitor") == 1
        assert value(bare, "monitor_analysis_fps_overall") > 0

        # from live, a capture attempt pauses the call (if analysis paused it first, under load, the
        # attempt only adds a reason and an alert: the figures are checked against the call itself)
        with contextlib.suppress(AssertionError):
            await until(lambda: call.state is State.LIVE, 120, "the call to be live", every=0.2)
        was_live = call.state is State.LIVE
        await devices[1].send({"type": "capture_attempt", "detail": "getDisplayMedia"})

        def pauses_of_the_call() -> Counter[str]:
            changes = [d for d in call.decisions if isinstance(d, StateChanged) and d.state is State.PAUSED]
            return Counter(reason.value for change in changes for reason in change.reasons)

        def matches_the_call(s: dict[Key, float]) -> bool:
            truth = pauses_of_the_call()
            return (
                value(s, "monitor_alerts_total", reason="capture_attempt") >= 1
                and value(s, "monitor_calls", state="paused") == 1
                and all(value(s, "monitor_pauses_total", reason=r) == n for r, n in truth.items())
            )

        paused = await scrape_until(server, matches_the_call, timeout=30)
        if was_live:
            assert value(paused, "monitor_pauses_total", reason="capture_attempt") == 1
        assert value(paused, "monitor_calls_seen_total") >= 1
        # the prisoner keeps receiving video (the paused slate now)
        await scrape_until(server, lambda s: sent_to_prisoner(s) > sent_to_prisoner(paused), timeout=20)
        assert sent_to_prisoner(paused) >= sent_before
    finally:
        for device in devices:
            await device.close()
        await call.close()
    gone = await scrape_until(server, lambda s: value(s, "monitor_peers", role="visitor") == 0, timeout=20)
    for reason, count in pauses_of_the_call().items():  # counters never go back
        assert value(gone, "monitor_pauses_total", reason=reason) == count
    assert value(gone, "monitor_analysis_frames_total") >= value(running, "monitor_analysis_frames_total")
