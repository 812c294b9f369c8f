"""A Python device for the join protocol: what a native app (or a test, or a load generator) runs.

``Device`` joins with a token, offers its camera and microphone plus one receive pair per slot the
server announced, and collects the server's frames. ``ClipTrack`` is a paced, looping camera made
from a real video file (``MediaPlayer(loop=True)`` loses pacing after the first pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import math
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from av import AudioFrame, VideoFrame
from websockets.asyncio.client import ClientConnection, connect


def load_clip(
    path: str | Path, size: tuple[int, int] = (640, 480), max_frames: int = 150
) -> list[np.ndarray]:
    """Decode up to ``max_frames`` frames of ``path`` as BGR arrays resized to ``size``."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        for frame in container.decode(video=0):
            image: np.ndarray = frame.to_ndarray(format="bgr24")
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            frames.append(image)
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return frames


class ClipTrack(MediaStreamTrack):
    """Loops ``frames`` at ``fps`` in real time. ``play(frames)`` switches clip on the next frame."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.index = 0
        self.sent = 0
        self._start: float | None = None

    def play(self, frames: list[np.ndarray]) -> None:
        self.frames = frames
        self.index = 0

    def next_image(self) -> np.ndarray:
        """The image to send now (called once per frame, on time)."""
        image = self.frames[self.index % len(self.frames)]
        self.index += 1
        return image

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent / self.fps
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = VideoFrame.from_ndarray(self.next_image(), format="bgr24")
        frame.pts = int(self.sent * 90_000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent += 1
        return frame


def loopback_peer() -> RTCPeerConnection:
    """A peer connection without STUN/TURN servers, for peers in one process (tests, benchmarks)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def connect_peers(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    """Offer and answer between two in-process peers (aiortc puts its ICE candidates in the SDP)."""
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


class ToneTrack(MediaStreamTrack):
    """A quiet 440 Hz tone, 20 ms frames, real-time paced: a microphone that is never silent."""

    kind = "audio"

    def __init__(self, rate: int = 48_000, hz: float = 440.0) -> None:
        super().__init__()
        self.rate = rate
        self.hz = hz
        self.samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        n = self.rate // 50
        wait = self._start + self.samples / self.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(n) + self.samples) / self.rate
        wave = (3000 * np.sin(2 * math.pi * self.hz * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(np.repeat(wave, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = self.rate
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, self.rate)
        self.samples += n
        return frame


class Device:
    """One device on a call: signalling WebSocket + peer connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.pc: RTCPeerConnection | None = None
        self.joined: dict[str, Any] | None = None
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received: list[MediaStreamTrack] = []  # remote tracks in transceiver order
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, max_size=2**20)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                self.frames.put_nowait(json.loads(raw))
        self.frames.put_nowait({"type": "closed"})

    async def send(self, frame: dict[str, Any] | str) -> None:
        assert self.ws is not None
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame of type ``kind`` (frames of other types before it are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(self.frames.get(), max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame
            if frame["type"] == "closed":
                raise ConnectionError(f"connection closed while waiting for {kind!r}")

    async def join(self, token: str) -> dict[str, Any]:
        """Join with ``token``: the ``joined`` (or ``error``) frame. A ``redirect`` (the call runs
        on another server of a cluster) is followed: this device reconnects there and joins again."""
        await self.send({"type": "join", "token": token})
        frame = await self.expect_any(("joined", "error", "redirect"))
        if frame["type"] == "redirect":
            await self.close()
            self.url = str(frame["url"])
            self.frames = asyncio.Queue()
            await self.open()
            return await self.join(token)
        if frame["type"] == "joined":
            self.joined = frame
        return frame

    async def expect_any(self, kinds: tuple[str, ...], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(self.frames.get(), max(0.01, deadline - time.monotonic()))
            if frame["type"] in kinds or frame["type"] == "closed":
                return frame

    async def call(self, video: MediaStreamTrack, audio: MediaStreamTrack) -> None:
        """Offer camera+mic and one receive pair per slot; wait for the answer."""
        assert self.joined is not None, "join first"
        servers = [RTCIceServer(**s) for s in self.joined["ice_servers"]]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        slots = max(1, len(self.joined["slots"]))
        for i in range(slots):
            if i == 0:
                self.pc.addTransceiver(video, direction="sendrecv")
                self.pc.addTransceiver(audio, direction="sendrecv")
            else:
                self.pc.addTransceiver("video", direction="recvonly")
                self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        frame = await self.expect_any(("answer", "error"))
        if frame["type"] != "answer":
            raise ConnectionError(f"no answer: {frame}")
        await self.pc.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
        self.received = [t.receiver.track for t in self.pc.getTransceivers()]

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader


class Watch:
    """Reads a received track continuously, keeping the newest decoded frame (BGR for video,
    samples for audio) and when it arrived. ``until(predicate)`` waits for a matching frame."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frame: np.ndarray | None = None
        self.at = 0.0
        self.count = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame: Any = await self.track.recv()
                if self.track.kind == "video":
                    self.frame = frame.to_ndarray(format="bgr24")
                else:
                    self.frame = frame.to_ndarray()
                self.at = time.monotonic()
                self.count += 1

    async def until(self, predicate: Any, timeout: float = 10.0) -> np.ndarray:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frame is not None and predicate(self.frame):
                return self.frame
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching frame within {timeout} s ({self.count} frames received)")

    def stop(self) -> None:
        self.task.cancel()


def shows_slate(image: np.ndarray, bgr: tuple[int, int, int]) -> bool:
    """Whether a received frame is a flat slate of colour ``bgr`` (checked on its top-left corner,
    away from the text; VP8 keeps flat colours within a few levels)."""
    corner = image[10:90, 10:150].reshape(-1, 3).astype(float)
    return bool(np.abs(corner.mean(axis=0) - bgr).max() < 12 and corner.std(axis=0).max() < 8)


def write_y4m(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Raw I420 video that Chromium's fake camera plays (``--use-file-for-fake-video-capture``)."""
    out_path = Path(path)
    height, width = frames[0].shape[:2]
    with out_path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out_path


def main(argv: list[str]) -> int:
    """``python -m signalling.client CLIP OUT.y4m [FRAMES]``: a looping fake camera file for Chromium
    (``--use-file-for-fake-video-capture``) from the first FRAMES (90) frames of CLIP, played forwards
    then backwards so that the loop has no jump. Bad input: one line on stderr, exit 1."""
    import sys

    def fail(message: str) -> int:
        print(f"python -m signalling.client: error: {message}", file=sys.stderr)
        return 1

    if len(argv) not in (2, 3):
        print("usage: python -m signalling.client CLIP OUT.y4m [FRAMES]", file=sys.stderr)
        return 2
    clip_path, out_path = argv[0], argv[1]
    count = argv[2] if len(argv) == 3 else "90"
    if not count.isdigit() or int(count) < 1:
        return fail(f"FRAMES must be a whole number of frames, at least 1, got {count!r}")
    if not Path(clip_path).is_file():
        return fail(f"{clip_path}: video file not found")
    try:
        clip = load_clip(clip_path, max_frames=int(count))
    except av.error.FFmpegError as exc:
        return fail(f"{clip_path}: cannot read video: {exc.strerror or exc}")
    except ValueError as exc:  # no video stream, no frames
        return fail(str(exc))
    try:
        print(write_y4m(out_path, clip + clip[-2:0:-1]))
    except OSError as exc:
        return fail(f"{out_path}: cannot write: {exc.strerror or exc}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
