"""The full-rate camera archive: received VP8 frames muxed as they are, parts starting at a
keyframe, and a gap skipped to the next keyframe. Frames are a real libvpx encoding of a fixture
clip, published through a real ``EncodedSource`` as the relay's receiver tee does."""

from __future__ import annotations

import asyncio
import fractions
import functools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import av
import pytest
from aiortc import RTCRtpReceiver
from aiortc.contrib.media import MediaRelay

from monitor.media.encoded import EncodedSource
from monitor.media.tracks import Feed
from monitor.record.camera_recorder import CameraRecorder, vp8_size
from signalling.client import load_clip

ROOT = Path(__file__).resolve().parents[3]
VP8 = SimpleNamespace(mimeType="video/VP8")
KEY_EVERY = 30


@functools.cache
def encoded_clip(count: int) -> list[bytes]:
    """``count`` frames of the clean clip as VP8, a keyframe every ``KEY_EVERY`` frames."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 640, 480, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.gop_size = KEY_EVERY
    codec.bit_rate = 500_000
    codec.options = {"lag-in-frames": "0", "deadline": "realtime", "cpu-used": "8"}
    out: list[bytes] = []
    for i, image in enumerate(load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=count)):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out


class Receiver:
    """What EncodedSource asks of a receiver: only the sources to send a keyframe request to."""

    def getSynchronizationSources(self) -> list[Any]:
        return []


def published_source() -> EncodedSource:
    """An EncodedSource the test publishes to by hand, on a receiver that has no RTP sources."""
    return EncodedSource(cast(RTCRtpReceiver, Receiver()))


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_vp8_size_reads_keyframes_only() -> None:
    frames = encoded_clip(2)
    assert vp8_size(frames[0]) == (640, 480)
    assert vp8_size(frames[1]) is None  # a delta frame has no size
    assert vp8_size(b"") is None


async def test_every_frame_is_recorded_and_a_gap_waits_for_the_next_keyframe(tmp_path: Path) -> None:
    frames = encoded_clip(3 * KEY_EVERY)
    assert [i for i, f in enumerate(frames) if vp8_size(f)] == [0, KEY_EVERY, 2 * KEY_EVERY]
    feed = Feed(MediaRelay(), "video", "v1")
    source = published_source()
    feed.encoded, feed.generation = source, 1  # as Feed.attach leaves a forwarded track
    clock = iter(i / 30 for i in range(1000))
    recorder = CameraRecorder(feed, tmp_path, "v1.camera", lambda: next(clock))
    recorder.start()
    await asyncio.sleep(0.05)  # the recorder subscribes
    for i, data in enumerate(frames):
        if i == 40:
            source.lost()  # frames lost on the way in: 41..59 cannot decode
        source.publish(VP8, data)
        await asyncio.sleep(0)
    await asyncio.sleep(0.2)
    await recorder.stop()
    assert recorder.errors == []
    written = KEY_EVERY + 10 + KEY_EVERY  # 0..39, then from the keyframe at 60
    assert recorder.written == written and recorder.skipped == 20
    assert decoded_frames(tmp_path / "v1.camera.1.webm") == written
    assert json.loads((tmp_path / "v1.camera.1.json").read_text()) == {
        "file": "v1.camera.1.webm",
        "first_frame_call_t": 0.0,
    }


async def test_a_new_connection_is_a_new_part(tmp_path: Path) -> None:
    frames = encoded_clip(KEY_EVERY)
    feed = Feed(MediaRelay(), "video", "v1")
    recorder = CameraRecorder(feed, tmp_path, "v1.camera", lambda: 1.0)
    recorder.start()
    for generation in (1, 2):
        source = published_source()
        feed.encoded, feed.generation = source, generation
        await asyncio.sleep(0.25)
        for data in [*frames[1:5], *frames]:  # joined mid-stream: nothing until a keyframe
            source.publish(VP8, data)
            await asyncio.sleep(0)  # a camera's pace: the recorder keeps up
        await asyncio.sleep(0.1)
    await recorder.stop()
    assert [decoded_frames(tmp_path / f"v1.camera.{part}.webm") for part in (1, 2)] == [KEY_EVERY] * 2
    assert recorder.skipped == 8


@pytest.mark.parametrize("blocked", ["folder"])
async def test_an_unwritable_folder_is_reported_not_raised(tmp_path: Path, blocked: str) -> None:
    feed = Feed(MediaRelay(), "video", "v1")
    source = published_source()
    feed.encoded, feed.generation = source, 1
    recorder = CameraRecorder(feed, tmp_path / "missing", "v1.camera", lambda: 0.0)
    recorder.start()
    await asyncio.sleep(0.05)
    for data in encoded_clip(5):
        source.publish(VP8, data)
    await asyncio.sleep(0.2)
    await recorder.stop()
    assert len(recorder.errors) == 2  # the sidecar and the file
    assert recorder.written == 0
