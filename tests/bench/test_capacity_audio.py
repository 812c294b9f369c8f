"""The capacity load generator's microphone: pre-encoded speech-like Opus, sent like a device's."""

from __future__ import annotations

import asyncio
import time

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from bench.loadgen import _make_opus_track, encode_speech
from monitor.media.forward_audio import opus_samples


def decoded(packets: list[bytes]) -> np.ndarray:
    decoder = OpusDecoder()
    samples = []
    for i, packet in enumerate(packets):
        for frame in decoder.decode(JitterFrame(packet, i * 960)):
            assert isinstance(frame, av.AudioFrame)
            samples.append(frame.to_ndarray().reshape(-1, 2)[:, 0])
    return np.concatenate(samples).astype(float)


def test_speech_is_20_ms_opus_packets_with_syllables_and_pauses() -> None:
    packets = encode_speech(seconds=4.0)
    assert len(packets) == 200 and {opus_samples(p) for p in packets} == {960}
    audio = decoded(packets)
    rms = np.sqrt(np.mean(audio.reshape(-1, 960) ** 2, axis=1))  # per 20 ms packet
    t = np.arange(len(rms)) * 0.02
    pause = (t % 2.0 >= 1.65) & (t % 2.0 < 1.95)
    voiced = rms[~pause]
    assert rms[pause].max() < 0.05 * voiced.max()  # the pauses are (near) silent
    assert np.percentile(voiced, 90) > 1000  # loud syllables ...
    assert np.percentile(voiced, 10) < 0.3 * np.percentile(voiced, 90)  # ... that come and go
    spectrum = np.abs(np.fft.rfft(audio[:48_000]))
    peak_hz = np.argmax(spectrum[1:]) + 1  # 1 s of audio: one bin per hertz
    assert 100 <= peak_hz <= 250, peak_hz  # a voice's pitch, not a tone at 440 Hz


async def test_a_peer_receives_the_packets_at_50_a_second(loopback_ice: None) -> None:
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got: list[float] = []
    done = asyncio.Event()

    async def count(track: object) -> None:
        while len(got) < 100:
            await track.recv()  # type: ignore[attr-defined]
            got.append(time.monotonic())
        done.set()

    receiver.on("track", lambda track: asyncio.ensure_future(count(track)))
    try:
        sender.addTrack(_make_opus_track(encode_speech(seconds=1.0)))
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        await asyncio.wait_for(done.wait(), 20)
    finally:
        await sender.close()
        await receiver.close()
    rate = (len(got) - 51) / (got[-1] - got[50])  # the second half: past connection set-up
    assert 45 <= rate <= 55, rate
