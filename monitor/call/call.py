"""One live call: its seats (join tokens), devices, media gates, analysis and policy session.

Theory of operation. A :class:`Call` is made from a booking at server start. Each booked person
has a seat with a random single-call token. A device that joins a seat gets a peer connection
whose incoming camera/microphone become that seat's :class:`~monitor.media.tracks.Feed` s and whose
outgoing tracks are gated views of the other side's feeds (the prisoner receives one slot per
booked visitor; a visitor receives the prisoner). Everything that happens becomes a
``policies`` event stamped with *call time* (seconds since ``starts_at`` by the injected wall
clock), handled by the call's one ``Session``; its decisions are applied here and nowhere else:
``StateChanged`` opens or closes the shared gate (media flows only while ``live``) and is sent to
every device; warnings go to the device they concern; every decision is published to the staff
hub and appended to the live timeline. ``ended`` closes every device. A ticker feeds ``Tick`` so
windows, fail-closed timeouts and the fixed end fire even when nothing else happens; it wakes when
the session's next window ends (``Session.next_due``), not up to a tick later.

Analysed cameras are sampled with replay's cadence (``monitor/analysis/cadence.py``): 6 frames a second on
replay's grid while the call is not live or the last analysed frame was not steady, replay's calm
pace (2 a second) while it is live and steady, and at once when the picture changes (the change
gate: a person walking in). So live and replay analyse the same kind of frames, and steady calls
leave a shared worker free for the frames that matter. Whether a frame was steady comes back with
its result (``AnalysisPool.steady``); until then the busy pace applies. A frame the change gate let
through is an *alarm* and any frame of a call that is not live (its security check needs fresh
observations) is *urgent*: the pool's scheduling puts them before other waiting frames
(``monitor/workers/analysis_pool.py``). The recording of an analysed camera holds every frame on the
6 fps grid plus the analysed ones.

Recording failures (a full disk, a codec error) are not the policy's business: the policy judges
who is in view, not the archive. So a call whose recording fails goes on, and the failure is never
silent: each failed file is published once on the staff hub as ``{"kind": "recording_failed",
"source", "file", "error"}`` (the console shows it as an alert and the audit log keeps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS, THUMB_STEP, Cadence
from monitor.call.stats import CallsStats, CallStats, DeviceStats, TapStats
from monitor.hub import Hub
from monitor.media.encoded import receiver_of
from monitor.media.forward import ForwardedVideoTrack
from monitor.media.forward_audio import ForwardedAudioTrack
from monitor.media.jitter import read_datagrams_in_batches
from monitor.media.tracks import Clock, Feed, FrameTap, Gate, GatedAudioTrack, GatedVideoTrack, make_slates
from monitor.record.camera_recorder import CameraRecorder
from monitor.record.feed_recorder import FeedRecorder
from monitor.record.timeline import decision_record, encode_line
from monitor.workers.analysis_pool import AnalysisPool, frame_planes
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import Alert, Decision, State, StateChanged, WarningCleared, WarningIssued
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    Observation,
    ParticipantJoined,
    ParticipantLeft,
    Role,
    StaffEnd,
    StaffPause,
    StaffResume,
    Tick,
)
from policies.reasons import Reason
from signalling import messages

log = logging.getLogger(__name__)

TICK_S = 0.1
#: Live camera frames are ~30 fps; frames within a quarter of this of an analysis slot are on it.
FRAME_STEP_S = 1 / 30
#: Ticks hold the session clock back to the oldest frame still being analysed (at most this much),
#: so a finding is timed from the frame that showed it, not from when its analysis finished.
ANALYSIS_HOLD_S = 1.0
#: Cameras that are not analysed are archived at this rate (analysed ones: the analysed frames).
RECORD_FPS = 10.0
#: A join link works from this long before the booked start.
JOIN_EARLY_S = 15 * 60.0

EXPLAIN: dict[Reason, tuple[str, str]] = {
    # reason -> (why the call is paused, what the security check needs)
    Reason.UNBOOKED_FACE: (
        "Someone who is not booked on this call is in view.",
        "Only the people booked on the call may be in view, each with their whole face visible.",
    ),
    Reason.TOO_MANY_FACES: (
        "More people are in view than are booked on this device.",
        "Only the people booked on this device may be in view.",
    ),
    Reason.FACE_NOT_VISIBLE: (
        "A face is only partly visible or turned away.",
        "Face the camera with your whole face in the picture.",
    ),
    Reason.NO_FACE: ("Nobody is in view.", "Sit in front of the camera with your face in the picture."),
    Reason.POOR_LIGHTING: (
        "The lighting is too poor to recognise faces.",
        "Turn on a light in front of you and avoid a bright window behind you.",
    ),
    Reason.CAPTURE_ATTEMPT: (
        "A recording or screenshot attempt was detected.",
        "Stop recording or screen capture. A member of staff must approve resuming the call.",
    ),
    Reason.STAFF_PAUSE: ("A member of staff paused the call.", "A member of staff must approve resuming."),
    Reason.ANALYSIS_ERROR: (
        "The security check is not working for a moment.",
        "Please wait: the call resumes once the security check works again and passes.",
    ),
    Reason.IDENTITY_UNCONFIRMED: (
        "We cannot yet confirm that everyone in view is booked on this call.",
        "Face the camera with a light in front of you; a member of staff may check your face.",
    ),
    Reason.STORE_ERROR: (
        "The call cannot be logged for a moment.",
        "Please wait: the call resumes once the log can be written again and the security check passes.",
    ),
    Reason.RECORDING_ERROR: (
        "The call cannot be recorded for a moment.",
        "Please wait: the call resumes once the recording works again and the security check passes.",
    ),
    Reason.TIME_UP: ("The booked time is over.", ""),
    Reason.STAFF_END: ("A member of staff ended the call.", ""),
}


class SessionLike(Protocol):
    @property
    def state(self) -> State: ...

    def handle(self, event: Event) -> tuple[Decision, ...]: ...

    def next_due(self) -> float | None: ...

    def firm_pause_due(self, pending: Mapping[str, float]) -> float | None: ...


SessionFactory = Callable[[Booking, PolicyConfig], SessionLike]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def default_session_factory(booking: Booking, config: PolicyConfig) -> SessionLike:
    from policies.session import Session

    session: SessionLike = Session.for_booking(booking, config)
    return session


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Seat:
    participant: str  # booked id; also the media source name
    role: Role
    name: str
    token: str
    analysed: bool


@dataclass(eq=False)
class Device:
    """One connected device on a seat."""

    seat: Seat
    send: Send
    close: Callable[[], Awaitable[None]]
    pc: RTCPeerConnection | None = None
    tracks: list[Any] = field(default_factory=list)  # our outgoing gated tracks
    extra: list[asyncio.Task[None]] = field(default_factory=list)

    def stats(self) -> DeviceStats:
        connected = self.pc is not None and self.pc.connectionState == "connected"
        tracks = tuple(track.stats() for track in list(self.tracks))
        return DeviceStats(self.seat.participant, self.seat.role.value, connected, tracks)


class Call:
    #: Forward received VP8 and Opus without re-encoding (monitor/media/forward.py,
    #: monitor/media/forward_audio.py; video losses: monitor/media/jitter.py). False: decode and
    #: re-encode every frame (the naive relay, kept as the benchmark baseline).
    forward_video = True

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
        self.gate = Gate()
        self.clock = Clock()
        self.slates = make_slates()
        prisoner = booking.prisoner
        self.seats: dict[str, Seat] = {}
        seats = [Seat(prisoner.id, Role.PRISONER, prisoner.name, "", bool(prisoner.reference_photos))]
        seats += [Seat(v.id, Role.VISITOR, v.name, "", True) for v in booking.participants]
        for seat in seats:
            token = secrets.token_urlsafe(24)
            self.seats[token] = Seat(seat.participant, seat.role, seat.name, token, seat.analysed)
        self.video: dict[str, Feed] = {}
        self.audio: dict[str, Feed] = {}
        self.taps: dict[str, FrameTap] = {}
        self.analysed_frame: dict[str, Any] = {}  # participant -> last frame sent for analysis
        self.cadences: dict[str, Cadence] = {}  # participant -> which of its frames to analyse
        self.record_grids: dict[str, Cadence] = {}  # participant -> which of its frames to archive
        for seat in self.seats.values():
            self.video[seat.participant] = Feed(self.relay, "video", f"{seat.participant}/video")
            self.audio[seat.participant] = Feed(self.relay, "audio", f"{seat.participant}/audio")
        self.devices: dict[str, Device] = {}
        self.decisions: list[Decision] = []
        self.last_reasons: tuple[Reason, ...] = ()
        self._ticker: asyncio.Task[None] | None = None
        self._last_t = float("-inf")
        self._timeline = None
        self._recording_reported: set[str] = set()
        self.recorders: list[FeedRecorder | CameraRecorder] = []
        self.analysis_recorders: dict[str, FeedRecorder] = {}
        if record_dir is not None:
            folder = record_dir / self.call_id
            folder.mkdir(parents=True, exist_ok=True)
            self._timeline = (folder / "timeline.jsonl").open("a", encoding="utf-8")
            analysed = {s.participant for s in self.seats.values() if s.analysed and pool is not None}
            for participant in self.video:
                video, audio = self.video[participant], self.audio[participant]
                pushed = participant in analysed
                camera = FeedRecorder(
                    video, folder, f"{participant}.video", self.now, max_fps=RECORD_FPS, pushed=pushed
                )
                self.recorders.append(camera)
                # the camera as received, at full rate, for people to watch (no decoding)
                self.recorders.append(CameraRecorder(video, folder, f"{participant}.camera", self.now))
                self.recorders.append(FeedRecorder(audio, folder, f"{participant}.audio", self.now))
                if pushed:
                    self.analysis_recorders[participant] = camera
        if pool is not None:
            pool.add_booking(self.call_id, booking)
        self.ended = asyncio.Event()

    # ---- time ----------------------------------------------------------------------------------
    def now(self) -> float:
        """Call time: seconds since the booked start (negative before it)."""
        return self.wall_clock() - self.booking.starts_at.timestamp()

    @property
    def seconds_left(self) -> float:
        return self.booking.duration_s - self.now()

    @property
    def state(self) -> State:
        return self.session.state

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
            for recorder in self.recorders:
                recorder.start()

    async def _tick(self) -> None:
        while self.state is not State.ENDED:
            await self.handle(Tick(self.tick_time()))
            self.check_recording()
            await asyncio.sleep(self.tick_wait())

    def tick_wait(self) -> float:
        """Seconds until the next tick: ``TICK_S``, or sooner when the session has work due sooner
        (a window ending), so that it fires when due rather than up to a tick late."""
        due, now = self.session.next_due(), self.now()
        if due is None or due <= now:  # overdue: held back for a frame in analysis (its result ticks)
            return TICK_S
        return min(TICK_S, due - now + 0.001)

    def check_recording(self) -> None:
        """Publish each recording failure once (see the theory of operation)."""
        for recorder in self.recorders:
            for error in recorder.errors:
                self._recording_failed(recorder.name.split(".", 1)[0], recorder.name, error)

    def _recording_failed(self, source: str, what: str, error: str) -> None:
        key = f"{what}: {error}"
        if key in self._recording_reported:
            return
        self._recording_reported.add(key)
        log.error("call %s: recording %s failed: %s", self.call_id, what, error)
        record = {"kind": "recording_failed", "t": round(self.now(), 3), "source": source}
        self._keep({**record, "file": what, "error": error[:300]})

    def tick_time(self) -> float:
        """Call time for the next tick: now, or the time of the oldest frame still in analysis (held
        back at most ``ANALYSIS_HOLD_S``). Observations then arrive at or after the session's clock,
        as in replay, instead of being clamped forward by the analysis latency. The fixed end is
        never held back, nor is a due pause that no frame in analysis can prevent
        (``Session.firm_pause_due``)."""
        now = self.now()
        if self.pool is None or now >= self.booking.duration_s:
            return now
        pending = {p: t for p in self.taps if (t := self.pool.in_flight_t(self.source_key(p))) is not None}
        held = max(now - ANALYSIS_HOLD_S, min(now, min(pending.values(), default=now)))
        # ... except for a due pause that no frame in analysis can prevent: it fires when due
        firm = self.session.firm_pause_due(pending)
        return firm if firm is not None and held < firm <= now else held

    # ---- policy --------------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        """Feed one event to the session and act on its decisions. The gate and the records change
        before this first awaits, so a pause reaches the media on the very next frame."""
        if self.state is State.ENDED:
            return
        try:
            decisions = self.session.handle(event)
        except Exception:
            log.exception("call %s: session refused %r", self.call_id, event)
            return
        outgoing: list[tuple[str | None, dict[str, Any]]] = []  # (participant or None: everyone, frame)
        end: tuple[Reason, ...] | None = None
        for decision in decisions:
            self.decisions.append(decision)
            record = decision_record(decision)
            self._write_timeline(record)
            self._keep(record)
            match decision:
                case StateChanged():
                    self.gate.is_open = decision.state is State.LIVE
                    self.last_reasons = decision.reasons
                    if decision.state is State.ENDED:
                        end = decision.reasons
                    else:
                        outgoing.append((None, self.state_frame()))
                case WarningIssued():
                    frame = messages.warning(decision.reason.value, decision.guidance)
                    outgoing.append((decision.source, frame))
                case WarningCleared():
                    outgoing.append((decision.source, messages.warning_cleared(decision.reason.value)))
                case Alert():
                    pass  # staff only: published to the hub above
        for participant, frame in outgoing:
            if participant is None:
                await self._broadcast(frame)
            else:
                await self._send_to(participant, frame)
        if end is not None:
            await self._end(end)

    def _write_timeline(self, record: dict[str, Any]) -> None:
        if self._timeline is None:
            return
        try:
            self._timeline.write(encode_line(record) + "\n")
            self._timeline.flush()
        except OSError as exc:  # a full disk: staff are told, the call goes on
            with contextlib.suppress(OSError):
                self._timeline.close()
            self._timeline = None
            self._recording_failed("", "timeline.jsonl", f"{type(exc).__name__}: {exc}")

    def _presence(self, kind: str, seat: Seat, actor: str = "device") -> None:
        """A device joined or left: for staff (board, history, audit), not the timeline (the
        timeline is the policy's decisions, the same as replay's). ``actor``: ``device`` (the
        participant's device did it) or ``system`` (the server dropped the device)."""
        record = {"kind": kind, "t": round(self.now(), 3), "source": seat.participant}
        self._keep({**record, "participant": seat.participant, "role": seat.role.value, "actor": actor})

    def _keep(self, record: dict[str, Any]) -> None:
        """To the staff hub (the console audits what is published there)."""
        if self.hub is not None:
            self.hub.publish(self.call_id, record)

    def state_frame(self) -> dict[str, Any]:
        state = self.state
        reasons = list(self.last_reasons) if state in (State.PAUSED, State.ENDED) else []
        why = " ".join(EXPLAIN[r][0] for r in reasons)
        needs = " ".join(dict.fromkeys(EXPLAIN[r][1] for r in reasons if EXPLAIN[r][1]))
        if state is State.VERIFYING:
            why = "Security check before the call starts."
            needs = "Everyone booked on the call in view, each with their whole face visible."
        elif state is State.WAITING:
            why = "The call has not started yet."
        return messages.state(state.value, [r.value for r in reasons], why, needs, self.seconds_left)

    async def _send_to(self, participant: str, frame: dict[str, Any]) -> None:
        device = self.devices.get(participant)
        if device is not None:
            with contextlib.suppress(Exception):
                await device.send(frame)

    async def _broadcast(self, frame: dict[str, Any]) -> None:
        for participant in list(self.devices):
            await self._send_to(participant, frame)

    async def _end(self, reasons: tuple[Reason, ...]) -> None:
        explanation = " ".join(EXPLAIN[r][0] for r in reasons)
        await self._broadcast(messages.ended([r.value for r in reasons], explanation))
        await self.close()  # devices, analysis sources, recorders, timeline: all released
        self.ended.set()

    # ---- joins ---------------------------------------------------------------------------------
    def check_token(self, token: str) -> Seat:
        return self.check_seat(self.seats[token])

    def seat_of(self, participant: str) -> Seat | None:
        return next((s for s in self.seats.values() if s.participant == participant), None)

    def check_seat(self, seat: Seat) -> Seat:
        """The seat, if a device may join it now; else JoinRefused with the reason."""
        t = self.now()
        if self.state is State.ENDED or t >= self.booking.duration_s:
            raise JoinRefused("call_over", "this call has ended")
        if t < -JOIN_EARLY_S:
            opens = self.booking.starts_at.isoformat()
            minutes = f"{JOIN_EARLY_S / 60:.0f}"
            raise JoinRefused("too_early", f"this link works from {minutes} minutes before {opens}")
        if seat.participant in self.devices:
            raise JoinRefused("token_in_use", "this link is already in use on another device")
        return seat

    async def join(self, seat: Seat, send: Send, close: Callable[[], Awaitable[None]]) -> Device:
        device = Device(seat, send, close)
        self.devices[seat.participant] = device
        await send(self.joined_frame(seat))
        self._presence("joined", seat)
        if self.pool is not None and seat.analysed:
            self.pool.open(self.source_key(seat.participant), self.call_id, seat.participant, seat.role)
        joined = ParticipantJoined(self.now(), seat.participant, seat.role, seat.participant, seat.analysed)
        await self.handle(joined)
        await send(self.state_frame())
        return device

    def slots(self, seat: Seat) -> list[Seat]:
        """Whose media this seat receives, in transceiver order."""
        if seat.role is Role.PRISONER:
            return [s for s in self.seats.values() if s.role is Role.VISITOR]
        return [s for s in self.seats.values() if s.role is Role.PRISONER]

    def joined_frame(self, seat: Seat) -> dict[str, Any]:
        return messages.joined(
            call_id=self.call_id,
            role=seat.role.value,
            participant=seat.participant,
            name=seat.name,
            slots=[{"participant": s.participant, "name": s.name} for s in self.slots(seat)],
            state=self.state.value,
            starts_at=self.booking.starts_at.isoformat(),
            ends_at=self.booking.ends_at.isoformat(),
            seconds_left=self.seconds_left,
            ice_servers=self.ice_servers,
        )

    def stats(self) -> CallStats:
        devices = tuple(device.stats() for device in dict(self.devices).values())
        taps = tuple(TapStats(p, self.source_key(p), tap.seen) for p, tap in dict(self.taps).items())
        return CallStats(self.call_id, self.state.value, devices, taps)

    def source_key(self, participant: str) -> str:
        return f"{self.call_id}/{participant}"

    async def answer(self, device: Device, sdp: str) -> str:
        """Set up (or replace) the device's peer connection from its offer; returns the answer SDP.
        Raises ValueError with a message for the client when the offer cannot be used."""
        if device.pc is not None:
            await self._close_pc(device)
        slots = self.slots(device.seat)
        servers = [RTCIceServer(**s) for s in self.ice_servers]
        read_datagrams_in_batches()  # else a busy loop drains a socket slower than a camera fills it
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        device.pc = pc
        participant = device.seat.participant
        got: set[str] = set()

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind in got:  # a second camera/mic: consume it so it cannot leak, ignore it
                device.extra.append(asyncio.ensure_future(_drain(track)))
                return
            got.add(track.kind)
            feeds = self.video if track.kind == "video" else self.audio
            feeds[participant].attach(track, receiver_of(pc, track) if self.forward_video else None)
            if track.kind == "video" and device.seat.analysed:
                self._tap(participant)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed":
                await pc.close()

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            kinds = [t.kind for t in pc.getTransceivers()]
            need = max(1, len(slots))
            if kinds.count("video") < need or kinds.count("audio") < need:
                raise ValueError(
                    f"the offer must have {need} video and {need} audio sections "
                    f"(got {kinds.count('video')} and {kinds.count('audio')})"
                )
            for slot in slots:
                feed = self.video[slot.participant]
                video: GatedVideoTrack
                if self.forward_video:
                    video = forwarded = ForwardedVideoTrack(feed, self.gate, self.clock, self.slates)
                    forwarded.sender = pc.addTrack(video)
                else:
                    video = GatedVideoTrack(feed, self.gate, self.clock, self.slates)
                    pc.addTrack(video)
                audio_feed = self.audio[slot.participant]
                audio = (
                    ForwardedAudioTrack(audio_feed, self.gate, self.clock)
                    if self.forward_video  # forwarding covers both kinds: Opus passes through too
                    else GatedAudioTrack(audio_feed, self.gate, self.clock)
                )
                pc.addTrack(audio)
                device.tracks += [video, audio]
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._close_pc(device)
            message = str(exc) or type(exc).__name__
            raise ValueError(message[:300]) from None
        description = pc.localDescription
        assert description is not None
        return str(description.sdp)

    def _tap(self, participant: str) -> None:
        if self.pool is None or participant in self.taps:
            return
        tap = FrameTap(self.video[participant], lambda: self._pump(participant), self.now)
        self.taps[participant] = tap
        tap.start()

    def _pump(self, participant: str) -> None:
        """Keep-latest: hand the newest frame to the pool when no frame of this camera is with the
        worker and the cadence wants it (see the theory of operation); frames in between are
        dropped, never queued."""
        if self.pool is None:
            return
        key = self.source_key(participant)
        if self.pool.busy(key):
            return
        tap = self.taps.get(participant)
        item = tap.take() if tap is not None else None
        if item is None:
            return
        frame, t = item
        planes = _Planes(frame)
        live = self.state is State.LIVE
        cadence = self.cadences.setdefault(participant, Cadence(ANALYSIS_FPS, CALM_FPS))
        grid = self.record_grids.setdefault(participant, Cadence(ANALYSIS_FPS, None, None))
        gated = cadence.gated
        analyse = cadence.due(t, FRAME_STEP_S, live, planes.luma)
        alarm = live and cadence.gated > gated  # the picture changed: someone may have walked in
        if analyse and self.pool.submit(key, planes.i420(), t, urgent=not live, alarm=alarm):
            cadence.analysed(t, FRAME_STEP_S, False, None)  # steady or not: known with the result
            self.analysed_frame[participant] = frame  # what the next observation is about
        elif not grid.due(t, FRAME_STEP_S, False, planes.luma):
            return
        grid.analysed(t, FRAME_STEP_S, False, None)
        recorder = self.analysis_recorders.get(participant)
        if recorder is not None:
            try:
                recorder.push(frame, t)
            except OSError as exc:
                self._recording_failed(participant, recorder.name, f"{type(exc).__name__}: {exc}")

    def _analysed(self, participant: str, t: float) -> None:
        """The frame at ``t`` came back from analysis: the cadence learns whether it was steady."""
        cadence = self.cadences.get(participant)
        frame = self.analysed_frame.get(participant)
        if self.pool is None or cadence is None or frame is None:
            return
        steady = self.pool.steady(self.source_key(participant))
        cadence.analysed(t, FRAME_STEP_S, steady, _Planes(frame).luma)

    def evidence_jpeg(self, source: str) -> bytes | None:
        """The frame behind the latest analysis of ``source`` as JPEG (the console's evidence)."""
        frame = self.analysed_frame.get(source)
        if frame is None:
            return None
        ok, data = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, 85])
        return bytes(data) if ok else None

    async def on_observation(self, participant: str, observation: Observation) -> None:
        self._analysed(participant, observation.t)
        await self.handle(observation)
        self._pump(participant)
        await self.handle(Tick(self.tick_time()))  # work held back for this frame fires now

    async def on_analysis_failed(self, participant: str, detail: str) -> None:
        await self.handle(AnalysisFailed(self.now(), participant, detail))
        self._pump(participant)

    async def capture_attempt(self, device: Device, detail: str) -> None:
        await self.handle(CaptureAttempt(self.now(), device.seat.participant, detail))

    async def leave(self, device: Device) -> None:
        if self.devices.get(device.seat.participant) is device:
            await self._drop(device, announce=True)

    async def _drop(self, device: Device, announce: bool) -> None:
        participant = device.seat.participant
        if self.devices.get(participant) is device:
            del self.devices[participant]
        await self._close_pc(device)
        self.video[participant].detach()
        self.audio[participant].detach()
        self._presence("left", device.seat, "device" if announce else "system")
        if announce:
            await self.handle(ParticipantLeft(self.now(), participant))

    async def _close_pc(self, device: Device) -> None:
        for track in device.tracks:
            track.stop()
        device.tracks = []
        for task in device.extra:
            task.cancel()
        device.extra = []
        if device.pc is not None:
            pc, device.pc = device.pc, None
            with contextlib.suppress(Exception):
                await pc.close()

    # ---- staff ---------------------------------------------------------------------------------
    async def staff_pause(self, note: str = "", staff: str = "") -> None:
        await self.handle(StaffPause(self.now(), note, staff))

    async def staff_resume(self, staff: str = "") -> None:
        await self.handle(StaffResume(self.now(), staff))

    async def staff_end(self, note: str = "", staff: str = "") -> None:
        await self.handle(StaffEnd(self.now(), note, staff))

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
        for tap in self.taps.values():
            tap.stop()
        for recorder in self.recorders:
            await recorder.stop()
        self.check_recording()  # what failed while the recorders finished
        self.recorders = []
        self.analysis_recorders = {}
        for feed in (*self.video.values(), *self.audio.values()):
            feed.detach()
        if self.pool is not None:
            for participant in self.taps:
                self.pool.close(self.source_key(participant))
            self.pool.forget_booking(self.call_id)
        self.taps = {}
        if self._timeline is not None:
            with contextlib.suppress(OSError):
                self._timeline.close()
            self._timeline = None


