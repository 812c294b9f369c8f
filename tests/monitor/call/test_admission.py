"""Admission control: limits, and refusal of a new call through the real signalling server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.bookings import load_booking
from monitor.call.admission import Admission, AdmissionStats, Limits, Load, Measured, OverCapacity, overload
from monitor.server.serve import Server
from policies.config import load_policy
from signalling.client import Device

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


def test_a_running_call_is_never_refused_and_a_new_one_is_over_the_limit() -> None:
    admission = Admission(Limits(max_calls=2))
    admission.admit("a", [])
    admission.admit("b", ["a"])
    admission.admit("a", ["a", "b"])  # another device of a running call
    with pytest.raises(OverCapacity) as refused:
        admission.admit("c", ["a", "b"])
    assert "at capacity" in refused.value.message and "2 calls running" in refused.value.message
    assert refused.value.code == "over_capacity"
    assert (admission.admitted, admission.refused) == (2, 1)


def test_a_lagging_loop_refuses_new_calls_only() -> None:
    lag = [10.0]
    admission = Admission(Limits(max_calls=10, max_loop_lag_ms=50), loop_lag_ms=lambda: lag[0])
    admission.admit("a", [])
    lag[0] = 120.0
    with pytest.raises(OverCapacity, match="120 ms late"):
        admission.admit("b", ["a"])
    admission.admit("a", ["a"])
    lag[0] = 20.0
    admission.admit("b", ["a"])


@pytest.mark.parametrize(
    "field,value",
    [("max_calls", 0), ("max_loop_lag_ms", 0.0), ("max_cpu", 0.0), ("max_analysis_wait_ms", -1.0)],
)
def test_limits_reject_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_the_measured_load_decides_without_a_fixed_limit() -> None:
    limits = Limits()  # no max_calls: CPU share, loop lag and analysis wait decide
    assert overload(Load(running=40, cores=2, cpu=0.5, lag_ms=10.0, analysis_wait_ms=30.0), limits) is None
    assert "processors are 85% busy, the limit is 80%" in str(
        overload(Load(running=9, cores=2, cpu=0.85), limits)
    )
    assert "120 ms late" in str(overload(Load(running=3, cpu=0.2, lag_ms=120.0), limits))
    assert "analysis is 400 ms behind" in str(
        overload(Load(running=3, cpu=0.2, analysis_wait_ms=400.0), limits)
    )
    # a server running nothing is never refused for its load (what it measures is the machine's)
    assert overload(Load(running=0, cores=2, cpu=0.99, lag_ms=500.0, analysis_wait_ms=900.0), limits) is None
    # a fixed limit, when given, comes first
    assert "3 calls running, the limit is 3" in str(overload(Load(running=3), Limits(max_calls=3)))


def test_calls_just_started_count_before_their_load_shows() -> None:
    """The ramp-up allowance: each call started within ramp_s adds ramp_call_cores, so a burst
    of starts on an idle-looking server stops before it piles on."""
    limits = Limits(ramp_s=20.0, ramp_call_cores=0.1)
    assert Load(running=5, recent=4, cores=2, cpu=0.4).cpu_with_ramp(limits) == pytest.approx(0.6)
    assert overload(Load(running=8, recent=8, cores=2, cpu=0.39), limits) is None  # 0.79
    assert overload(Load(running=9, recent=9, cores=2, cpu=0.39), limits) is not None  # 0.84
    now = [100.0]
    measured = Measured(cores=2, cpu=0.1, lag_ms=1.0, analysis_wait_ms=5.0)
    admission = Admission(limits, measure=lambda: measured, clock=lambda: now[0])
    running: list[str] = []
    while True:  # one start after another, the measured CPU standing still (it lags behind)
        try:
            admission.admit(f"c{len(running)}", running)
        except OverCapacity as exc:
            assert "processors are" in exc.message
            break
        running.append(f"c{len(running)}")
    assert len(running) == 15  # 0.1 + 14 x 0.05 = 0.8 still fits the 15th; 0.1 + 15 x 0.05 does not
    now[0] += 21.0  # the ramp-up is over: only what is measured counts
    admission.admit("late", running)
    assert admission.recent() == 1


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    config = load_policy()
    base = load_booking(BOOKING, config)
    start = datetime.now(UTC) - timedelta(seconds=1)
    bookings = [
        dataclasses.replace(base, call_id=name, starts_at=start, ends_at=start + timedelta(minutes=30))
        for name in ("first", "second")
    ]
    srv = Server(bookings, config, port=0, analysis_workers=0)
    await srv.start()
    srv.calls.admission = Admission(Limits(max_calls=1))
    yield srv
    await srv.stop()


def token(srv: Server, call_id: str, role: str) -> str:
    call = srv.calls.get(call_id)
    assert call is not None
    return next(t for t, seat in call.seats.items() if seat.role.value == role)


async def test_over_capacity_a_new_call_gets_a_clear_error_and_the_running_call_still_admits(
    server: Server,
) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws/call"
    devices = [Device(url) for _ in range(3)]
    for device in devices:
        await device.open()
    try:
        first = await devices[0].join(token(server, "first", "visitor"))
        assert first["type"] == "joined"
        refused = await devices[1].join(token(server, "second", "visitor"))
        assert refused["type"] == "error" and refused["code"] == "over_capacity", refused
        assert "at capacity" in refused["message"]
        again = await devices[2].join(token(server, "first", "prisoner"))  # same call: let in
        assert again["type"] == "joined"
    finally:
        for device in devices:
            await device.close()


async def test_monitor_serve_admits_by_its_measured_load() -> None:
    """A server that admits by load (as `monitor serve` does) counts the call it just started
    before its load shows: with a CPU limit below one call's ramp-up allowance, the second call
    is refused by name of the processors, the first call's devices still let in."""
    config = load_policy()
    base = load_booking(BOOKING, config)
    start = datetime.now(UTC) - timedelta(seconds=1)
    bookings = [
        dataclasses.replace(base, call_id=name, starts_at=start, ends_at=start + timedelta(minutes=30))
        for name in ("first", "second")
    ]
    srv = Server(
        bookings, config, port=0, analysis_workers=0, limits=Limits(max_cpu=0.01), admit_by_load=True
    )
    await srv.start()
    url = f"ws://127.0.0.1:{srv.port}/ws/call"
    devices = [Device(url) for _ in range(3)]
    try:
        for device in devices:
            await device.open()
        assert srv.measured().cores >= 1 and srv.load is not None
        first = await devices[0].join(token(srv, "first", "visitor"))
        assert first["type"] == "joined", first
        refused = await devices[1].join(token(srv, "second", "visitor"))
        assert refused["type"] == "error" and refused["code"] == "over_capacity", refused
        assert "processors are" in refused["message"] and "the limit is 1%" in refused["message"]
        again = await devices[2].join(token(srv, "first", "prisoner"))
        assert again["type"] == "joined"
    finally:
        for device in devices:
            await device.close()
        await srv.stop()


def test_without_a_probe_only_the_fixed_limit_decides_however_many_calls_start() -> None:
    """A server that does not measure its load (a test's or a benchmark's) keeps to its fixed
    limit: the ramp-up allowance tops up a measured share only, so twenty calls started one after
    another within seconds, one running at a time, are all let in."""
    admission = Admission(Limits(max_calls=3), clock=lambda: 100.0)
    for n in range(20):
        admission.admit(f"call-{n}", running=[f"call-{n - 1}"] if n else [])
    assert admission.stats() == AdmissionStats(admitted=20, refused=0, max_calls=3)
