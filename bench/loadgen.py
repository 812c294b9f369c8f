"""The load generator of the capacity benches: devices that send the fixture clip as pre-encoded
VP8 (and speech-like Opus) and count what they receive back.

A device's media is encoded once, then replayed packet by packet at 30 fps (audio: 50 packets a
second), so the generator costs little and the relay it loads is what is measured. It runs in
its own process (:func:`loadgen_process`), driven over a pipe: ``("add", key)`` offers a
bench-built relay one device, ``("join", key, url, token)`` joins ``monitor serve`` through its
signalling, ``("counts",)`` reports frames received per device, ``("stop",)`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import os
import time
from typing import Any

from bench import ROOT, THREAD_VARS
from monitor.media import patches

CLIP = ROOT / "fixtures" / "clips" / "clean.webm"
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
#: What every device and analysed camera of a capacity step must reach for the step to pass.
TARGETS = {"analysis_fps": 5.0, "received_fps": 28.0, "loop_lag_p99_ms": 50.0}


def loopback() -> None:
    """Host candidates on 127.0.0.1 only (aioice never offers it by itself)."""
    patches.set_ice_host_addresses(["127.0.0.1"])


# ---- load generator ------------------------------------------------------------------------------


def encode_clip(frames: int = 60, gop: int = 30) -> list[bytes]:
    """The fixture clip as ping-pong VP8 at 640x480, a keyframe every ``gop`` frames."""
    from signalling.client import load_clip

    images = load_clip(CLIP, max_frames=frames)
    return encode_frames(images + images[-2:0:-1], gop)


def encode_frames(images: list[Any], gop: int = 30) -> list[bytes]:
    """``images`` (BGR) as 640x480 30 fps VP8 packets, the first a keyframe (so a camera can switch
    to them at any frame, as a real encoder does at a scene change), then one every ``gop``."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 640, 480, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.bit_rate = 1_000_000
    codec.gop_size = gop
    codec.options = {"kf-max-dist": str(gop), "kf-min-dist": str(gop)}
    out: list[bytes] = []
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out


