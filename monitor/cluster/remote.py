"""A console on one node acting on a call that runs on another: the call's stand-in.

Theory of operation. The console asks its calls (``monitor.console.context.CallControl``) for a
call by id. :class:`ClusterCalls` answers with the call running here, else, when the latest report
of another node lists the call, a :class:`ClusterCall`: its ``state`` and the devices present come
from that report (at most a second old), and each staff action (pause, approve a resume, end) is a
request over the bus (``bus.py``) that the call's node carries out on the call itself. The
console writes the staff action to the audit log first, as for a call running here; the call's
own decisions are written by the call's node. "Watch" asks the call's node for a receive-only
peer of the call (``monitor.console.watch.watch_peer`` there): its offer comes back over the bus,
the console's answer goes there, and the media go straight from the call's node to the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.cluster.bus import Bus, RequestFailed
from monitor.cluster.placement import CallBrief


@dataclass(frozen=True, slots=True)
class _Role:
    value: str


@dataclass(frozen=True, slots=True)
class _Seat:
    role: _Role


@dataclass(frozen=True, slots=True)
class PresentDevice:
    """A device connected to a call on another node, as the board reads one (``device.seat.role``)."""

    seat: _Seat


class ClusterCall:
    """A call running on another node. ``brief``: the latest report of it (None: no longer listed);
    ``stored``: its state as the store has it (written by its node with each state record)."""

    def __init__(
        self,
        call_id: str,
        node: str,
        bus: Bus,
        brief: Callable[[], CallBrief | None],
        stored: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.call_id = call_id
        self.node = node
        self.bus = bus
        self._brief = brief
        self._stored = stored
        self.ended = asyncio.Event()

    @property
    def state(self) -> str:
        """The store's state (as fresh as the audit records the console shows), else the report's."""
        brief = self._brief()
        stored = self._stored()
        state = stored if stored not in (None, "booked", "waiting") else (brief.state if brief else "ended")
        if brief is None or state == "ended":
            self.ended.set()
            return "ended"
        return state

    @property
    def devices(self) -> Mapping[str, PresentDevice]:
        brief = self._brief()
        present = brief.present if brief is not None else ()
        return {participant: PresentDevice(_Seat(_Role(role))) for participant, role in present}

    async def staff_pause(self, note: str = "", staff: str = "") -> None:
        await self.bus.request(self.node, "pause", call_id=self.call_id, note=note, staff=staff)

    async def staff_resume(self, staff: str = "") -> None:
        await self.bus.request(self.node, "resume", call_id=self.call_id, staff=staff)

    async def staff_end(self, note: str = "", staff: str = "") -> None:
        await self.bus.request(self.node, "end", call_id=self.call_id, note=note, staff=staff)

    async def watch_peer(self) -> tuple[ClusterWatchPeer, str, list[dict[str, str]], list[dict[str, Any]]]:
        """A console's receive-only view, made on the call's node: (peer stand-in, offer, slots, ICE)."""
        try:
            offer = await self.bus.request(self.node, "watch", call_id=self.call_id)
        except RequestFailed as exc:
            from monitor.console.watch import WatchRefused

            raise WatchRefused(str(exc)) from None
        peer = ClusterWatchPeer(self, str(offer["watch"]))
        return peer, str(offer["sdp"]), list(offer["slots"]), list(offer["ice_servers"])


class ClusterWatchPeer:
    """What console/watch.py holds as the peer connection of a watch that lives on another node."""

    def __init__(self, call: ClusterCall, watch: str) -> None:
        self.call = call
        self.watch = watch

    @property
    def lost(self) -> bool:
        """The call's node stopped reporting the call (it died, or the call moved)."""
        return self.call._brief() is None

    async def setRemoteDescription(self, description: Any) -> None:
        try:
            await self.call.bus.request(
                self.call.node, "watch_answer", watch=self.watch, sdp=str(description.sdp)
            )
        except RequestFailed as exc:
            raise ValueError(str(exc)) from None

    async def close(self) -> None:
        with contextlib.suppress(RequestFailed):  # its node is gone, or closed it when the call ended
            await self.call.bus.request(self.call.node, "watch_close", watch=self.watch, timeout=2.0)


class ClusterCalls:
    """The console's view of every call of the cluster: ``local`` (this node's ``Calls``) first,
    then the calls other nodes report (``where``: call id -> (node, its brief), kept by node.py)."""

    def __init__(
        self, local: Any, bus: Bus, where: Callable[[str], tuple[str, CallBrief] | None], store: Any = None
    ) -> None:
        self.local = local
        self.bus = bus
        self.where = where
        self.store = store

    def get(self, call_id: str) -> Any:
        call = self.local.get(call_id)
        if call is not None and not call.ended.is_set():
            return call
        found = self.where(call_id)
        if found is None:
            return call
        node, _ = found

        def brief() -> CallBrief | None:
            now = self.where(call_id)
            return now[1] if now is not None and now[0] == node else None

        def stored() -> str | None:
            row = self.store.call(call_id) if self.store is not None else None
            return str(row.state) if row is not None else None

        return ClusterCall(call_id, node, self.bus, brief, stored)

    def __iter__(self) -> Any:
        return iter(self.local)


__all__ = ["ClusterCall", "ClusterCalls", "ClusterWatchPeer", "PresentDevice"]
