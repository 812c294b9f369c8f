"""The encoded frames of a received track, fanned out to the tracks that forward them.

Theory of operation. aiortc's ``RTCRtpReceiver`` reassembles each received frame in its jitter
buffer and hands ``(codec, encoded frame)`` to its decoder thread through a ``queue.Queue``.
:meth:`EncodedSource.install` puts a :class:`_Tee` in place of that queue
(``monitor/media/patches.py``): the bytes are published, on the event loop, to every
:class:`EncodedSubscription` of the source (bounded: a subscriber more than ``SUBSCRIBER_LIMIT``
frames behind loses them and waits for a keyframe), and aiortc's decoder thread gets them only
once someone wants decoded frames (:meth:`EncodedSource.want_decoded`), from a keyframe on.
Losses before reassembly are handled by :mod:`monitor.media.jitter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpReceiver

from monitor.media.jitter import vp8_keyframe, watch_losses

#: A subscriber further behind than this many frames loses them all and waits for a keyframe.
SUBSCRIBER_LIMIT = 8
#: The codec forwarded per kind of track; other codecs fall back to decode/re-encode.
FORWARDED_CODEC = {"video": "video/vp8", "audio": "audio/opus"}
#: At most one keyframe request upstream per this many seconds.
PLI_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    keyframe: bool
    seq: int  # per source, consecutive


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
                async with asyncio.timeout(timeout):  # no task per frame, unlike wait_for
                    await self._wake.wait()
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self.source.subscribers.discard(self)
        self._items.clear()


class EncodedSource:
    """The encoded frames of one received video track, fanned out to subscriptions."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str = "video") -> None:
        self.receiver = receiver
        self.kind = kind  # "video" (VP8: keyframes matter) or "audio" (Opus: every packet stands alone)
        self.subscribers: set[EncodedSubscription] = set()
        self.seq = 0
        self.keyframes = 0
        self.ended = False
        self.unsupported: str | None = None  # codec name when the source is not VP8 (not Opus for audio)
        self.keyframe_requests = 0
        self.losses = 0
        #: aiortc's decoder thread gets frames only once someone reads decoded frames (analysis,
        #: recorder, a console watch): forwarding alone needs no decoding.
        self.decoding = False
        self._decode_wanted = False
        self._last_pli = float("-inf")
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def install(cls, receiver: RTCRtpReceiver, kind: str = "video") -> EncodedSource:
        attr = "_RTCRtpReceiver__decoder_queue"
        current = getattr(receiver, attr)
        if isinstance(current, _Tee):
            current.source.ended = True
            current = current.real
        source = cls(receiver, kind)
        setattr(receiver, attr, _Tee(current, source))
        if kind == "video":  # aiortc retransmits video only; a lost Opus packet is just a short gap
            watch_losses(receiver, on_loss=source.lost)
        return source

    def want_decoded(self) -> None:
        """Start feeding aiortc's decoder (from the next keyframe: VP8 cannot start elsewhere)."""
        if not self.decoding and not self._decode_wanted:
            self._decode_wanted = True
            if self.kind == "video":
                self.request_keyframe()

    def should_decode(self, keyframe: bool) -> bool:
        if not self.decoding and self._decode_wanted:
            if keyframe or self.unsupported is not None:
                self.decoding = True
            else:
                self.request_keyframe()  # rate-limited: asks again if the first request was lost
        return self.decoding or self.unsupported is not None

    def subscribe(self) -> EncodedSubscription:
        sub = EncodedSubscription(self)
        self.subscribers.add(sub)
        return sub

    def publish(self, codec: Any, data: bytes) -> bool:
        """Fan a received frame out; True if it is a keyframe."""
        if str(codec.mimeType).lower() != FORWARDED_CODEC[self.kind]:
            self.unsupported = str(codec.mimeType)
            return False
        self.seq += 1
        item = EncodedFrame(data, vp8_keyframe(data) if self.kind == "video" else True, self.seq)
        self.keyframes += item.keyframe
        for sub in self.subscribers:
            sub.push(item)
        return item.keyframe

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
    aiortc's decoder thread, as aiortc does without the tee. ``put`` runs on the event loop, ``get``
    on that thread."""

    def __init__(self, real: queue.Queue[Any], source: EncodedSource) -> None:
        self.real = real
        self.source = source

    def put(self, item: Any) -> None:
        if item is None:
            self.source.end()
            self.real.put(item)
            return
        codec, encoded = item
        if self.source.should_decode(self.source.publish(codec, encoded.data)):
            self.real.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.get(*args, **kwargs)


@dataclass(slots=True)
class EncodedFollow:
    """A gated track's subscription to its feed's current encoded source (a reconnect replaces the
    source: the old subscription is closed and a new one taken)."""

    source: EncodedSource | None = None
    sub: EncodedSubscription | None = None
    changed: bool = False  # the last follow_encoded() switched sources

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
        self.source = self.sub = None


def follow_encoded(track: Any) -> EncodedFollow:
    """Bring ``track.esub`` (an :class:`EncodedFollow`) up to ``track.feed.encoded``."""
    esub: EncodedFollow = track.esub
    source = track.feed.encoded
    esub.changed = source is not esub.source
    if esub.changed:
        esub.close()
        esub.source = source
        esub.sub = None if source is None else source.subscribe()
    return esub


def receiver_of(pc: Any, track: Any) -> RTCRtpReceiver | None:
    """The receiver of a remote ``track`` on peer connection ``pc``."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    return None