def encode_speech(seconds: float = 4.0) -> list[bytes]:
    """Speech-like audio as 20 ms Opus packets, encoded once by aiortc's own ``OpusEncoder`` (48 kHz
    stereo, 96 kbit/s, voip: what an aiortc device such as ``signalling.client.ToneTrack``'s sends):
    a voiced sound (a 110-190 Hz gliding pitch with its harmonics) in syllables, about four a
    second, with a short pause every two seconds, so the encoder sees speech-like changes rather
    than one steady tone. Looping the packets replays it at no encoding cost."""
    import numpy as np
    from aiortc.codecs.opus import OpusEncoder
    from av import AudioFrame

    encoder, rate, n = OpusEncoder(), 48_000, 960
    t = np.arange(int(seconds * rate)) / rate
    pitch = 150 + 40 * np.sin(2 * np.pi * 0.6 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    syllables = np.sin(np.pi * 4 * t) ** 2 * ((t % 2.0) < 1.6)
    wave = (6000 * voice * syllables).astype(np.int16)
    packets: list[bytes] = []
    for i in range(len(t) // n):
        chunk = wave[i * n : (i + 1) * n]
        frame = AudioFrame.from_ndarray(np.repeat(chunk, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, i * n, fractions.Fraction(1, rate)
        packets += encoder.encode(frame)[0]
    return packets


def _make_opus_track(packets: list[bytes]) -> Any:
    import av
    from aiortc import MediaStreamTrack

    class OpusPacketTrack(MediaStreamTrack):
        """Paced pre-encoded Opus, 50 packets a second, looping: a microphone that costs nothing
        to encode (aiortc's sender sends an ``av.Packet`` as it is, ``OpusEncoder.pack``)."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self._start: float | None = None

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + self.sent / 50 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            packet = av.Packet(packets[self.sent % len(packets)])
            packet.pts = self.sent * 960
            packet.time_base = fractions.Fraction(1, 48_000)
            self.sent += 1
            return packet

    return OpusPacketTrack()


def _make_packet_track(packets: list[bytes]) -> Any:
    import av
    from aiortc import MediaStreamTrack

    class PacketTrack(MediaStreamTrack):
        """Paced pre-encoded VP8 (what ``MediaPlayer(decode=False)`` sends), looping on a keyframe."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.late_max = 0.0  # the most a frame was sent after its time (a starved process)
            self._start: float | None = None

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            wait = self._start + self.sent / 30 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.late_max = max(self.late_max, -wait)
            packet = av.Packet(packets[self.sent % len(packets)])
            packet.pts = self.sent * 3000
            packet.time_base = fractions.Fraction(1, 90_000)
            self.sent += 1
            return packet

    return PacketTrack()


async def _count(track: Any, counts: dict[str, int], key: str) -> None:
    try:
        while True:
            await track.recv()
            counts[key] = counts.get(key, 0) + 1
    except Exception:
        return


async def _loadgen(conn: Any, audio: bool = True) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loopback()
    loop = asyncio.get_running_loop()
    packets = encode_clip()
    speech = encode_speech() if audio else []
    pcs: list[Any] = []
    counts: dict[str, int] = {}
    tasks: list[asyncio.Task[None]] = []
    sockets: list[Any] = []
    conn.send(("ready",))
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "add":  # ("add", key): offer one device, the relay answers
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver(_make_packet_track(packets), direction="sendrecv")
            key = message[1]

            def on_track(track: Any, key: str = key) -> None:
                tasks.append(asyncio.ensure_future(_count(track, counts, key)))

            pc.on("track", on_track)
            await pc.setLocalDescription(await pc.createOffer())
            conn.send(("offer", key, pc.localDescription.sdp))
            _, answer = await loop.run_in_executor(None, conn.recv)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            pcs.append(pc)
        elif message[0] == "join":  # ("join", key, ws_url, token): a device of `monitor serve`
            key = message[1]
            try:
                camera = _make_packet_track(packets)
                microphone = _make_opus_track(speech) if speech else None
                pc, ws = await join_device(message[2], message[3], camera, counts, key, tasks, microphone)
            except Exception as exc:  # the relay refused: the step reports it
                conn.send(("joined", key, f"{type(exc).__name__}: {exc}"))
            else:
                pcs.append(pc)
                sockets.append(ws)
                conn.send(("joined", key, ""))
        elif message[0] == "counts":
            conn.send(("counts", dict(counts)))
        elif message[0] == "stop":
            for pc in pcs:
                await pc.close()
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
            for task in tasks:
                task.cancel()
            conn.send(("stopped",))
            return


def pin(cpus: list[int] | None) -> None:
    """Run this process (and the processes it starts) on ``cpus`` only (None: anywhere)."""
    if cpus:
        for name in THREAD_VARS:  # one thread per math library, as bench.pin_to_one_core does
            os.environ[name] = "1"
        os.sched_setaffinity(0, set(cpus))


def loadgen_process(conn: Any, cpus: list[int] | None = None, audio: bool = True) -> None:
    pin(cpus)
    asyncio.run(_loadgen(conn, audio))


async def join_device(
    url: str,
    token: str,
    camera: Any,
    counts: dict[str, int],
    key: str,
    tasks: list[Any],
    microphone: Any = None,
) -> tuple[Any, Any]:
    """One device of the load generator: join with ``token``, offer ``camera`` and ``microphone``
    (None: a receive-only microphone slot), count the video frames it receives under ``key`` and
    the audio packets under ``audio:key``. Returns (peer, WebSocket)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=2**20)

    async def expect(*kinds: str) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if frame["type"] in kinds:
                return frame
            if frame["type"] == "error":
                raise RuntimeError(f"{frame.get('code')}: {frame.get('message')}")

    await ws.send(json.dumps({"type": "join", "token": token}))
    joined = await expect("joined")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for i in range(max(1, len(joined["slots"]))):
        pc.addTransceiver(camera if i == 0 else "video", direction="sendrecv" if i == 0 else "recvonly")
        sends = i == 0 and microphone is not None
        pc.addTransceiver(microphone if sends else "audio", direction="sendrecv" if sends else "recvonly")

    def on_track(track: Any) -> None:
        tasks.append(
            asyncio.ensure_future(_count(track, counts, key if track.kind == "video" else f"audio:{key}"))
        )

    pc.on("track", on_track)
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
    answer = await expect("answer")
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    async def drain() -> None:  # state frames and warnings: read, so nothing queues up
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    tasks.append(asyncio.ensure_future(drain()))
    return pc, ws
