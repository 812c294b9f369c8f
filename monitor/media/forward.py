"""Forwarding received VP8 video without re-encoding it.

Theory of operation. aiortc's ``RTCRtpReceiver`` reassembles each received video frame in its jitter
buffer and hands ``(codec, encoded frame)`` to its decoder thread through a ``queue.Queue``
(``_RTCRtpReceiver__decoder_queue``). :meth:`EncodedSource.install` puts a :class:`_Tee` in place of
that queue: the bytes are published, on the event loop, to every :class:`EncodedSubscription` of
the feed, and a :class:`ForwardedVideoTrack` returns them to its ``RTCRtpSender`` as ``av.Packet`` s,
which the sender packetizes without encoding (as it does for ``MediaPlayer(decode=False)``): the
relay's cost per forwarded stream drops from a VP8 encode (~3 ms a frame) to a memcpy. aiortc's
decoder thread gets the frames only once someone reads the feed's decoded frames
(:meth:`~monitor.media.tracks.Feed.subscribe`: the analysis tap, a recorder, a console watch), starting
from a keyframe: a camera that is only forwarded is never decoded.

VP8 frames depend on earlier ones, so the receiving decoder must start from a keyframe and never
see a gap. Each pause slate is pre-encoded as a keyframe plus a ~50-byte repeat frame
(:func:`slate_packets`): switching to a slate sends its keyframe (so pausing lands on the next
frame), then repeats, with the keyframe again every ``SLATE_KEY_S`` or when the receiver asks
(PLI) -- no keyframe bursts at 15 fps while a call is paused. Resuming, a new receiver, a dropped
frame (a subscriber that fell more than ``SUBSCRIBER_LIMIT`` frames behind, or a sequence gap)
all put the track in *waiting for a keyframe*: it asks the source for one (RTCP PLI,
rate-limited), keeps sending the slate, drops delta frames, and forwards again from the first
keyframe. A PLI that the receiving side sends to our sender is passed upstream the same way: the
relay has no encoder, so only the camera can make a keyframe. Every packet is stamped from the
call's one monotonic clock, so RTP timestamps stay continuous across slate/live switches; no
renegotiation.

Losses on the way in are handled by :mod:`monitor.media.jitter` on every forwarded receiver: a hole that
retransmission did not fill within 0.3 s is given up, delta frames are withheld until a keyframe,
and the camera is asked for one -- plain aiortc would freeze the feed for 5-15 s instead.

Only VP8 is forwarded; a feed whose source uses another codec has no encoded source, and the track
falls back to the decode/re-encode path of :class:`~monitor.media.tracks.GatedVideoTrack`.
"""

from __future__ import annotations

