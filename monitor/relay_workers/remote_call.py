"""The front's stand-in for a call that runs in a relay worker process (``--relay-workers N``).

Theory of operation. :class:`RemoteCall` is a ``monitor.call.handle.CallHandle``, as a
``monitor.call.call.Call`` is: it offers what the front's users ask of a call -- the signalling
handler (``join``, ``answer``, ``capture_attempt``, ``leave``), ``Calls`` (seats, ``check_seat``,
``devices``, ``ended``), the console (``state``, staff actions, ``watch_peer``,
``evidence_jpeg``), the board and /metrics (``stats()``: devices with their media state and
forwarded counts, taps) -- and does each by a request to the worker the call is placed on
(``monitor/relay_workers/pool.py``). Seat checks run here first, with the same rules as ``Call``
(``monitor.call.seats``), and again in the worker, which decides.

What the front knows of the call comes from the worker: every hub record (re-published on the
front's hub; a ``state`` record sets :attr:`state`; an alert brings its evidence JPEG, kept for
the audit recorder's ``evidence_jpeg``) and a snapshot a second.

A worker that dies takes the call's session, peers and media with it. The call then fails closed
visibly, as for an analysis failure: a ``state`` record into ``paused`` for ``analysis_error``
and an ``alert`` saying the relay worker died are published (so the console, the audit log and
/metrics see it), each device is told (a paused state frame, an error frame) and disconnected.
The call is placed again (on the restarted worker or another) with a fresh session, which starts
by verifying: media flows again only after the security check passes, once the devices rejoin
with their links. What must survive the worker is read from the call's records as they pass
through here (:attr:`RemoteCall.held`, ``monitor.call.held``, seeded from the store's audit records
when the call is loaded; staff approvals and ends are noted as staff act): the pause reasons that
still need staff go with the call to its new place (``ipc.AddCall.carried``), where the new session
stays paused for them until staff approve, and a call staff ended stays ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.call.explain import state_frame
from monitor.call.handle import Close, Send
from monitor.call.held import CarriedOver, HeldPause
from monitor.call.seats import JoinRefused, Seat, check_seat, make_seats, seat_of
from monitor.call.stats import CallStats, DeviceStats, TapStats
from monitor.hub import Hub
from monitor.media.tracks import TrackStats
from monitor.record.timeline import decision_record
from monitor.relay_workers import ipc
from monitor.workers.analysis_pool import StreamStats
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import Alert, State, StateChanged
from policies.reasons import Reason
from policies.session import RefusedEvent
from signalling import messages

log = logging.getLogger(__name__)

#: A join waits this long for its call to be placed on a worker (a worker restarting warms up).
PLACE_TIMEOUT_S = 60.0
WORKER_DIED = "relay worker process died"


class RemoteError(Exception):
    """The worker refused a request (``code``/``message`` are for the user), or is gone."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Link(Protocol):
    """One relay worker as a call sees it (``monitor.relay_workers.pool.WorkerLink``)."""

    alive: bool
    restarts: int  # times its process was restarted

    async def request(self, message: ipc.Request) -> dict[str, Any]: ...

    async def notify(self, message: ipc.Message) -> None: ...

    def attach(self, device: RemoteDevice) -> int: ...

    def detach(self, conn: int) -> None: ...

    def next_id(self) -> int: ...


@dataclass(eq=False)
class RemoteDevice:
    """One device of a remote call, as the signalling handler holds it."""

    seat: Seat
    send: Send
    close: Close
    conn: int = 0
    link: Link | None = None
    media_connected: bool = False  # as the worker's latest snapshot said
    tracks: tuple[TrackStats, ...] = ()  # likewise

    def stats(self) -> DeviceStats:
        return DeviceStats(self.seat.participant, self.seat.role.value, self.media_connected, self.tracks)


