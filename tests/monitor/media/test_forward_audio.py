"""Forwarding Opus audio without decoding or re-encoding (monitor/media/forward_audio.py), real aiortc peers.

sender (a 440 Hz tone) --(WebRTC)--> relay in: Feed + EncodedSource --> ForwardedAudioTrack
--(WebRTC)--> receiver, which decodes what it gets: the tone while the gate is open, silence while
it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.codecs import opus
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from monitor.media.encoded import receiver_of
from monitor.media.forward_audio import OPUS_SILENCE, ForwardedAudioTrack, opus_samples
from monitor.media.tracks import AUDIO_RATE, Clock, Feed, Gate
from signalling.client import ToneTrack, connect_peers, loopback_peer

TONE_HZ = 440.0


class Loudness:
    """Reads a received audio track; keeps the RMS of each decoded frame."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.levels: list[float] = []
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                samples = frame.to_ndarray().astype(float)
                self.levels.append(float(np.sqrt((samples**2).mean())))

    async def until(self, loud: bool, timeout: float = 5.0) -> None:
        """Until ten frames in a row are loud (the tone) or quiet (silence)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.levels[-10:]
            if len(last) == 10 and all((level > 1000) if loud else (level < 10) for level in last):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {'tone' if loud else 'silence'} within {timeout} s: {self.levels[-10:]}")


@pytest.fixture
def encoders(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """ids of every OpusEncoder that encoded a frame (the relay's must never be one of them)."""
    used: set[int] = set()
    real = opus.OpusEncoder.encode

    def encode(self: Any, frame: Any, force_keyframe: bool = False) -> Any:
        used.add(id(self))
        return real(self, frame, force_keyframe)

    monkeypatch.setattr(opus.OpusEncoder, "encode", encode)
    return used


@pytest.fixture
async def chain() -> AsyncIterator[dict[str, Any]]:
    feed = Feed(MediaRelay(), "audio", "v1/audio")
    sender, relay_in, relay_out, receiver = loopback_peer(), loopback_peer(), loopback_peer(), loopback_peer()
    sender.addTrack(ToneTrack())
    relay_in.on("track", lambda track: feed.attach(track, receiver_of(relay_in, track)))
    gate = Gate()
    forwarded = ForwardedAudioTrack(feed, gate, Clock())
    relay_sender = relay_out.addTrack(forwarded)
    heard: list[Loudness] = []
    receiver.on("track", lambda track: heard.append(Loudness(track)))
    await connect_peers(sender, relay_in)
    await connect_peers(relay_out, receiver)
    yield {"gate": gate, "feed": feed, "track": forwarded, "heard": heard, "relay_sender": relay_sender}
    for peer in (sender, relay_in, relay_out, receiver):
        await peer.close()
    for loudness in heard:
        loudness.task.cancel()


async def test_forwards_the_microphone_without_decoding_or_encoding_and_silence_while_paused(
    chain: dict[str, Any], encoders: set[int]
) -> None:
    gate, feed, track = chain["gate"], chain["feed"], chain["track"]
    await asyncio.sleep(0.5)
    (heard,) = chain["heard"]
    await heard.until(loud=False)
    for _ in range(2):  # open, close, open: each switch lands, by what the receiver hears
        gate.is_open = True
        await heard.until(loud=True)
        gate.is_open = False
        await heard.until(loud=False)
    gate.is_open = True
    await heard.until(loud=True)
    assert feed.encoded is not None and feed.encoded.kind == "audio" and feed.encoded.seq > 50
    assert feed.encoded.unsupported is None
    assert not feed.encoded.decoding  # nobody read decoded audio: the relay never decoded it
    assert track.forwarded > 50 and track.filled > 20
    relay_encoder = getattr(chain["relay_sender"], "_RTCRtpSender__encoder", None)
    assert relay_encoder is not None and id(relay_encoder) not in encoders  # only packets were sent
    assert encoders  # ... while the sender's microphone did encode (the spy works)


async def test_a_reader_of_decoded_audio_gets_it_while_forwarding_goes_on(chain: dict[str, Any]) -> None:
    gate, feed = chain["gate"], chain["feed"]
    gate.is_open = True
    await asyncio.sleep(0.5)
    (heard,) = chain["heard"]
    await heard.until(loud=True)
    sub = feed.subscribe()  # a recorder or a console watch
    assert sub is not None
    frame = await asyncio.wait_for(sub.recv(), 3.0)
    assert isinstance(frame, av.AudioFrame) and frame.samples > 0
    assert feed.encoded is not None and feed.encoded.decoding
    await heard.until(loud=True)
    sub.stop()


async def test_a_microphone_that_goes_away_gives_silence_at_the_same_pace(chain: dict[str, Any]) -> None:
    gate, feed, track = chain["gate"], chain["feed"], chain["track"]
    gate.is_open = True
    await asyncio.sleep(0.5)
    (heard,) = chain["heard"]
    await heard.until(loud=True)
    feed.detach()
    await heard.until(loud=False)
    before, started = track.filled, time.monotonic()
    await asyncio.sleep(1.0)
    rate = (track.filled - before) / (time.monotonic() - started)
    assert 40 <= rate <= 60  # 20 ms packets, paced to real time


def test_the_silence_packet_decodes_to_20_ms_of_silence() -> None:
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout = AUDIO_RATE, "stereo"
    frames = decoder.decode(av.Packet(OPUS_SILENCE))
    assert sum(f.samples for f in frames) == 960 == opus_samples(OPUS_SILENCE)
    assert all(not np.any(f.to_ndarray()) for f in frames)


@pytest.mark.parametrize("duration_ms", ["10", "20", "40", "60"])
def test_packet_durations_are_read_from_real_opus_packets(duration_ms: str) -> None:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = AUDIO_RATE, "mono", "s16"
    encoder.options = {"frame_duration": duration_ms, "application": "voip"}
    samples = AUDIO_RATE * int(duration_ms) // 1000
    packets = []
    for i in range(12):
        t = (i * 960 + np.arange(960)) / AUDIO_RATE
        wave = (8000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(wave, format="s16", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, i * 960
        packets += encoder.encode(frame)
    assert packets
    assert {opus_samples(bytes(p)) for p in packets} == {samples}


def test_unreadable_packets_count_as_20_ms() -> None:
    assert opus_samples(b"") == 960
    assert opus_samples(bytes([0x03])) == 960  # code 3 without its frame-count byte
    assert opus_samples(bytes([0x03, 0x00])) == 960  # zero frames
