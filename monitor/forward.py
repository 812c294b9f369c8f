"""Forwarding received VP8 video without re-encoding it.

Theory of operation. aiortc's ``RTCRtpReceiver`` reassembles each received video frame in its jitter
buffer and hands ``(codec, encoded frame)`` to its decoder thread through a ``queue.Queue``
(``_RTCRtpReceiver__decoder_queue``). :meth:`EncodedSource.install` puts a :class:`_Tee` in place of
that queue: every encoded frame is still decoded by aiortc's own thread (so the decoded track, its
decode-error PLIs, the analysis tap and the recorder are unchanged), and the same bytes are also
published, on the event loop, to every :class:`EncodedSubscription` of the feed. A
:class:`ForwardedVideoTrack` returns those bytes to its ``RTCRtpSender`` as ``av.Packet`` s, which the
sender packetizes without encoding (as it does for ``MediaPlayer(decode=False)``): the relay's cost
per forwarded stream drops from a VP8 encode (~3 ms a frame) to a memcpy.

VP8 frames depend on earlier ones, so the receiving decoder must start from a keyframe and never
see a gap. The pause slates are pre-encoded VP8 *keyframes* (:func:`slate_packets`), so pausing
switches on the next frame. Resuming, a new receiver, a dropped frame (a subscriber that fell more
than ``SUBSCRIBER_LIMIT`` frames behind, or a sequence gap) all put the track in *waiting for a
keyframe*: it asks the source for one (RTCP PLI, rate-limited), keeps sending the slate, drops
delta frames, and forwards again from the first keyframe. A PLI that the receiving side sends to
our sender is passed upstream the same way. Every packet is stamped from the call's one monotonic
clock, so RTP timestamps stay continuous across slate/live switches; no renegotiation.

Only VP8 is forwarded; a feed whose source uses another codec has no encoded source, and the track
falls back to the decode/re-encode path of :class:`~monitor.relay.GatedVideoTrack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import queue
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from monitor.relay import (
    STALL_S,
    VIDEO_CLOCK,
    VIDEO_TIME_BASE,
    Clock,
    Feed,
    Gate,
    GatedVideoTrack,
    SlateKind,
    render_slate,
)

#: A subscriber further behind than this many frames loses them all and waits for a keyframe.
SUBSCRIBER_LIMIT = 8
#: At most one keyframe request upstream per this many seconds.
PLI_INTERVAL_S = 0.25
SLATE_BITRATE = 600_000


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    keyframe: bool
    seq: int  # per source, consecutive


def vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 9.1: bit 0 of the frame tag is 0 for a keyframe."""
    return bool(data) and not data[0] & 1


@functools.cache
def slate_packets() -> dict[SlateKind, bytes]:
    """Each slate as one VP8 keyframe (encoded once per process)."""
    out: dict[SlateKind, bytes] = {}
    for kind in SlateKind:
        codec = av.CodecContext.create("libvpx", "w")
        frame = render_slate(kind)
        codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "yuv420p"
        codec.time_base = fractions.Fraction(1, 30)
        codec.bit_rate = SLATE_BITRATE
        frame.pts = 0
        packets = [*codec.encode(frame), *codec.encode(None)]
        data = bytes(packets[0])
        assert vp8_keyframe(data)
        out[kind] = data
    return out


class EncodedSubscription:
    """One consumer's bounded queue of a source's encoded frames."""

    def __init__(self, source: EncodedSource) -> None:
        self.source = source
        self._items: deque[EncodedFrame] = deque()
        self._wake = asyncio.Event()
        self.overflows = 0

    def push(self, item: EncodedFrame) -> None:
        if len(self._items) >= SUBSCRIBER_LIMIT:
            self._items.clear()  # the next item's sequence gap makes the reader wait for a keyframe
            self.overflows += 1
        self._items.append(item)
        self._wake.set()

    def clear(self) -> None:
        self._items.clear()

    async def get(self, timeout: float) -> EncodedFrame | None:
        """The next frame, or None after ``timeout`` seconds or when the source ended."""
        if not self._items and not self.source.ended and timeout > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self.source.subscribers.discard(self)
        self._items.clear()


