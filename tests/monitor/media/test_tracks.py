"""The relay's gates with real aiortc peers on loopback and a real face clip.

sender --(WebRTC)--> relay in: Feed --> GatedVideoTrack/GatedAudioTrack --(WebRTC)--> receiver
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from support.pictures import is_clip, is_slate
from support.waiting import until

from monitor.media.tracks import (
    PAUSED_BGR,
    SLATE_BGR,
    WAITING_BGR,
    Clock,
    Feed,
    FrameTap,
    Gate,
    GatedAudioTrack,
    GatedVideoTrack,
    SlateKind,
    make_slates,
    slate_lines,
)
from signalling.client import (
    ClipTrack,
    ToneTrack,
    Watch,
    connect_peers,
    loopback_peer,
    shows_slate,
)


def loud(samples: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(samples.astype(float) ** 2))) > 300


def silent(samples: np.ndarray) -> bool:
    return float(np.abs(samples).max()) < 50


@pytest.fixture
async def chain(clip: list[np.ndarray]) -> AsyncIterator[dict[str, object]]:
    relay = MediaRelay()
    video_feed, audio_feed = Feed(relay, "video", "v1/video"), Feed(relay, "audio", "v1/audio")
    sender, relay_in, relay_out, receiver = loopback_peer(), loopback_peer(), loopback_peer(), loopback_peer()
    camera = ClipTrack(clip)
    sender.addTrack(camera)
    sender.addTrack(ToneTrack())

    @relay_in.on("track")
    def on_in(track: MediaStreamTrack) -> None:
        (video_feed if track.kind == "video" else audio_feed).attach(track)

    gate, clock, slates = Gate(), Clock(), make_slates()
    gated_video = GatedVideoTrack(video_feed, gate, clock, slates)
    gated_audio = GatedAudioTrack(audio_feed, gate, clock)
    relay_out.addTrack(gated_video)
    relay_out.addTrack(gated_audio)
    received: dict[str, Watch] = {}

    @receiver.on("track")
    def on_out(track: MediaStreamTrack) -> None:
        received[track.kind] = Watch(track)

    await connect_peers(sender, relay_in)
    await connect_peers(relay_out, receiver)
    yield {
        "gate": gate,
        "video": lambda: received["video"],
        "audio": lambda: received["audio"],
        "camera": camera,
        "feeds": (video_feed, audio_feed),
        "sender": sender,
        "gated": gated_video,
    }
    for peer in (sender, relay_in, relay_out, receiver):
        await peer.close()
    for watch in received.values():
        watch.stop()


async def test_gate_forwards_media_when_open_and_slate_and_silence_when_closed(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate = chain["gate"]
    assert isinstance(gate, Gate)
    await asyncio.sleep(0.5)
    video, audio = chain["video"](), chain["audio"]()  # type: ignore[operator]
    # closed from the start: the paused slate and silence, never the camera
    await video.until(is_slate(PAUSED_BGR))
    await audio.until(silent)
    gate.is_open = True
    await video.until(is_clip(clip))
    await audio.until(loud)
    gate.is_open = False
    await video.until(is_slate(PAUSED_BGR), timeout=3.0)
    await audio.until(silent, timeout=3.0)
    gate.is_open = True  # resumes on the same tracks, without renegotiation
    await video.until(is_clip(clip))
    await audio.until(loud)


async def test_closing_the_gate_switches_on_the_next_frames(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate = chain["gate"]
    assert isinstance(gate, Gate)
    gate.is_open = True
    video = chain["video"]()  # type: ignore[operator]
    await video.until(is_clip(clip))
    gated = chain["gated"]
    assert isinstance(gated, GatedVideoTrack)
    sent_before = gated.forwarded + gated.filled
    gate.is_open = False
    # the very next frame the sender pulls from the gate is the slate
    await until(lambda: gated.forwarded + gated.filled != sent_before, 5, "the next frame", every=0.005)
    assert gated.showing is not None
    assert gated.forwarded + gated.filled - sent_before <= 1


async def test_feed_without_a_device_shows_the_waiting_slate(chain: dict[str, object]) -> None:
    gate = chain["gate"]
    assert isinstance(gate, Gate)
    gate.is_open = True
    video = chain["video"]()  # type: ignore[operator]
    await video.until(lambda im: not shows_slate(im, PAUSED_BGR) and not shows_slate(im, WAITING_BGR))
    sender = chain["sender"]
    assert isinstance(sender, RTCPeerConnection)
    await sender.close()  # the device goes away: its tracks end, the feed detaches
    await video.until(is_slate(WAITING_BGR), timeout=10.0)
    feeds = chain["feeds"]
    assert isinstance(feeds, tuple)
    assert feeds[0].track is None


async def test_keep_latest_tap_drops_frames_instead_of_queueing(chain: dict[str, object]) -> None:
    feeds = chain["feeds"]
    assert isinstance(feeds, tuple)
    await asyncio.sleep(0.3)
    seen: list[float] = []
    tap = FrameTap(feeds[0], lambda: seen.append(time.monotonic()), time.monotonic)
    tap.start()
    await asyncio.sleep(1.5)  # a slow consumer: nobody takes frames for 1.5 s
    taken = tap.take()
    assert taken is not None
    frame, at = taken
    assert time.monotonic() - at < 0.2  # the newest frame, not one from 1.5 s ago
    assert tap.take() is None  # nothing queued behind it
    assert len(seen) > 20  # ~30 fps arrived meanwhile and were dropped
    tap.stop()
    assert frame.width == 640 and frame.height == 480


async def test_a_device_that_reconnects_is_forwarded_again_on_the_same_outgoing_track(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate = chain["gate"]
    assert isinstance(gate, Gate)
    gate.is_open = True
    video = chain["video"]()  # type: ignore[operator]
    await video.until(is_clip(clip))
    sender = chain["sender"]
    assert isinstance(sender, RTCPeerConnection)
    await sender.close()
    await video.until(is_slate(WAITING_BGR), timeout=10.0)
    # the device comes back on a new connection: its new track feeds the same gate, no renegotiation
    feeds = chain["feeds"]
    assert isinstance(feeds, tuple)
    again, relay_in = loopback_peer(), loopback_peer()
    again.addTrack(ClipTrack(clip))
    relay_in.on("track", lambda track: feeds[0].attach(track))
    await connect_peers(again, relay_in)
    await video.until(is_clip(clip), timeout=10.0)
    await again.close()
    await relay_in.close()


def test_a_closed_gate_names_its_slate_and_the_starting_slate_says_when() -> None:
    gate = Gate(closed_as=SlateKind.STARTING)
    # before the start the other side's picture says when it starts, connected or not
    assert gate.slate(connected=True) is gate.slate(connected=False) is SlateKind.STARTING
    gate.closed_as = SlateKind.CHECKING
    assert gate.slate(connected=True) is SlateKind.CHECKING
    assert gate.slate(connected=False) is SlateKind.WAITING  # nobody there to check
    assert slate_lines(SlateKind.STARTING, "14:00") == ("Waiting to start", "The call starts at 14:00")
    assert slate_lines(SlateKind.CHECKING)[0] == "Starting the call"
    assert "paused" not in " ".join(slate_lines(SlateKind.STARTING) + slate_lines(SlateKind.CHECKING)).lower()
    slates = make_slates("14:00")
    for kind, frame in slates.items():
        assert shows_slate(frame.to_ndarray(format="bgr24"), SLATE_BGR[kind]), kind
