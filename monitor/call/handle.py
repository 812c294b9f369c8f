"""What the server's parts may ask of a call, wherever it runs.

A call runs in this process (:class:`monitor.call.call.Call`) or, with ``--relay-workers``, in a
worker process, with a stand-in here (``monitor.relay_workers.remote_call.RemoteCall``). The
signalling handler, the call registry (``calls.Calls``), the server, the console and /metrics
use either through :class:`CallHandle`; ``DeviceT`` is the kind of device object the call gives
a joined device (``peer.Device``, ``RemoteDevice``), which the handler hands back unopened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from monitor.call.seats import Seat
from monitor.call.stats import CallStats
from policies.booking import Booking
from policies.decisions import State
from policies.reasons import Reason

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[], Awaitable[None]]

DeviceT = TypeVar("DeviceT")


class CallHandle(Protocol[DeviceT]):
    """One call: its seats and devices, its state, and what devices and staff do to it."""

    @property
    def call_id(self) -> str: ...

    @property
    def booking(self) -> Booking: ...

    @property
    def seats(self) -> Mapping[str, Seat]: ...  # join token -> seat

    @property
    def devices(self) -> Mapping[str, DeviceT]: ...  # participant -> the device holding the seat

    @property
    def taps(self) -> Mapping[str, Any]: ...  # participant -> its analysed camera's tap (``seen``)

    @property
    def ended(self) -> asyncio.Event: ...

    @property
    def state(self) -> State: ...

    @property
    def last_reasons(self) -> tuple[str, ...]: ...  # why, while paused or ended (reason values)

    @property
    def seconds_left(self) -> float: ...

    def now(self) -> float: ...  # call time: seconds since the booked start

    def start(self) -> None: ...

    def source_key(self, participant: str) -> str: ...  # the participant's analysis source

    def stats(self) -> CallStats: ...  # its figures for /metrics

    # seats (the rules: seats.check_seat)
    def seat_of(self, participant: str) -> Seat | None: ...

    def check_seat(self, seat: Seat) -> Seat: ...

    def check_token(self, token: str) -> Seat: ...

    # a device (the signalling handler)
    async def join(self, seat: Seat, send: Send, close: Close) -> DeviceT: ...

    async def answer(self, device: DeviceT, sdp: str) -> str: ...

    async def capture_attempt(self, device: DeviceT, detail: str) -> None: ...

    async def leave(self, device: DeviceT) -> None: ...

    # staff (the console)
    async def staff_pause(self, note: str = "", staff: str = "") -> None: ...

    async def staff_resume(self, staff: str = "") -> None: ...

    async def staff_end(self, note: str = "", staff: str = "") -> None: ...

    # a staff verdict on one face track; ``policies.session.RefusedEvent`` (its text for staff) when
    # it cannot apply: the call has ended or moved, the device is not on it, the person not booked
    async def staff_confirm_identity(
        self, source: str, track: int, participant: str, staff: str = ""
    ) -> None: ...

    async def staff_reject_identity(self, source: str, track: int, staff: str = "") -> None: ...

    def evidence_jpeg(self, source: str) -> bytes | None: ...

    # the server (a fault the call depends on: its audit records cannot be written)
    async def fault(self, reason: Reason, detail: str, raised: bool) -> None: ...

    async def close(self) -> None: ...


__all__ = ["CallHandle", "Close", "DeviceT", "Send"]