class _Planes:
    """A decoded frame's I420 planes, converted once and only if asked for, and its luma thumbnail
    (the change gate's, ``monitor/analysis/cadence.py``)."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self._planes: Any = None

    def i420(self) -> Any:
        if self._planes is None:
            self._planes = frame_planes(self.frame)
        return self._planes

    def luma(self) -> Any:
        return self.i420()[: self.frame.height : THUMB_STEP, ::THUMB_STEP]


async def _drain(track: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            await track.recv()


#: Resolves a join token the calls do not know (the store's): (call, participant) or JoinRefused.
Resolver = Callable[[str], tuple[Call, str]]


class Calls:
    """Every call the server knows, by call id and by join token. Tokens that no call holds in
    memory go to ``resolver`` (``monitor serve`` asks the store, loading the call if needed)."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self.by_id: dict[str, Call] = {}
        self.by_token: dict[str, Call] = {}
        self.resolver = resolver
        self._pending: set[asyncio.Future[None]] = set()
        self.admission: Any = None  # capacity hook: monitor.call.admission.Admission (None: no limit)

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def add(self, call: Call, *, own_tokens: bool = True) -> None:
        """``own_tokens``: the call's in-memory seat tokens join it (a server without a store);
        False: only tokens the resolver accepts do (the store's, which can be revoked)."""
        if call.call_id in self.by_id:
            raise ValueError(f"two bookings have the same call_id {call.call_id!r}")
        self.by_id[call.call_id] = call
        for token in call.seats if own_tokens else ():
            self.by_token[token] = call

    def get(self, call_id: str) -> Call | None:
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

    def __iter__(self) -> Any:
        return iter(list(self.by_id.values()))

    def seat_for(self, token: str) -> tuple[Call, Seat]:
        call, seat = self._seat_for(token)
        if self.admission is not None:  # capacity hook: a call may not start over capacity
            from monitor.call.admission import OverCapacity

            running = [c.call_id for c in self.by_id.values() if c.devices and not c.ended.is_set()]
            try:
                self.admission.admit(call.call_id, running)
            except OverCapacity as exc:
                raise JoinRefused(exc.code, exc.message) from None
        return call, seat

    def _seat_for(self, token: str) -> tuple[Call, Seat]:
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

    def on_result(self, key: str, observation: Observation, spent: float) -> None:
        call_id, _, participant = key.rpartition("/")
        call = self.by_id.get(call_id)
        if call is not None:
            self._later(call.on_observation(participant, observation))

    def on_failure(self, key: str, detail: str) -> None:
        call_id, _, participant = key.rpartition("/")
        call = self.by_id.get(call_id)
        if call is not None:
            self._later(call.on_analysis_failed(participant, detail))

    async def close(self) -> None:
        for call in self:
            await call.close()

    # the staff console's CallControl
    def is_running(self, call_id: str) -> bool:
        call = self.by_id.get(call_id)
        return call is not None and call.state is not State.ENDED

    def _call(self, call_id: str) -> Call:
        call = self.by_id.get(call_id)
        if call is None:
            raise KeyError(f"no running call {call_id!r}")
        return call

    def staff_pause(self, call_id: str, staff: str, note: str) -> Awaitable[None]:
        return self._call(call_id).staff_pause(note, staff)

    def staff_resume(self, call_id: str, staff: str) -> Awaitable[None]:
        return self._call(call_id).staff_resume(staff)

    def staff_end(self, call_id: str, staff: str, note: str) -> Awaitable[None]:
        return self._call(call_id).staff_end(note, staff)
