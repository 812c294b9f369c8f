"""One live call: its seats, devices, media, analysed cameras and policy session, put together.

Theory of operation. A :class:`Call` is made from a booking. Everything that happens to it (a
device joins or leaves, an analysed frame, a client event, a staff action, the clock) becomes a
``policies`` event stamped with *call time* (seconds since ``starts_at`` by the injected wall
clock) and goes to its one ``Session`` (:meth:`Call.handle`); the decisions that come back are
applied in one place (``effects.py``), and ``ended`` closes every device. A ticker feeds ``Tick``
so windows, fail-closed timeouts and the fixed end fire even when nothing else happens; it wakes
when the session's next window ends (``Session.next_due``), not up to a tick later. A call rebuilt
after a restart first applies what it carried over (``held.py``: ``PauseCarriedOver``, or the end
staff asked for); faults of the server it depends on (its records or its recording cannot be
written) reach its session as ``FaultRaised`` / ``FaultCleared`` (:meth:`Call.fault`).

The parts: ``seats.py`` (who may join, when, and whose media each seat receives), ``peer.py``
(each device's peer connection, the feeds and the gated tracks), ``sampler.py`` (each analysed
camera on the frame path into the worker pool), ``recording.py`` (the archive and its failures)
and ``explain.py`` (what devices are told).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import cv2
from aiortc.contrib.media import MediaRelay

from monitor.analysis.cadence import Cadence
from monitor.analysis.evidence import annotate_observation
from monitor.analysis.frame_path import FramePath, Picture, Sampler
from monitor.call.effects import Effects
from monitor.call.explain import ended_frame, joined_frame, state_frame
from monitor.call.handle import Close, Send
from monitor.call.held import CarriedOver
from monitor.call.peer import Device, Media
from monitor.call.recording import CallRecording
from monitor.call.sampler import Camera, PoolAnalysis
from monitor.call.seats import Seat, check_seat, make_seats, seat_of, slots
from monitor.call.stats import CallStats, TapStats
from monitor.hub import Hub
from monitor.media.tracks import FrameTap
from monitor.workers.analysis_pool import AnalysisPool
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import Decision, State
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    FaultCleared,
    FaultRaised,
    Observation,
    ParticipantJoined,
    ParticipantLeft,
    PauseCarriedOver,
    StaffConfirmIdentity,
    StaffEnd,
    StaffPause,
    StaffRejectIdentity,
    StaffResume,
    Tick,
)
from policies.reasons import Reason
from policies.session import RefusedEvent

log = logging.getLogger(__name__)

TICK_S = 0.1
#: Ticks hold the session clock back to the oldest frame still being analysed (at most this much),
#: so a finding is timed from the frame that showed it, not from when its analysis finished.
ANALYSIS_HOLD_S = 1.0


class SessionLike(Protocol):
    @property
    def state(self) -> State: ...

    def handle(self, event: Event) -> tuple[Decision, ...]: ...

    def next_due(self) -> float | None: ...

    def holding(self) -> tuple[tuple[Reason, str], ...]: ...

    def firm_pause_due(self, pending: Mapping[str, float]) -> float | None: ...


SessionFactory = Callable[[Booking, PolicyConfig], SessionLike]


def default_session_factory(booking: Booking, config: PolicyConfig) -> SessionLike:
    from policies.session import Session

    session: SessionLike = Session.for_booking(booking, config)
    return session


class Call:
    """``pool``: the worker pool analysed cameras go to (None: nothing is analysed). ``forward``:
    pass received VP8 and Opus on as they are; False: decode and re-encode (``peer.py``)."""

    def __init__(
        self,
        booking: Booking,
        config: PolicyConfig,
        *,
        wall_clock: Callable[[], float],
        relay: MediaRelay | None = None,
        pool: AnalysisPool | None = None,
        hub: Hub | None = None,
        record_dir: Path | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        session_factory: SessionFactory = default_session_factory,
        forward: bool = True,
        carried: CarriedOver | None = None,
    ) -> None:
        self.booking = booking
        self.call_id = booking.call_id
        self.config = config
        self.wall_clock = wall_clock
        self.relay = relay or MediaRelay()
        self.pool = pool
        self.hub = hub
        self.ice_servers = ice_servers or []
        self.session = session_factory(booking, config)
        self.seats = make_seats(booking)
        self.roles = {seat.participant: seat.role for seat in self.seats.values()}  # participant -> side
        participants = [s.participant for s in self.seats.values()]
        starts = booking.starts_at.strftime("%H:%M")  # the booked time, as booked (its own offset)
        self.media = Media(self.relay, participants, forward=forward, starts=starts)
        self.gate, self.clock, self.slates = self.media.gate, self.media.clock, self.media.slates
        self.video, self.audio = self.media.video, self.media.audio
        self.devices: dict[str, Device] = {}
        self.analysis = PoolAnalysis(pool) if pool is not None else None
        self.cameras: dict[str, Camera] = {}  # participant -> its analysed camera
        self.analysed_frame: dict[str, Any] = {}  # participant -> last frame sent for analysis
        # participant -> the latest analysed frame and its observation (the console's evidence)
        self.evidence_seen: dict[str, tuple[Picture, Observation]] = {}
        analysed = {s.participant for s in self.seats.values() if s.analysed and pool is not None}
        folder = record_dir / self.call_id if record_dir is not None else None
        self.recording = CallRecording(
            self.call_id, folder, self.video, self.audio, analysed, self.now, self.publish
        )
        self.effects = Effects(self.gate, self.devices, self.publish, self.recording.write_timeline, self.now)
        self._ticker: asyncio.Task[None] | None = None
        self._recording_fault: str | None = None  # why the recording is not written (raised)
        self._slates: asyncio.Future[Any] | None = None
        # held over a restart (``held.py``): applied once the call has started (``carry_over``)
        self.carried = carried if carried else None
        if pool is not None:
            pool.add_booking(self.call_id, booking)
        self.ended = asyncio.Event()

    # ---- time and state ------------------------------------------------------------------------
    def now(self) -> float:
        """Call time: seconds since the booked start (negative before it)."""
        return self.wall_clock() - self.booking.starts_at.timestamp()

    @property
    def seconds_left(self) -> float:
        return self.booking.duration_s - self.now()

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def decisions(self) -> list[Decision]:
        return self.effects.decisions

    @property
    def last_reasons(self) -> tuple[Reason, ...]:
        return self.effects.last_reasons

    @property
    def taps(self) -> dict[str, FrameTap]:
        return {participant: camera.tap for participant, camera in self.cameras.items()}

    @property
    def cadences(self) -> dict[str, Cadence]:
        """participant -> which of its camera's frames are analysed"""
        return {participant: camera.path.sampler.cadence for participant, camera in self.cameras.items()}

    def stats(self) -> CallStats:
        devices = tuple(device.stats() for device in dict(self.devices).values())
        taps = tuple(TapStats(p, self.source_key(p), tap.seen) for p, tap in dict(self.taps).items())
        return CallStats(self.call_id, self.state.value, devices, taps)

    def source_key(self, participant: str) -> str:
        return f"{self.call_id}/{participant}"

    def publish(self, record: dict[str, Any]) -> None:
        """To the staff hub (the console audits what is published there)."""
        if self.hub is not None:
            self.hub.publish(self.call_id, record)

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
            self.recording.start()
            if self.media.forward:  # encoded in a thread now, ready when the first device joins
                self._slates = asyncio.ensure_future(self.media.encoded_slates())

    async def carry_over(self) -> None:
        """Apply what the call carried over a restart (``carried``), once its booked start has
        come (a pause needs a started call): a pause that needed staff holds the new session
        paused until staff approve; a call staff ended ends. Idempotent."""
        carried = self.carried
        if carried is None or (self.now() < 0 and not carried.ended):
            return
        self.carried = None
        if carried.ended:
            await self.handle(StaffEnd(self.now(), f"ended before {carried.detail}".strip()))
        else:
            await self.handle(PauseCarriedOver(self.now(), carried.reasons, carried.detail))

    async def _tick(self) -> None:
        while self.state is not State.ENDED:
            await self.carry_over()
            await self.handle(Tick(self.tick_time()))
            await self._check_recording()
            await asyncio.sleep(self.tick_wait())

    async def _check_recording(self) -> None:
        """The recording's failures for staff (``recording.py``), and for the policy: a recording
        that cannot be written raises ``recording_error`` until it is written again."""
        self.recording.check()
        failing = self.recording.failing()
        if failing != self._recording_fault:
            self._recording_fault = failing
            await self.fault(Reason.RECORDING_ERROR, failing or "", failing is not None)

    def tick_wait(self) -> float:
        """Seconds until the next tick: ``TICK_S``, or sooner when the session has work due sooner
        (a window ending), so that it fires when due rather than up to a tick late."""
        due, now = self.session.next_due(), self.now()
        if due is None or due <= now:  # overdue: held back for a frame in analysis (its result ticks)
            return TICK_S
        return min(TICK_S, due - now + 0.001)

    def tick_time(self) -> float:
        """Call time for the next tick: now, or the time of the oldest frame still in analysis (held
        back at most ``ANALYSIS_HOLD_S``). Observations then arrive at or after the session's clock,
        as in replay, instead of being clamped forward by the analysis latency. The fixed end is
        never held back, nor is a due pause that no frame in analysis can prevent
        (``Session.firm_pause_due``)."""
        now = self.now()
        if self.analysis is None or now >= self.booking.duration_s:
            return now
        flying = self.analysis.in_flight_t
        pending = {p: t for p in self.cameras if (t := flying(self.source_key(p))) is not None}
        held = max(now - ANALYSIS_HOLD_S, min(now, min(pending.values(), default=now)))
        # ... except for a due pause that no frame in analysis can prevent: it fires when due
        firm = self.session.firm_pause_due(pending)
        return firm if firm is not None and held < firm <= now else held

    # ---- policy --------------------------------------------------------------------------------
    async def handle(self, event: Event, *, refusable: bool = False) -> None:
        """Feed one event to the session and act on its decisions. The gate and the records change
        before this first awaits, so a pause reaches the media on the very next frame. An event
        the session refuses is logged, or, when ``refusable`` (a staff verdict: the console says
        why), raised as :class:`~policies.session.RefusedEvent`, the call unchanged."""
        if self.state is State.ENDED:
            if refusable:
                raise RefusedEvent("the call has ended")
            return
        try:
            decisions = self.session.handle(event)
        except RefusedEvent:
            if refusable:
                raise
            log.exception("call %s: session refused %r", self.call_id, event)
            return
        except Exception:
            log.exception("call %s: session refused %r", self.call_id, event)
            return
        end = await self.effects.apply(decisions, self.state_frame)
        if end is not None:
            await self.effects.broadcast(ended_frame(end))
            await self.close()  # devices, analysis sources, recorders, timeline: all released
            self.ended.set()

    def state_frame(self, participant: str | None = None) -> dict[str, Any]:
        """What ``participant``'s device is shown now (``explain.state_frame``; None: no side)."""
        seat = self.seat_of(participant) if participant is not None else None
        role = seat.role if seat is not None else None
        return state_frame(self.state, self.session.holding(), self.seconds_left, role, self.roles)

    # ---- joins ---------------------------------------------------------------------------------
    def check_token(self, token: str) -> Seat:
        return self.check_seat(self.seats[token])

    def seat_of(self, participant: str) -> Seat | None:
        return seat_of(self.seats.values(), participant)

    def check_seat(self, seat: Seat) -> Seat:
        """The seat, if a device may join it now; else JoinRefused with the reason."""
        return check_seat(seat, booking=self.booking, now=self.now(), state=self.state, taken=self.devices)

    def slots(self, seat: Seat) -> list[Seat]:
        """Whose media this seat receives, in transceiver order."""
        return slots(self.seats.values(), seat)

    async def join(self, seat: Seat, send: Send, close: Close) -> Device:
        device = Device(seat, send, close)
        self.devices[seat.participant] = device
        sees = self.slots(seat)
        await send(joined_frame(self.booking, seat, sees, self.state, self.seconds_left, self.ice_servers))
        self.effects.presence("joined", seat)
        if self.pool is not None and seat.analysed:
            self.pool.open(self.source_key(seat.participant), self.call_id, seat.participant, seat.role)
        joined = ParticipantJoined(self.now(), seat.participant, seat.role, seat.participant, seat.analysed)
        self.effects.forget(seat.participant)
        await self.handle(joined)
        await self.effects.show(self.state_frame)  # (sent by handle, unless the session refused it)
        return device

    async def answer(self, device: Device, sdp: str) -> str:
        """Set up (or replace) the device's peer connection from its offer; returns the answer SDP.
        Raises ValueError with a message for the client when the offer cannot be used."""
        seat = device.seat

        def on_camera() -> None:
            if seat.analysed:
                self._tap(seat.participant)

        return await self.media.answer(device, sdp, self.slots(seat), self.ice_servers, on_camera)

    async def capture_attempt(self, device: Device, detail: str) -> None:
        await self.handle(CaptureAttempt(self.now(), device.seat.participant, detail))

    async def leave(self, device: Device) -> None:
        if self.devices.get(device.seat.participant) is device:
            await self._drop(device, announce=True)

    async def _drop(self, device: Device, announce: bool) -> None:
        participant = device.seat.participant
        if self.devices.get(participant) is device:
            del self.devices[participant]
        await self.media.hang_up(device)
        self.media.detach(participant)
        self.effects.presence("left", device.seat, "device" if announce else "system")
        if announce:
            await self.handle(ParticipantLeft(self.now(), participant))

    # ---- analysed cameras (sampler.py) ---------------------------------------------------------
    def _tap(self, participant: str) -> None:
        if self.analysis is None or participant in self.cameras:
            return
        path = FramePath(Sampler(self.source_key(participant)), self.analysis)
        camera = Camera(self.video[participant], path, self.now, lambda: self._pump(participant))
        self.cameras[participant] = camera
        camera.start()

    def _pump(self, participant: str) -> None:
        camera = self.cameras.get(participant)
        taken = camera.pump(self.state is State.LIVE) if camera is not None else None
        if taken is None:
            return
        if taken.sample is not None:
            self.analysed_frame[participant] = taken.frame  # what the next observation is about
        self.recording.frame(participant, taken)

    async def on_observation(self, participant: str, observation: Observation) -> None:
        """The analysis of ``participant``'s camera came back (``calls.Calls`` routes the pool's
        results here)."""
        camera = self.cameras.get(participant)
        if camera is not None and self.analysis is not None:
            analysed = self.analysis.analysed(self.source_key(participant), observation)
            if analysed is not None:
                camera.learned(analysed)
                self.evidence_seen[participant] = (analysed.sample.picture, observation)
        await self.handle(observation)
        self._pump(participant)
        await self.handle(Tick(self.tick_time()))  # work held back for this frame fires now

    async def on_analysis_failed(self, participant: str, detail: str) -> None:
        await self.handle(AnalysisFailed(self.now(), participant, detail))
        self._pump(participant)

    def evidence_jpeg(self, source: str) -> bytes | None:
        """The frame behind the latest analysis of ``source`` as JPEG (the console's evidence), each
        face boxed and labelled from its observation as replay's evidence is
        (``monitor.analysis.evidence``); a frame whose analysis has not come back yet, unboxed."""
        seen = self.evidence_seen.get(source)
        if seen is not None:
            picture, observation = seen
            title = f"{source}  call t={observation.t:.2f}s"
            bgr = cv2.cvtColor(picture.rgb(), cv2.COLOR_RGB2BGR)
            image = annotate_observation(bgr, observation, title)
        elif (frame := self.analysed_frame.get(source)) is not None:
            image = frame.to_ndarray(format="bgr24")
        else:
            return None
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return bytes(data) if ok else None

    # ---- staff ---------------------------------------------------------------------------------
    async def staff_pause(self, note: str = "", staff: str = "") -> None:
        await self.handle(StaffPause(self.now(), note, staff))

    async def staff_resume(self, staff: str = "") -> None:
        """An approval to resume; nothing to approve unless paused (an approval queued while the
        call moved to a new relay worker may find it carried over without the pause it approved)."""
        if self.state is State.PAUSED:
            await self.handle(StaffResume(self.now(), staff))

    async def staff_end(self, note: str = "", staff: str = "") -> None:
        await self.handle(StaffEnd(self.now(), note, staff))

    async def staff_confirm_identity(
        self, source: str, track: int, participant: str, staff: str = ""
    ) -> None:
        """Staff say face ``track`` of ``source`` is ``participant``; RefusedEvent when it cannot apply."""
        await self.handle(StaffConfirmIdentity(self.now(), source, track, participant, staff), refusable=True)

    async def staff_reject_identity(self, source: str, track: int, staff: str = "") -> None:
        """Staff say face ``track`` of ``source`` is nobody booked; RefusedEvent when it cannot apply."""
        await self.handle(StaffRejectIdentity(self.now(), source, track, staff), refusable=True)

    # ---- faults of the server ------------------------------------------------------------------
    async def fault(self, reason: Reason, detail: str, raised: bool) -> None:
        """A fault of the server that the call depends on (``store_error``: its audit records
        cannot be written; ``recording_error``) is raised (again: a new detail) or cleared."""
        now = self.now()
        await self.handle(FaultRaised(now, reason, detail) if raised else FaultCleared(now, reason))

    # ---- shutdown ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Release everything the call holds (idempotent; also run when the call ends)."""
        if self._ticker is not None:
            if self._ticker is not asyncio.current_task():
                self._ticker.cancel()
            self._ticker = None
        for device in list(self.devices.values()):
            await self._drop(device, announce=False)
            with contextlib.suppress(Exception):
                await device.close()
        for camera in self.cameras.values():
            camera.stop()
        await self.recording.stop()  # what failed while the recorders finished is published
        self.media.close()
        if self.analysis is not None and self.pool is not None:
            for participant in self.cameras:
                self.analysis.forget(self.source_key(participant))
            self.pool.forget_booking(self.call_id)
        self.cameras = {}


__all__ = ["ANALYSIS_HOLD_S", "TICK_S", "Call", "SessionFactory", "SessionLike", "default_session_factory"]
