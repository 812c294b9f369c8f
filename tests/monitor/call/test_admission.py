"""Admission control: limits, and refusal of a new call through the real signalling server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.bookings import load_booking
from monitor.call.admission import Admission, Limits, OverCapacity
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


@pytest.mark.parametrize("field,value", [("max_calls", 0), ("max_loop_lag_ms", 0.0)])
def test_limits_reject_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})  # type: ignore[arg-type]


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
