"""aiortc glue: incoming tracks become feeds; outgoing tracks are pause gates over feeds.

Theory of operation. Every incoming track (camera or microphone of one device) is attached to a
:class:`Feed`. Attaching starts a drain (a keep-latest ``MediaRelay`` subscription read at once), so
every track is consumed from the moment it arrives, audio too: aiortc leaks unread tracks. Each
outgoing track is a :class:`GatedVideoTrack` / :class:`GatedAudioTrack` that reads its own
``MediaRelay.subscribe(feed.track, buffered=False)`` subscription (keep-latest: a slow consumer
skips frames instead of queueing them) while its :class:`Gate` is open, and otherwise sends a
slate and silence: the slate the gate names (waiting for the booked start, the security check before
the call goes live, or "call paused"), or "the other side is not connected" when the feed has no
track. The gated tracks stamp
their own timestamps from one monotonic clock, so RTP timestamps stay continuous across switches
and no renegotiation is needed; the switch happens on the next frame the sender pulls.

Relayed frames are shared between subscribers and the encoder rewrites ``pts`` in place, so a
gate never mutates a frame it did not create: it copies (cheap for audio, ~0.3 ms for 640x480
video) when its feed is fanned out to several gates. This is the simple relay (decode,
re-encode): the benchmark's baseline, and the fallback for a camera that does not send VP8.
``monitor serve`` forwards encoded VP8 instead (:mod:`monitor.media.forward`), a drop-in replacement
of the gated video track.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from monitor.media.encoded import EncodedSource

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
SLATE_FPS = 15.0
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
SLATE_SIZE = (640, 480)
#: A stalled feed shows the waiting slate after this long without a frame.
STALL_S = 1.0

# BGR colours of the slates' backgrounds (tests check received pixels against them).
PAUSED_BGR = (40, 40, 170)  # dark red: media withheld by the security check (paused, or before live)
WAITING_BGR = (90, 60, 30)  # dark blue
STARTING_BGR = (70, 90, 40)  # dark green


class SlateKind(StrEnum):
    PAUSED = "paused"  # the call is paused
    WAITING = "waiting"  # the other side is not connected
    STARTING = "starting"  # before the booked start
    CHECKING = "checking"  # started, the first security check has not passed yet


SLATE_BGR = {
    SlateKind.PAUSED: PAUSED_BGR,
    SlateKind.WAITING: WAITING_BGR,
    SlateKind.STARTING: STARTING_BGR,
    SlateKind.CHECKING: PAUSED_BGR,
}


def slate_lines(kind: SlateKind, starts: str = "") -> tuple[str, str]:
    """The slate's two lines of text; ``starts``: the booked start (HH:MM) for the starting slate."""
    if kind is SlateKind.PAUSED:
        return "Call paused", "Security check in progress"
    if kind is SlateKind.CHECKING:
        return "Starting the call", "Security check in progress"
    if kind is SlateKind.STARTING:
        return (
            "Waiting to start",
            f"The call starts at {starts}" if starts else "The call has not started yet",
        )
    return "Please wait", "The other side is not connected"


