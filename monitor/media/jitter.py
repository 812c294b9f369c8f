"""Loss recovery for an aiortc video receiver: never freeze behind a packet that will not come.

Theory of operation. aiortc's video ``JitterBuffer`` (capacity 512 packets) releases frames in
sequence order only, and holds everything behind a missing packet until 512 later packets have
arrived -- 5 to 15 s of 640x480 video. Its ``NackGenerator`` asks for a missing packet once, when
the gap is first seen. So when a burst is lost and the NACK or the retransmission is lost too (UDP
buffers overflow on a loaded host, exactly when keyframes burst), the receiver shows nothing for
seconds, although the sender would gladly send a fresh keyframe. aiortc peers (the tests' devices)
stall this way after a lost forwarded keyframe; browsers recover on their own.

:func:`watch_losses` wraps the buffer's ``add`` (which the receiver calls for every RTP packet):

- while no frame has come out for ``NACK_RETRY_S`` although packets keep coming, it repeats the
  NACK for the packets still missing;
- after ``HOLE_S`` it gives them up: it drops what is in front of the first frame start after the
  hole, so the buffer releases frames again, and reports the loss (``on_loss``);
- after any loss (this one, or aiortc's own overflow) VP8 delta frames are withheld until a
  keyframe arrives -- they reference the lost picture: decoding them smears the image the analysis
  sees, forwarding them corrupts every receiver -- and a PLI asks the sender for that keyframe,
  repeated every ``PLI_RETRY_S`` until it comes.

The per-packet cost is a clock read and two attribute lookups; all the rest runs only on loss.

Before any of that, packets must leave the kernel. asyncio's UDP transport reads *one* datagram per
socket per event-loop iteration, so a socket is drained no faster than the loop iterates. A busy
relay on a shared machine iterates ~100-150 times a second, below a 1 Mbit/s camera's ~150 packets
a second (video, audio, RTCP): its socket's kernel queue fills (~400 kB, seconds of delay), every
packet behind it is late or dropped, and the ICE consent checks (one try, 0.5 s timeout, RFC 7675)
fail six times in a row -- aioice then closes the connection ~30 s after it connected.
:func:`read_datagrams_in_batches` makes each wake-up read what is queued (up to
``DATAGRAM_BATCH``), as uvloop and libuv do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

#: Repeat the NACK for packets still missing when no frame came out for this long.
NACK_RETRY_S = 0.08
#: Give missing packets up (skip to the next frame start) after this long without a frame.
HOLE_S = 0.3
#: While waiting for a keyframe after a loss, ask again this often.
PLI_RETRY_S = 0.5
#: Datagrams read from one UDP socket per wake-up (a bound, so one flooded socket cannot hog the loop).
DATAGRAM_BATCH = 64


def read_datagrams_in_batches() -> None:
    """Make asyncio's UDP transports read up to ``DATAGRAM_BATCH`` queued datagrams per wake-up
    instead of one (see the module's theory). Idempotent; applies to sockets opened afterwards."""
    from asyncio import selector_events

    cls: Any = getattr(selector_events, "_SelectorDatagramTransport")  # noqa: B009 (private in typeshed)
    if getattr(cls, "_reads_in_batches", False):
        return

    def _read_ready(self: Any) -> None:
        for _ in range(DATAGRAM_BATCH):
            if self._conn_lost:
                return
            try:
                data, addr = self._sock.recvfrom(self.max_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            self._protocol.datagram_received(data, addr)

    cls._read_ready = _read_ready
    cls._reads_in_batches = True


def vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 9.1: bit 0 of the frame tag is 0 for a keyframe."""
    return bool(data) and not data[0] & 1


def _starts_frame(packet: Any, previous: Any) -> bool:
    """Whether ``packet`` is the first of a frame: its predecessor ended one (RTP marker), or its
    VP8 payload descriptor says start of partition 0 (RFC 7741 4.2: S bit set, PID 0)."""
    if previous is not None and previous.marker:
        return True
    payload = packet.payload
    return bool(payload) and bool(payload[0] & 0x10) and not payload[0] & 0x07


class LossWatch:
    """The state of one receiver's loss recovery (see the module's theory)."""

    def __init__(self, receiver: Any, on_loss: Callable[[], None] | None = None) -> None:
        self.receiver = receiver
        self.on_loss = on_loss
        self.buffer = receiver._RTCRtpReceiver__jitter_buffer
        self.real_add = getattr(self.buffer, "_unwatched_add", self.buffer.add)
        self.last_out = time.monotonic()
        self.last_nack = 0.0
        self.last_pli = float("-inf")
        self.waiting_keyframe = False
        self.skips = 0  # holes given up
        self.withheld = 0  # delta frames not passed on while waiting for a keyframe
        self.renacks = 0
        self.plis = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, packet: Any) -> tuple[bool, Any]:
        pli, frame = self.real_add(packet)
        now = time.monotonic()
        if pli:  # aiortc itself dropped packets (overflow, misorder)
            self._lost(packet.ssrc, now)
        if frame is not None:
            self.last_out = now
            if self.waiting_keyframe:
                if self._is_vp8(packet) and not vp8_keyframe(frame.data):
                    self.withheld += 1
                    self._ask_keyframe(packet.ssrc, now)
                    return False, None
                self.waiting_keyframe = False
            return False, frame
        quiet = now - self.last_out
        if quiet >= HOLE_S:
            if self._skip(packet.sequence_number):
                self.last_out = now
                self._lost(packet.ssrc, now)
        elif quiet >= NACK_RETRY_S and now - self.last_nack >= NACK_RETRY_S:
            self._renack(packet.ssrc, now)
        if self.waiting_keyframe:
            self._ask_keyframe(packet.ssrc, now)
        return False, None

    def _is_vp8(self, packet: Any) -> bool:
        codec = self.receiver._RTCRtpReceiver__codecs.get(packet.payload_type)
        return codec is not None and str(codec.mimeType).lower() == "video/vp8"

    def _skip(self, newest: int) -> bool:
        """Drop everything in front of the first frame start after the first hole (up to the
        ``newest`` sequence number); False when there is no such frame start (yet)."""
        buffer = self.buffer
        capacity, packets, origin = buffer.capacity, buffer._packets, buffer._origin
        if origin is None:
            return False
        hole = False
        previous = None
        for count in range(min(capacity, (newest - origin) % 65536 + 1)):
            packet = packets[(origin + count) % capacity]
            if packet is None:
                hole = True
            elif hole and _starts_frame(packet, previous):
                buffer.remove(count)
                self.skips += 1
                return True
            previous = packet
        return False

    def _lost(self, ssrc: int, now: float) -> None:
        self.waiting_keyframe = True
        self._ask_keyframe(ssrc, now)
        if self.on_loss is not None:
            self.on_loss()

    def _ask_keyframe(self, ssrc: int, now: float) -> None:
        if now - self.last_pli >= PLI_RETRY_S:
            self.last_pli = now
            self.plis += 1
            self._spawn(self.receiver._send_rtcp_pli(ssrc))

    def _renack(self, ssrc: int, now: float) -> None:
        self.last_nack = now
        generator = self.receiver._RTCRtpReceiver__nack_generator
        if generator is not None and generator.missing:
            self.renacks += 1
            self._spawn(self.receiver._send_rtcp_nack(ssrc, sorted(generator.missing)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(_quietly(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _quietly(work: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(Exception):  # a closing transport: nothing to ask
        await work


def watch_losses(receiver: Any, on_loss: Callable[[], None] | None = None) -> LossWatch:
    """Install loss recovery on a video ``RTCRtpReceiver`` (again: replaces the earlier watch)."""
    watch = LossWatch(receiver, on_loss)
    buffer = watch.buffer
    buffer._unwatched_add = watch.real_add
    buffer.add = watch.add
    receiver._loss_watch = watch
    return watch