import fractions
import functools
import threading
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from monitor.media.encoded import EncodedFollow, EncodedSubscription, follow_encoded
from monitor.media.jitter import vp8_keyframe
from monitor.media.tracks import (
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

SLATE_BITRATE = 600_000
#: A slate shown for longer is drawn again from its keyframe this often (a receiver that lost it).
SLATE_KEY_S = 2.0


@dataclass(frozen=True, slots=True)
class SlatePackets:
    """A slate as VP8: a keyframe (~11 kB), and a delta frame of skipped blocks (~50 bytes) that
    repeats the picture the keyframe drew (it never refreshes a reference with anything new, so
    repeating it does not drift)."""

    key: bytes
    repeat: bytes


def encode_slate(kind: SlateKind, starts: str = "") -> SlatePackets:
    """One slate as VP8 (tens of ms of CPU, more on a loaded machine: call it off the event loop)."""
    codec = av.CodecContext.create("libvpx", "w")
    frame = render_slate(kind, starts=starts)
    codec.width, codec.height, codec.pix_fmt = frame.width, frame.height, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.bit_rate = SLATE_BITRATE
    # static-thresh: blocks that did not change are skipped (no residual), so the second frame
    # of the same picture is a pure repeat of the first; realtime: 20-60 ms a slate here, where
    # the default (best quality) deadline took 350-800 ms for the same flat picture
    codec.options = {
        "kf-max-dist": "100000",
        "lag-in-frames": "0",
        "static-thresh": "100000",
        "deadline": "realtime",
        "cpu-used": "8",
    }
    packets: list[bytes] = []
    for pts in range(2):
        frame.pts = pts
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    assert vp8_keyframe(packets[0]) and not vp8_keyframe(packets[1])
    return SlatePackets(packets[0], packets[1])


_ENCODING = threading.Lock()


@functools.cache
def _fixed_slates() -> dict[SlateKind, SlatePackets]:
    return {kind: encode_slate(kind) for kind in SlateKind if kind is not SlateKind.STARTING}


@functools.lru_cache(maxsize=64)
def _starting_slate(starts: str) -> SlatePackets:
    return encode_slate(SlateKind.STARTING, starts)


def slate_packets(starts: str = "") -> dict[SlateKind, SlatePackets]:
    """Every slate as VP8, each encoded once per process (the starting slate once per booked start
    time, HH:MM). The first call for a new start time encodes: call it off the event loop
    (``asyncio.to_thread``), as ``monitor.call.peer.Media`` does."""
    with _ENCODING:  # calls loaded together share the encoding, not repeat it in parallel
        return {**_fixed_slates(), SlateKind.STARTING: _starting_slate(starts)}


class ForwardedVideoTrack(GatedVideoTrack):
    """A pause gate that forwards the feed's encoded frames (see the module's theory)."""

    def __init__(
        self,
        feed: Feed,
        gate: Gate,
        clock: Clock,
        slates: dict[SlateKind, VideoFrame],
        sender: RTCRtpSender | None = None,
        slate_data: dict[SlateKind, SlatePackets] | None = None,
    ) -> None:
        super().__init__(feed, gate, clock, slates)
        # the same slates as ``slates``, encoded (``slate_packets``; computed here if not given)
        self.slate_data = slate_data if slate_data is not None else slate_packets()
        self.sender = sender  # set after addTrack: its PLIs are passed upstream
        self.esub = EncodedFollow()
        self._last_seq: int | None = None  # None: waiting for a keyframe
        self.skipped = 0  # delta frames dropped while waiting for a keyframe
        self._pts = -1
        self._slate_keyed: SlateKind | None = None  # the slate whose keyframe was sent last
        self._slate_key_at = 0.0
        self.downstream_plis = 0

    def _encoded(self) -> EncodedSubscription | None:
        esub = follow_encoded(self)
        if esub.changed:
            self._last_seq = None
        return esub.sub

    def _take_downstream_pli(self) -> bool:
        """Whether the receiving side asked our sender for a keyframe (RTCP PLI/FIR) since last time."""
        attr = "_RTCRtpSender__force_keyframe"
        if self.sender is None or not getattr(self.sender, attr, False):
            return False
        setattr(self.sender, attr, False)
        self.downstream_plis += 1
        return True

    async def recv(self) -> Any:  # av.Packet, or a VideoFrame on the fallback path
        if self.readyState != "live":
            raise MediaStreamError
        sub = self._encoded()
        if self.feed.track is not None and (sub is None or sub.source.unsupported is not None):
            return await super().recv()  # a feed without encoded frames: decode/re-encode
        if self._take_downstream_pli():
            self._slate_keyed = None  # a slate starts again from its keyframe
            if sub is not None:
                sub.source.request_keyframe()  # live media: ask the source (the next keyframe)
        if sub is not None:
            if self.gate.is_open and self.feed.track is not None and not sub.source.ended:
                packet = await self._forward(sub)
                if packet is not None:
                    return packet
            if not self.gate.is_open:
                sub.clear()
        if self.feed.track is None or not self.gate.is_open:
            kind = self.gate.slate(self.feed.track is not None)
        else:
            kind = self.showing or SlateKind.WAITING  # waiting for a keyframe: keep the last slate
        self._last_seq = None
        await self._pace()
        self.showing = kind
        self.filled += 1
        return self._packet(self._slate(kind))

    def _slate(self, kind: SlateKind) -> bytes:
        """The slate's keyframe when switching to it (or again every ``SLATE_KEY_S``), else its
        ~50-byte repeat: a paused call costs the network almost nothing, and no keyframe bursts."""
        now = self.clock.elapsed()
        if self._slate_keyed is kind and now - self._slate_key_at < SLATE_KEY_S:
            return self.slate_data[kind].repeat
        self._slate_keyed, self._slate_key_at = kind, now
        return self.slate_data[kind].key

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
            self.showing = self._slate_keyed = None
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
        self.esub.close()
        super().stop()
