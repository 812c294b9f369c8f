"""Forwarding received Opus audio without decoding or re-encoding it.

Theory of operation. The microphone's receiver publishes its encoded Opus packets through the same
:class:`~monitor.media.encoded.EncodedSource` tee as video (``Feed.attach`` installs it for both kinds).
A :class:`ForwardedAudioTrack` hands each packet to its ``RTCRtpSender`` as an ``av.Packet``, which
the sender sends as it is (aiortc's ``OpusEncoder.pack``): no decoder and no encoder run for a
forwarded microphone -- the decode/re-encode audio path costs the relay more CPU per call than
forwarding all of its video. Every Opus packet stands alone, so unlike VP8 there are no keyframes
to wait for: a pause or resume switches on the next packet.

While the gate is closed, while nobody is connected, or while the microphone is late (a packet
more than ``LATE_S`` after it was due), the track sends :data:`OPUS_SILENCE`, paced to real time
from the call's clock. RTP timestamps count the samples actually sent (each packet's duration
read from its TOC byte), so they stay continuous across switches without renegotiation, exactly
as the decoded :class:`~monitor.media.tracks.GatedAudioTrack` does. A microphone that does not send Opus
has no usable encoded source and falls back to that decoded path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError

from monitor.media.encoded import EncodedFollow, follow_encoded
from monitor.media.tracks import (
    AUDIO_RATE,
    AUDIO_SAMPLES,
    AUDIO_TIME_BASE,
    Clock,
    Feed,
    Gate,
    GatedAudioTrack,
)

#: One 20 ms Opus frame of silence (TOC 0xf8: CELT-only, fullband, 20 ms, mono, one frame; its
#: payload 0xff 0xfe decodes to digital silence). Stereo receivers upmix it.
OPUS_SILENCE = b"\xf8\xff\xfe"
#: A microphone packet this late (after its slot) is replaced by silence for that slot.
LATE_S = 0.06

# Samples per Opus frame at 48 kHz by TOC configuration (RFC 6716 section 3.1).
_SILK = (480, 960, 1920, 2880)  # configs 0-11: 10, 20, 40, 60 ms
_HYBRID = (480, 960)  # configs 12-15: 10, 20 ms
_CELT = (120, 240, 480, 960)  # configs 16-31: 2.5, 5, 10, 20 ms
_MAX_SAMPLES = 5760  # an Opus packet lasts at most 120 ms


def opus_samples(packet: bytes) -> int:
    """How many 48 kHz samples one Opus packet holds, from its TOC byte (and frame count byte);
    20 ms for an empty or unreadable packet."""
    if not packet:
        return AUDIO_SAMPLES
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        per_frame = _SILK[config % 4]
    elif config < 16:
        per_frame = _HYBRID[config % 2]
    else:
        per_frame = _CELT[config % 4]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = packet[1] & 0x3F if len(packet) > 1 else 0
    samples = per_frame * frames
    return samples if 0 < samples <= _MAX_SAMPLES else AUDIO_SAMPLES


class ForwardedAudioTrack(GatedAudioTrack):
    """A pause gate that forwards the microphone's Opus packets (see the module's theory)."""

    def __init__(self, feed: Feed, gate: Gate, clock: Clock) -> None:
        super().__init__(feed, gate, clock)
        self.esub = EncodedFollow()

    async def recv(self) -> Any:  # av.Packet, or an AudioFrame on the fallback path
        if self.readyState != "live":
            raise MediaStreamError
        sub = follow_encoded(self).sub
        if self.feed.track is not None and (sub is None or sub.source.unsupported is not None):
            return await super().recv()  # a microphone without usable encoded packets: decode/re-encode
        if self._started is None:
            self._started = self.clock.elapsed()
        due = self._started + self._samples / AUDIO_RATE
        if sub is not None:
            if self.gate.is_open and self.feed.track is not None and not sub.source.ended:
                item = await sub.get(due + LATE_S - self.clock.elapsed())
                if item is not None and self.gate.is_open:
                    self.forwarded += 1
                    return self._packet(item.data)
            if not self.gate.is_open:
                sub.clear()  # nothing said while paused is ever sent later
        wait = due - self.clock.elapsed()
        if wait > 0:
            await asyncio.sleep(wait)
        self.filled += 1
        return self._packet(OPUS_SILENCE)

    def _packet(self, data: bytes) -> av.Packet:
        packet = av.Packet(data)
        packet.pts = self._samples
        packet.time_base = AUDIO_TIME_BASE
        self._samples += opus_samples(data)
        return packet

    def stop(self) -> None:
        self.esub.close()
        super().stop()


__all__ = ["LATE_S", "OPUS_SILENCE", "ForwardedAudioTrack", "opus_samples"]