class EncodedSource:
    """The encoded frames of one received video track, fanned out to subscriptions."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self.receiver = receiver
        self.subscribers: set[EncodedSubscription] = set()
        self.seq = 0
        self.keyframes = 0
        self.ended = False
        self.unsupported: str | None = None  # codec name when the source is not VP8
        self.keyframe_requests = 0
        self.losses = 0
        self._last_pli = float("-inf")
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def install(cls, receiver: RTCRtpReceiver) -> EncodedSource:
        attr = "_RTCRtpReceiver__decoder_queue"
        current = getattr(receiver, attr)
        if isinstance(current, _Tee):
            current.source.ended = True
            current = current.real
        source = cls(receiver)
        setattr(receiver, attr, _Tee(current, source))
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        add = getattr(buffer, "_forward_add", buffer.add)

        def add_watching_losses(packet: Any) -> Any:
            pli, frame = add(packet)
            if pli:  # the buffer dropped packets: the next frame may reference a lost one
                source.lost()
            return pli, frame

        buffer._forward_add = add
        buffer.add = add_watching_losses
        return source

    def subscribe(self) -> EncodedSubscription:
        sub = EncodedSubscription(self)
        self.subscribers.add(sub)
        return sub

    def publish(self, codec: Any, data: bytes) -> None:
        if str(codec.mimeType).lower() != "video/vp8":
            self.unsupported = str(codec.mimeType)
            return
        self.seq += 1
        item = EncodedFrame(data, vp8_keyframe(data), self.seq)
        self.keyframes += item.keyframe
        for sub in self.subscribers:
            sub.push(item)

    def lost(self) -> None:
        """Frames were lost before reassembly: make a sequence gap so readers wait for a keyframe."""
        self.seq += 1
        self.losses += 1

    def end(self) -> None:
        self.ended = True
        for sub in self.subscribers:
            sub._wake.set()

    def request_keyframe(self) -> None:
        now = time.monotonic()
        if self.ended or now - self._last_pli < PLI_INTERVAL_S:
            return
        self._last_pli = now
        self.keyframe_requests += 1
        task = asyncio.ensure_future(self._send_pli())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_pli(self) -> None:
        with contextlib.suppress(Exception):  # a closing transport: nothing to ask
            for ssrc in self.receiver.getSynchronizationSources():
                await self.receiver._send_rtcp_pli(ssrc.source)


class _Tee:
    """Stands in for the receiver's decoder queue: publishes each encoded frame, then queues it for
    aiortc's decoder thread as before. ``put`` runs on the event loop, ``get`` on that thread."""

    def __init__(self, real: queue.Queue[Any], source: EncodedSource) -> None:
        self.real = real
        self.source = source

    def put(self, item: Any) -> None:
        if item is None:
            self.source.end()
        else:
            codec, encoded = item
            self.source.publish(codec, encoded.data)
        self.real.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.get(*args, **kwargs)


def receiver_of(pc: Any, track: Any) -> RTCRtpReceiver | None:
    """The receiver of a remote ``track`` on peer connection ``pc``."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    return None


class ForwardedVideoTrack(GatedVideoTrack):
    """A pause gate that forwards the feed's encoded frames (see the module's theory)."""

    def __init__(
        self,
        feed: Feed,
        gate: Gate,
        clock: Clock,
        slates: dict[SlateKind, VideoFrame],
        sender: RTCRtpSender | None = None,
    ) -> None:
        super().__init__(feed, gate, clock, slates)
        self.slate_data = slate_packets()
        self.sender = sender  # set after addTrack: its PLIs are passed upstream
        self._esub: EncodedSubscription | None = None
        self._esource: EncodedSource | None = None
        self._last_seq: int | None = None  # None: waiting for a keyframe
        self.skipped = 0  # delta frames dropped while waiting for a keyframe
        self._pts = -1

    def _encoded(self) -> EncodedSubscription | None:
        source = self.feed.encoded
        if source is not self._esource:
            if self._esub is not None:
                self._esub.close()
            self._esource = source
            self._esub = None if source is None else source.subscribe()
            self._last_seq = None
        return self._esub

    def _pass_downstream_pli(self, source: EncodedSource) -> None:
        if self.sender is None:
            return
        attr = "_RTCRtpSender__force_keyframe"
        if getattr(self.sender, attr, False):
            setattr(self.sender, attr, False)
            source.request_keyframe()

    async def recv(self) -> Any:  # av.Packet, or a VideoFrame on the fallback path
        if self.readyState != "live":
            raise MediaStreamError
        sub = self._encoded()
        if self.feed.track is not None and (sub is None or sub.source.unsupported is not None):
            return await super().recv()  # a feed without encoded frames: decode/re-encode
        if sub is not None:
            self._pass_downstream_pli(sub.source)
            if self.gate.is_open and self.feed.track is not None and not sub.source.ended:
                packet = await self._forward(sub)
                if packet is not None:
                    return packet
            if not self.gate.is_open:
                sub.clear()
        if self.feed.track is None:
            kind = SlateKind.WAITING
        elif not self.gate.is_open:
            kind = SlateKind.PAUSED
        else:
            kind = self.showing or SlateKind.WAITING  # waiting for a keyframe: keep the last slate
        self._last_seq = None
        await self._pace()
        self.showing = kind
        self.filled += 1
        return self._packet(self.slate_data[kind])

    async def _forward(self, sub: EncodedSubscription) -> av.Packet | None:
        """The next frame to forward, or None when a slate is due instead."""
        if self._last_seq is None:
            sub.source.request_keyframe()
            until = max(self._next_filler_at, self.clock.elapsed())  # the next slate is due then
        else:
            until = self.clock.elapsed() + STALL_S
        while self.gate.is_open:
            item = await sub.get(until - self.clock.elapsed())
            if item is None:
                return None
            if (self._last_seq is None or item.seq != self._last_seq + 1) and not item.keyframe:
                self._last_seq = None
                self.skipped += 1
                sub.source.request_keyframe()
                continue
            self._last_seq = item.seq
            if not self.gate.is_open:
                return None
            self.showing = None
            self.forwarded += 1
            return self._packet(item.data)
        return None

    def _packet(self, data: bytes) -> av.Packet:
        packet = av.Packet(data)
        # strictly increasing: the receiver's jitter buffer splits frames where the timestamp changes
        self._pts = max(self._pts + 1, int(self.clock.elapsed() * VIDEO_CLOCK))
        packet.pts = self._pts
        packet.time_base = VIDEO_TIME_BASE
        return packet

    def stop(self) -> None:
        if self._esub is not None:
            self._esub.close()
            self._esub = None
        super().stop()
