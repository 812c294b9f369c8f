"""A call's media routing: each device's peer connection, what it sends and what it receives.

Theory of operation. Every seat's camera and microphone are a :class:`~monitor.media.tracks.Feed`
each, made with the call and attached when the device's tracks arrive. A device's offer gets an
answer (:meth:`Media.answer`) whose outgoing tracks are gated views of the feeds of the seats it
receives (``seats.slots``: the prisoner one slot per visitor, a visitor the prisoner), all behind
the call's one :class:`~monitor.media.tracks.Gate` (media flows only while the call is live) and
on one clock. With ``forward`` (``monitor serve``) received VP8 and Opus are passed on without
re-encoding (``monitor/media/forward.py``, ``forward_audio.py``; video losses:
``monitor/media/jitter.py``); without, every frame is decoded and re-encoded (the naive relay,
kept as the benchmark baseline). A second camera or microphone of one device is consumed and
ignored (aiortc leaks unread tracks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from monitor.call.handle import Send
from monitor.call.seats import Seat
from monitor.call.stats import DeviceStats
from monitor.media.encoded import receiver_of
from monitor.media.forward import ForwardedVideoTrack, SlatePackets, slate_packets
from monitor.media.forward_audio import ForwardedAudioTrack
from monitor.media.jitter import read_datagrams_in_batches
from monitor.media.tracks import (
    Clock,
    Feed,
    Gate,
    GatedAudioTrack,
    GatedVideoTrack,
    SlateKind,
    make_slates,
)


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


class Media:
    """The feeds of every seat, the gate, and the peer connections of the devices."""

    def __init__(
        self, relay: MediaRelay, participants: Iterable[str], *, forward: bool = True, starts: str = ""
    ) -> None:
        """``starts``: the booked start (HH:MM) the slate before the start shows."""
        self.forward = forward
        self.gate = Gate(closed_as=SlateKind.STARTING)
        self.clock = Clock()
        self.starts = starts
        self.slates = make_slates(starts)
        self._encoded: asyncio.Future[dict[SlateKind, SlatePackets]] | None = None
        self.video: dict[str, Feed] = {}
        self.audio: dict[str, Feed] = {}
        for participant in participants:
            self.video[participant] = Feed(relay, "video", f"{participant}/video")
            self.audio[participant] = Feed(relay, "audio", f"{participant}/audio")

    async def encoded_slates(self) -> dict[SlateKind, SlatePackets]:
        """The slates as VP8 for forwarded video, encoded once, in a thread (encoding one takes a
        few hundred ms: never on the event loop). The call starts this early (``Call.start``)."""
        if self._encoded is None:
            self._encoded = asyncio.ensure_future(asyncio.to_thread(slate_packets, self.starts))
        return await asyncio.shield(self._encoded)

    async def answer(
        self,
        device: Device,
        sdp: str,
        slots: list[Seat],
        ice_servers: list[dict[str, Any]],
        on_camera: Callable[[], None],
    ) -> str:
        """Set up (or replace) the device's peer connection from its offer; returns the answer SDP.
        ``on_camera``: the device's camera arrived (it is its seat's video feed from now on).
        Raises ValueError with a message for the client when the offer cannot be used."""
        if device.pc is not None:
            await self.hang_up(device)
        servers = [RTCIceServer(**s) for s in ice_servers]
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
            feeds[participant].attach(track, receiver_of(pc, track) if self.forward else None)
            if track.kind == "video":
                on_camera()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed":
                await pc.close()

        try:
            encoded = await self.encoded_slates() if self.forward else None
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            kinds = [t.kind for t in pc.getTransceivers()]
            need = max(1, len(slots))
            if kinds.count("video") < need or kinds.count("audio") < need:
                raise ValueError(
                    f"the offer must have {need} video and {need} audio sections "
                    f"(got {kinds.count('video')} and {kinds.count('audio')})"
                )
            for slot in slots:
                device.tracks += self._outgoing(pc, slot.participant, encoded)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.hang_up(device)
            message = str(exc) or type(exc).__name__
            raise ValueError(message[:300]) from None
        description = pc.localDescription
        assert description is not None
        return str(description.sdp)

    def _outgoing(
        self, pc: RTCPeerConnection, participant: str, encoded: dict[SlateKind, SlatePackets] | None
    ) -> list[Any]:
        """The gated video and audio of ``participant`` added to ``pc`` (``encoded``: the slates
        as VP8, for forwarded video)."""
        feed, audio_feed = self.video[participant], self.audio[participant]
        video: GatedVideoTrack
        if self.forward:
            video = forwarded = ForwardedVideoTrack(
                feed, self.gate, self.clock, self.slates, slate_data=encoded
            )
            forwarded.sender = pc.addTrack(video)
        else:
            video = GatedVideoTrack(feed, self.gate, self.clock, self.slates)
            pc.addTrack(video)
        audio = (
            ForwardedAudioTrack(audio_feed, self.gate, self.clock)
            if self.forward  # forwarding covers both kinds: Opus passes through too
            else GatedAudioTrack(audio_feed, self.gate, self.clock)
        )
        pc.addTrack(audio)
        return [video, audio]

    async def hang_up(self, device: Device) -> None:
        """Stop the device's outgoing tracks and close its peer connection (idempotent)."""
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

    def detach(self, participant: str) -> None:
        """The participant's device is gone: its feeds show the waiting slate until the next one."""
        self.video[participant].detach()
        self.audio[participant].detach()

    def close(self) -> None:
        for feed in (*self.video.values(), *self.audio.values()):
            feed.detach()


async def _drain(track: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            await track.recv()


__all__ = ["Device", "Media"]