class RemoteCall:
    def __init__(
        self,
        booking: Booking,
        config: PolicyConfig,
        *,
        wall_clock: Callable[[], float],
        hub: Hub | None,
        ice_servers: list[dict[str, Any]] | None = None,
        held: HeldPause | None = None,
    ) -> None:
        self.booking = booking
        self.call_id = booking.call_id
        self.config = config
        self.wall_clock = wall_clock
        self.hub = hub
        self.ice_servers = ice_servers or []
        self.seats = make_seats(booking)
        self.devices: dict[str, RemoteDevice] = {}
        self.taps: dict[str, TapStats] = {}  # the latest snapshot's
        self.streams: dict[str, StreamStats] = {}  # by source key, each as its latest snapshot said
        self.evidence: dict[str, bytes] = {}
        self.last_reasons: tuple[str, ...] = ()
        self.ended = asyncio.Event()
        self.placed = asyncio.Event()
        self.link: Link | None = None
        self.worker_deaths = 0
        self._state = State.WAITING
        # its pause, from its records: carried to each new place
        self.held = held or HeldPause(r.value for r in config.staff_approval_reasons)
        self.restarted = "the server restarted"  # what the next place carries the pause over
        self._staff_later: list[tuple[ipc.StaffAction, str, str]] = []  # (action, note, staff) until placed

    # ---- what Call offers ---------------------------------------------------------------------------
    def now(self) -> float:
        return self.wall_clock() - self.booking.starts_at.timestamp()

    @property
    def seconds_left(self) -> float:
        return self.booking.duration_s - self.now()

    @property
    def state(self) -> State:
        return self._state

    def start(self) -> None:
        """Nothing to start here: the worker runs the call (placing it is the pool's job)."""

    def source_key(self, participant: str) -> str:
        return f"{self.call_id}/{participant}"

    # the seat rules are the same as a Call's (monitor.call.seats)
    def seat_of(self, participant: str) -> Seat | None:
        return seat_of(self.seats.values(), participant)

    def check_seat(self, seat: Seat) -> Seat:
        return check_seat(seat, booking=self.booking, now=self.now(), state=self._state, taken=self.devices)

    def check_token(self, token: str) -> Seat:
        return self.check_seat(self.seats[token])

    def evidence_jpeg(self, source: str) -> bytes | None:
        """The frame behind the latest alert on ``source`` (sent by the worker with the alert)."""
        return self.evidence.get(source)

    # ---- devices -------------------------------------------------------------------------------------
    async def _link(self) -> Link:
        if not self.placed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.placed.wait(), PLACE_TIMEOUT_S)
        link = self.link
        if link is None or not link.alive:
            raise RemoteError(
                "relay_unavailable", "the call server is restarting; please try again in a minute"
            )
        return link

    async def join(self, seat: Seat, send: Send, close: Close) -> RemoteDevice:
        device = RemoteDevice(seat, send, close)
        participant = seat.participant
        self.devices[participant] = device  # holds the seat while the worker is asked
        try:
            link = await self._link()
            device.link, device.conn = link, link.attach(device)
            await link.request(ipc.Join(link.next_id(), device.conn, self.call_id, participant))
        except RemoteError as exc:
            self._forget(device)
            raise JoinRefused(exc.code, exc.message) from None
        except BaseException:
            self._forget(device)
            raise
        return device

    def _forget(self, device: RemoteDevice) -> None:
        if self.devices.get(device.seat.participant) is device:
            del self.devices[device.seat.participant]
        if device.link is not None:
            device.link.detach(device.conn)

    async def answer(self, device: RemoteDevice, sdp: str) -> str:
        link = device.link
        if link is None or link is not self.link or not link.alive:
            raise ValueError("the call moved to another relay process; please reconnect")
        try:
            result = await link.request(ipc.Offer(link.next_id(), device.conn, sdp))
        except RemoteError as exc:
            raise ValueError(exc.message) from None
        return str(result["sdp"])

    async def capture_attempt(self, device: RemoteDevice, detail: str) -> None:
        if device.link is not None and device.link.alive:
            await device.link.notify(ipc.CaptureAttempt(device.conn, detail))

    async def leave(self, device: RemoteDevice) -> None:
        self._forget(device)
        if device.link is not None and device.link.alive:
            await device.link.notify(ipc.Leave(device.conn))

    # ---- staff ---------------------------------------------------------------------------------------
    async def _staff(self, action: ipc.StaffAction, note: str, staff: str) -> None:
        link = self.link
        if link is None or not link.alive:  # between a worker's death and the call's new place
            self._staff_later.append((action, note, staff))
            return
        try:
            await link.request(ipc.Staff(link.next_id(), self.call_id, action, note, staff))
        except RemoteError as exc:
            if exc.code == "relay_unavailable":
                self._staff_later.append((action, note, staff))
            else:
                log.error("call %s: staff %s refused by its worker: %s", self.call_id, action, exc.message)

    async def staff_pause(self, note: str = "", staff: str = "") -> None:
        await self._staff("pause", note, staff)

    async def staff_resume(self, staff: str = "") -> None:
        self.held.see("staff_action", {"action": "approve_resume"})
        await self._staff("resume", "", staff)

    async def staff_end(self, note: str = "", staff: str = "") -> None:
        self.held.see("staff_action", {"action": "end"})
        await self._staff("end", note, staff)

    def carried(self) -> CarriedOver:
        """What the call's next place must take over (``monitor.call.held``)."""
        return self.held.carried(self.restarted)

    async def fault(self, reason: Reason, detail: str, raised: bool) -> None:
        """A fault of the server (``store_error``) raised or cleared: to the call in its worker."""
        link = self.link
        if link is not None and link.alive:
            await link.notify(ipc.Fault(self.call_id, reason.value, detail, raised))

    async def _staff_identity(self, source: str, track: int, participant: str | None, staff: str) -> None:
        """A staff verdict on one face track, applied by the call's session in its worker, or
        RefusedEvent with the reason. Never kept for later, unlike a pause: a call placed again
        has a fresh session whose face tracks are not the ones staff looked at."""
        link = self.link
        if link is None or not link.alive:
            raise RefusedEvent(
                "the call's relay process is restarting: its faces are checked again from the start"
            )
        try:
            await link.request(
                ipc.StaffIdentity(link.next_id(), self.call_id, source, track, participant, staff)
            )
        except RemoteError as exc:
            raise RefusedEvent(exc.message) from None

    async def staff_confirm_identity(
        self, source: str, track: int, participant: str, staff: str = ""
    ) -> None:
        await self._staff_identity(source, track, participant, staff)

    async def staff_reject_identity(self, source: str, track: int, staff: str = "") -> None:
        await self._staff_identity(source, track, None, staff)

    async def watch_peer(self) -> tuple[RemoteWatchPeer, str, list[dict[str, str]], list[dict[str, Any]]]:
        """A console's receive-only view, made in the worker: (peer stand-in, offer SDP, slots, ICE)."""
        try:
            link = await self._link()
            watch = link.next_id()
            result = await link.request(ipc.Watch(link.next_id(), watch, self.call_id))
        except RemoteError as exc:
            from monitor.console.watch import WatchRefused

            raise WatchRefused(exc.message) from None
        return (
            RemoteWatchPeer(link, watch),
            str(result["sdp"]),
            list(result["slots"]),
            list(result["ice_servers"]),
        )

    async def close(self) -> None:
        link, self.link = self.link, None
        self.placed.clear()
        if link is not None and link.alive:
            with contextlib.suppress(RemoteError, ConnectionError):
                await link.notify(ipc.CloseCall(self.call_id))

    # ---- from the worker -------------------------------------------------------------------------------
    async def placed_on(self, link: Link) -> None:
        self.link = link
        self.placed.set()
        later, self._staff_later = self._staff_later, []
        for action, note, staff in later:
            await self._staff(action, note, staff)

    def on_record(self, record: dict[str, Any], evidence: bytes | None) -> None:
        kind = record.get("kind")
        if kind == "state":
            if record.get("state") == self._state.value:
                # a call moved before anyone joined: the new worker's fresh session announces the
                # start again; the front already published it, and a state is only news if it changes
                return
            with contextlib.suppress(ValueError):
                self._state = State(str(record.get("state")))
            self.last_reasons = tuple(str(r) for r in record.get("reasons", []) or [])
            if self._state is State.ENDED:
                self.ended.set()
        elif kind == "alert" and evidence is not None:
            self.evidence[str(record.get("source") or "")] = evidence
        self.held.see(str(kind), record)
        if self.hub is not None:
            self.hub.publish(self.call_id, record)

    def on_snapshot(self, snapshot: ipc.CallSnapshot) -> None:
        call = snapshot.call
        with contextlib.suppress(ValueError):
            if self._state is not State.ENDED:
                self._state = State(call.state)
        for seen in call.devices:
            device = self.devices.get(seen.participant)
            if device is not None:
                device.media_connected, device.tracks = seen.media_connected, seen.tracks
        self.taps = {tap.participant: tap for tap in call.taps}
        self.streams.update(snapshot.streams)

    def stats(self) -> CallStats:
        devices = tuple(device.stats() for device in self.devices.values())
        return CallStats(self.call_id, self._state.value, devices, tuple(self.taps.values()))

    async def worker_died(self) -> None:
        """Fail closed, visibly (see the theory of operation); the pool places the call again."""
        self.link = None
        self.placed.clear()
        self.worker_deaths += 1
        if self.ended.is_set():
            return
        self.restarted = "its relay worker process restarted"
        t, previous = self.now(), self._state
        if previous in (State.VERIFYING, State.LIVE):
            self.on_record(
                decision_record(StateChanged(t, State.PAUSED, previous, (Reason.ANALYSIS_ERROR,))), None
            )
        if previous is not State.WAITING:
            alert = Alert(
                t, Reason.ANALYSIS_ERROR, detail=f"{WORKER_DIED}; devices must rejoin and be checked again"
            )
            self.on_record(decision_record(alert), None)
        frames = [
            state_frame(State.PAUSED, ((Reason.ANALYSIS_ERROR, ""),), self.seconds_left),
            messages.error(
                "relay_restarted", "the call server restarted this call; please rejoin with your link"
            ),
        ]
        devices, self.devices = list(self.devices.values()), {}
        for device in devices:
            seat = device.seat
            left = {"kind": "left", "t": round(t, 3), "source": seat.participant}
            self.on_record(
                {**left, "participant": seat.participant, "role": seat.role.value, "actor": "system"}, None
            )
            with contextlib.suppress(Exception):
                for frame in frames:
                    await device.send(frame)
                await device.close()
        self.taps = {}


class RemoteWatchPeer:
    """What console/watch.py holds as the peer connection of a watch that lives in a worker."""

    def __init__(self, link: Link, watch: int) -> None:
        self.link = link
        self.watch = watch
        self._generation = link.restarts  # the worker process this watch's peer lives in

    @property
    def lost(self) -> bool:
        """The worker holding the peer died (restarted or not): no media will come any more."""
        return not self.link.alive or self.link.restarts != self._generation

    async def setRemoteDescription(self, description: Any) -> None:
        try:
            await self.link.request(ipc.WatchAnswer(self.link.next_id(), self.watch, str(description.sdp)))
        except RemoteError as exc:
            raise ValueError(exc.message) from None

    async def close(self) -> None:
        if self.link.alive:
            with contextlib.suppress(RemoteError, ConnectionError):
                await self.link.notify(ipc.WatchClose(self.watch))


__all__ = ["RemoteCall", "RemoteDevice", "RemoteError", "RemoteWatchPeer"]
