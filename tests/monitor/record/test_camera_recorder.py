"""The full-rate camera archive: received VP8 frames muxed as they are, parts starting at a
keyframe, and a gap skipped to the next keyframe. Frames are a real libvpx encoding of a fixture
clip, published through a real ``EncodedSource`` as the relay's receiver tee does; a full disk is a
real tmpfs filled to the last byte."""

from __future__ import annotations

import asyncio
import fractions
import functools
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import av
import pytest
from aiortc import RTCRtpReceiver, VideoStreamTrack
from aiortc.contrib.media import MediaRelay
from support.small_disk import small_disk

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
    (tmp_path / "a-file").write_text("not a folder")  # a folder cannot be made under it (even as root)
    recorder = CameraRecorder(feed, tmp_path / "a-file" / "v1", "v1.camera", lambda: 0.0)
    recorder.start()
    await asyncio.sleep(0.05)
    for data in encoded_clip(5):
        source.publish(VP8, data)
    await asyncio.sleep(0.2)
    await recorder.stop()
    assert len(recorder.errors) == 2  # the sidecar and the file
    assert recorder.written == 0
    assert recorder.failing is None  # the feed has no track: nothing is being recorded now


async def test_a_full_disk_fails_the_archive_until_a_new_part_reaches_the_disk(tmp_path: Path) -> None:
    """On a real tmpfs filled to the last byte: the archive's part fails (``failing`` says why),
    and once space is back a new part, started after the back-off, reaches the disk and the
    archive is written again (``failing`` is None)."""
    frames = encoded_clip(KEY_EVERY * 4)
    started = time.monotonic()
    with small_disk(tmp_path, "4m") as disk:
        feed = Feed(MediaRelay(), "video", "v1")
        source = published_source()
        feed.track, feed.encoded, feed.generation = VideoStreamTrack(), source, 1  # a connected camera
        recorder = CameraRecorder(feed, disk.path / "call", "v1.camera", lambda: time.monotonic() - started)
        recorder.start()
        await asyncio.sleep(0.05)

        async def play(clip: list[bytes]) -> None:
            for data in clip:
                source.publish(VP8, data)
                await asyncio.sleep(0.005)

        await play(frames[: KEY_EVERY * 2])
        assert recorder.failing is None
        disk.fill()
        for _ in range(100):
            await play(frames[KEY_EVERY * 2 :])
            if recorder.failing is not None:
                break
        assert recorder.failing is not None and "No space left on device" in recorder.failing
        disk.free()
        for _ in range(100):  # keyframes keep coming: after the back-off a new part starts on one
            await play(frames[: KEY_EVERY * 2])
            if recorder.failing is None:
                break
        assert recorder.failing is None
        assert (
            recorder.part >= 2 and (disk.path / "call" / f"v1.camera.{recorder.part}.webm").stat().st_size > 0
        )
        await recorder.stop()