def render_slate(kind: SlateKind, size: tuple[int, int] = SLATE_SIZE, starts: str = "") -> VideoFrame:
    """A flat slate with large text; the middle band holds the text, the borders stay flat."""
    width, height = size
    image = np.empty((height, width, 3), np.uint8)
    image[:] = SLATE_BGR[kind]
    for i, text in enumerate(slate_lines(kind, starts)):
        scale = 1.6 if i == 0 else 0.8
        thick = 3 if i == 0 else 2
        (tw, _th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = height // 2 - 10 + i * 60
        cv2.putText(
            image,
            text,
            ((width - tw) // 2, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
    return VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")


class Clock:
    """One monotonic origin for all gated tracks of a call (RTP timestamps from it never jump)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._origin = now()

    def elapsed(self) -> float:
        return self._now() - self._origin


@dataclass(frozen=True, slots=True)
class TrackStats:
    """Frames an outgoing track has sent: its feed's (``forwarded``) and slates or silence (``filled``)."""

    kind: str  # "video" or "audio"
    forwarded: int
    filled: int


@dataclass
class Gate:
    """Open while the call is live. Shared by every outgoing track of a call. ``closed_as``: the
    slate shown while it is closed (when the feed has a track, or the call has not started)."""

    is_open: bool = False
    closed_as: SlateKind = SlateKind.PAUSED

    def slate(self, connected: bool) -> SlateKind:
        """The slate to show while closed (``connected``: the feed has a track)."""
        return self.closed_as if connected or self.closed_as is SlateKind.STARTING else SlateKind.WAITING


class Feed:
    """The current incoming track of one device's camera or microphone (``None``: not connected)."""

    def __init__(self, relay: MediaRelay, kind: str, name: str) -> None:
        self.relay = relay
        self.kind = kind
        self.name = name
        self.track: MediaStreamTrack | None = None
        self.generation = 0
        self._drain: asyncio.Task[None] | None = None
        self.frames = 0  # frames received on the current track (drain)
        self.last_frame_at = 0.0
        self.encoded: EncodedSource | None = None  # the track's encoded frames (encoded.py)

    def attach(self, track: MediaStreamTrack, receiver: Any = None) -> None:
        """Take ``track`` as this feed's source and start consuming it at once. With the track's
        ``RTCRtpReceiver``, the feed also publishes the received encoded frames (forwarding)."""
        self.detach()
        self.track = track
        self.generation += 1
        self.frames = 0
        if receiver is not None:
            self.encoded = EncodedSource.install(receiver, self.kind)
        sub = self.relay.subscribe(track, buffered=False)
        self._drain = asyncio.ensure_future(self._consume(sub, track))

    def detach(self, track: MediaStreamTrack | None = None) -> None:
        if track is not None and track is not self.track:
            return  # an old connection's track ending after a reconnect
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if self.track is not None:
            self.track = None
            self.generation += 1
        self.encoded = None

    def subscribe(self) -> MediaStreamTrack | None:
        """A keep-latest subscription to the decoded frames (a forwarded feed starts decoding)."""
        if self.track is None:
            return None
        if self.encoded is not None:
            self.encoded.want_decoded()
        return self.relay.subscribe(self.track, buffered=False)

    async def follow(self, on_new_source: Callable[[], None] | None = None) -> AsyncIterator[Any]:
        """Frames of whatever track this feed currently has, across reconnects: a new track (a
        generation bump) gets a fresh keep-latest subscription (``on_new_source`` runs first); while
        no track is connected it waits. Readers (analysis tap, recorder) never hold an old track."""
        generation = -1
        sub: MediaStreamTrack | None = None
        try:
            while True:
                if generation != self.generation:
                    if sub is not None:
                        sub.stop()
                    if on_new_source is not None:
                        on_new_source()
                    sub = self.subscribe()
                    generation = self.generation
                if sub is None:
                    await asyncio.sleep(0.1)
                    continue
                try:
                    async with asyncio.timeout(0.5):  # no task per frame, unlike wait_for
                        frame = await sub.recv()
                except TimeoutError:
                    continue
                except MediaStreamError:
                    sub.stop()
                    sub = None
                    await asyncio.sleep(0.05)
                    continue
                yield frame
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    sub.stop()

    async def _consume(self, sub: MediaStreamTrack, track: MediaStreamTrack) -> None:
        try:
            while True:
                await sub.recv()
                self.frames += 1
                self.last_frame_at = time.monotonic()
        except MediaStreamError:
            if self.track is track:  # the device went away: fall back to the waiting slate
                self.track = None
                self.generation += 1
                self._drain = None
                self.encoded = None
        finally:
            sub.stop()


class _GatedTrack(MediaStreamTrack):
    """Reads ``feed`` while ``gate`` is open; otherwise produces filler. Subclasses make frames."""

    def __init__(self, feed: Feed, gate: Gate, clock: Clock) -> None:
        super().__init__()
        self.feed = feed
        self.gate = gate
        self.clock = clock
        self._sub: MediaStreamTrack | None = None
        self._generation = -1
        self.forwarded = 0
        self.filled = 0

    def _subscription(self) -> MediaStreamTrack | None:
        if self._generation != self.feed.generation:
            if self._sub is not None:
                self._sub.stop()
            self._sub = self.feed.subscribe()
            self._generation = self.feed.generation
        return self._sub

    async def _next_source_frame(self, timeout: float) -> object | None:
        sub = self._subscription()
        if sub is None:
            return None
        try:
            return await asyncio.wait_for(sub.recv(), timeout)
        except (TimeoutError, MediaStreamError):
            return None

    def stats(self) -> TrackStats:
        return TrackStats(self.kind, self.forwarded, self.filled)

    def stop(self) -> None:
        super().stop()
        if self._sub is not None:
            self._sub.stop()
            self._sub = None


class GatedVideoTrack(_GatedTrack):
    kind = "video"

    def __init__(self, feed: Feed, gate: Gate, clock: Clock, slates: dict[SlateKind, VideoFrame]) -> None:
        super().__init__(feed, gate, clock)
        self.slates = slates
        self._next_filler_at = 0.0
        self.showing: SlateKind | None = None  # what the last frame was (None: live media)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.gate.is_open and self.feed.track is not None:
            frame = await self._next_source_frame(STALL_S)
            if frame is not None and self.gate.is_open:
                assert isinstance(frame, VideoFrame)
                out = self._copy(frame)  # relayed frames are shared: stamp a copy, never the frame
                self.showing = None
                self.forwarded += 1
                return self._stamp(out)
        kind = self.gate.slate(self.feed.track is not None)
        if self.feed.track is not None and not self.gate.is_open:
            self._subscription()  # keep the subscription current; the drain consumes the feed
        await self._pace()
        self.showing = kind
        self.filled += 1
        return self._stamp(self._copy(self.slates[kind]))

    async def _pace(self) -> None:
        now = self.clock.elapsed()
        wait = self._next_filler_at - now
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_filler_at = max(now, self._next_filler_at) + 1.0 / SLATE_FPS

    @staticmethod
    def _copy(frame: VideoFrame) -> VideoFrame:
        if frame.format.name != "yuv420p":
            return frame.reformat(format="yuv420p")
        return VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")

    def _stamp(self, frame: VideoFrame) -> VideoFrame:
        frame.pts = int(self.clock.elapsed() * VIDEO_CLOCK)
        frame.time_base = VIDEO_TIME_BASE
        return frame


class GatedAudioTrack(_GatedTrack):
    kind = "audio"

    def __init__(self, feed: Feed, gate: Gate, clock: Clock) -> None:
        super().__init__(feed, gate, clock)
        self._samples = 0
        self._started: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = self.clock.elapsed()
        if self.gate.is_open and self.feed.track is not None:
            frame = await self._next_source_frame(0.1)
            if frame is not None and self.gate.is_open:
                assert isinstance(frame, AudioFrame)
                self.forwarded += 1
                return self._stamp(self._copy(frame))
        elif self.feed.track is not None:
            self._subscription()
        # silence, paced to real time
        due = self._started + self._samples / AUDIO_RATE
        wait = due - self.clock.elapsed()
        if wait > 0:
            await asyncio.sleep(wait)
        self.filled += 1
        return self._stamp(self._silence())

    @staticmethod
    def _silence() -> AudioFrame:
        samples = np.zeros((1, AUDIO_SAMPLES * 2), np.int16)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        return frame

    @staticmethod
    def _copy(frame: AudioFrame) -> AudioFrame:
        if frame.format.name != "s16" or frame.format.is_planar:
            return frame  # the decoder's output is packed s16; anything else is passed on untouched
        out = AudioFrame.from_ndarray(frame.to_ndarray().copy(), format="s16", layout=frame.layout.name)
        out.sample_rate = frame.sample_rate
        return out

    def _stamp(self, frame: AudioFrame) -> AudioFrame:
        # resample-free timestamps: samples sent so far at the frame's own rate
        rate = frame.sample_rate or AUDIO_RATE
        frame.pts = self._samples * rate // AUDIO_RATE
        frame.time_base = fractions.Fraction(1, rate)
        self._samples += frame.samples * AUDIO_RATE // rate
        return frame


def make_slates(starts: str = "") -> dict[SlateKind, VideoFrame]:
    """Every slate of a call (``starts``: its booked start, HH:MM, for the starting slate)."""
    return {kind: render_slate(kind, starts=starts) for kind in SlateKind}


class FrameTap:
    """Keep-latest tap of a video feed for analysis: ``latest()`` is the newest frame and its arrival
    time; frames in between are dropped, never queued."""

    def __init__(self, feed: Feed, on_frame: Callable[[], None], now: Callable[[], float]) -> None:
        self.feed = feed
        self._on_frame = on_frame
        self._now = now
        self._frame: VideoFrame | None = None
        self._at = 0.0
        self.seen = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def take(self) -> tuple[VideoFrame, float] | None:
        """The newest frame not yet taken (and its arrival time), or None."""
        if self._frame is None:
            return None
        frame, at = self._frame, self._at
        self._frame = None
        return frame, at

    async def _run(self) -> None:
        async for frame in self.feed.follow():
            assert isinstance(frame, VideoFrame)
            self._frame, self._at = frame, self._now()
            self.seen += 1
            self._on_frame()
