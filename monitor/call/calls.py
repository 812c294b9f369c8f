"""Every call of the process, by call id and by join token, and where the worker pool's results go.

A server holds :class:`Calls` of :class:`~monitor.call.handle.CallHandle` s (calls running here,
or stand-ins of calls running in relay workers); a relay worker holds ``Calls[Call]``. Tokens that
no call holds in memory go to the ``resolver`` (``monitor serve`` asks the store, loading the call
if needed); ``admission`` may refuse a call that would start over capacity (``admission.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from monitor.call.admission import OverCapacity
from monitor.call.call import Call
from monitor.call.handle import CallHandle
from monitor.call.seats import JoinRefused, Seat
from monitor.call.stats import CallsStats
from policies.events import Observation

C = TypeVar("C", bound=CallHandle[Any])

#: Resolves a join token the calls do not know (the store's): (call, participant) or JoinRefused.
Resolver = Callable[[str], tuple[C, str]]


class Calls(Generic[C]):
    def __init__(self, resolver: Resolver[C] | None = None) -> None:
        self.by_id: dict[str, C] = {}
        self.by_token: dict[str, C] = {}
        self.resolver = resolver
        self._pending: set[asyncio.Future[None]] = set()  # analysis results being handled
        self.admission: Any = None  # capacity hook: monitor.call.admission.Admission (None: no limit)

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def add(self, call: C, *, own_tokens: bool = True) -> None:
        """``own_tokens``: the call's in-memory seat tokens join it (a server without a store);
        False: only tokens the resolver accepts do (the store's, which can be revoked)."""
        if call.call_id in self.by_id:
            raise ValueError(f"two bookings have the same call_id {call.call_id!r}")
        self.by_id[call.call_id] = call
        for token in call.seats if own_tokens else ():
            self.by_token[token] = call

    def get(self, call_id: str) -> C | None:
        return self.by_id.get(call_id)

    def remove(self, call_id: str) -> None:
        """Forget a call (it must be closed already)."""
        call = self.by_id.pop(call_id, None)
        if call is not None:
            for token in call.seats:
                self.by_token.pop(token, None)

    def stats(self) -> CallsStats:
        admission = self.admission.stats() if self.admission is not None else None
        return CallsStats(tuple(call.stats() for call in self), len(self._pending), admission)

    def __iter__(self) -> Iterator[C]:
        return iter(list(self.by_id.values()))

    def seat_for(self, token: str) -> tuple[C, Seat]:
        call, seat = self._seat_for(token)
        if self.admission is not None:  # capacity hook: a call may not start over capacity
            running = [c.call_id for c in self.by_id.values() if c.devices and not c.ended.is_set()]
            try:
                self.admission.admit(call.call_id, running)
            except OverCapacity as exc:
                raise JoinRefused(exc.code, exc.message) from None
        return call, seat

    def _seat_for(self, token: str) -> tuple[C, Seat]:
        call = self.by_token.get(token)
        if call is not None:
            return call, call.check_token(token)
        if self.resolver is None:
            raise JoinRefused("bad_token", "this join link is not valid")
        call, participant = self.resolver(token)
        seat = call.seat_of(participant)
        if seat is None:
            raise JoinRefused("bad_token", "this join link is not valid")
        return call, call.check_seat(seat)

    # the analysis pool's callbacks (``AnalysisPool(n, calls.on_result, calls.on_failure)``): the
    # source key names the call, and only a call running in this process has analysed cameras
    def on_result(self, key: str, observation: Observation, spent: float) -> None:
        call_id, _, participant = key.rpartition("/")
        call = self.by_id.get(call_id)
        if isinstance(call, Call):
            self._later(call.on_observation(participant, observation))

    def on_failure(self, key: str, detail: str) -> None:
        call_id, _, participant = key.rpartition("/")
        call = self.by_id.get(call_id)
        if isinstance(call, Call):
            self._later(call.on_analysis_failed(participant, detail))

    async def close(self) -> None:
        for call in self:
            await call.close()


__all__ = ["Calls", "Resolver"]
