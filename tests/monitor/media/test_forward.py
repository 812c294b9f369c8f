"""Forwarding without re-encoding (monitor/media/forward.py) with real aiortc peers and a real face clip.

sender --(WebRTC)--> relay in: Feed + EncodedSource --> ForwardedVideoTrack --(WebRTC)--> receiver
The receiver decodes what it gets: the camera when the gate is open, the paused slate when closed,
so every switch (slate keyframes, waiting for a live keyframe on resume) is checked by pixels.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.contrib.media import MediaRelay
from support.pictures import is_clip, is_slate

from monitor.media.encoded import receiver_of
from monitor.media.forward import ForwardedVideoTrack, slate_packets
from monitor.media.jitter import vp8_keyframe
from monitor.media.tracks import (
    PAUSED_BGR,
    SLATE_BGR,
    WAITING_BGR,
    Clock,
    Feed,
    Gate,
    SlateKind,
    make_slates,
)
from signalling.client import ClipTrack, Watch, connect_peers, loopback_peer, shows_slate


def record_packets(track: ForwardedVideoTrack) -> list[bytes]:
    """Every VP8 payload ``track`` sends from now on, in order (slates included)."""
    sent: list[bytes] = []
    original = track._packet

    def spy(data: bytes) -> object:
        sent.append(data)
        return original(data)

    track._packet = spy  # type: ignore[assignment,method-assign]
    return sent


@pytest.fixture
async def chain(clip: list[np.ndarray]) -> AsyncIterator[dict[str, object]]:
    feed = Feed(MediaRelay(), "video", "v1/video")
    sender, relay_in, relay_out, receiver = loopback_peer(), loopback_peer(), loopback_peer(), loopback_peer()
    camera = ClipTrack(clip)
    sender.addTrack(camera)
    relay_in.on("track", lambda track: feed.attach(track, receiver_of(relay_in, track)))
    gate = Gate()
    forwarded = ForwardedVideoTrack(feed, gate, Clock(), make_slates())
    forwarded.sender = relay_out.addTrack(forwarded)
    received: dict[str, Watch] = {}
    receiver.on("track", lambda track: received.setdefault(track.kind, Watch(track)))
    await connect_peers(sender, relay_in)
    await connect_peers(relay_out, receiver)
    yield {
        "gate": gate,
        "watch": lambda: received["video"],
        "feed": feed,
        "track": forwarded,
        "sender": sender,
        "relay_in": relay_in,
    }
    for peer in (sender, relay_in, relay_out, receiver):
        await peer.close()
    for watch in received.values():
        watch.stop()


def test_slates_are_a_vp8_keyframe_and_a_tiny_repeat_that_does_not_drift() -> None:
    packets = slate_packets("14:00")
    assert set(packets) == set(SlateKind)
    for kind, slate in packets.items():
        assert vp8_keyframe(slate.key) and not vp8_keyframe(slate.repeat)
        assert len(slate.repeat) < 200 < 5000 < len(slate.key)
        decoder = av.CodecContext.create("libvpx", "r")
        (first,) = decoder.decode(av.Packet(slate.key))
        drawn = first.to_ndarray(format="bgr24").astype(int)
        assert shows_slate(drawn.astype(np.uint8), SLATE_BGR[kind])
        for _ in range(100):  # a paused call repeats it for minutes: the picture must not drift
            (again,) = decoder.decode(av.Packet(slate.repeat))
        assert np.abs(again.to_ndarray(format="bgr24").astype(int) - drawn).max() <= 12


async def test_forwards_the_camera_without_re_encoding_and_slates_while_paused(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate, track, feed = chain["gate"], chain["track"], chain["feed"]
    assert isinstance(gate, Gate) and isinstance(track, ForwardedVideoTrack) and isinstance(feed, Feed)
    await asyncio.sleep(0.5)
    watch = chain["watch"]()  # type: ignore[operator]
    await watch.until(is_slate(PAUSED_BGR))
    for _ in range(2):  # open, close, open again: each switch lands, by pixels
        gate.is_open = True
        await watch.until(is_clip(clip), timeout=5.0)
        gate.is_open = False
        await watch.until(is_slate(PAUSED_BGR), timeout=3.0)
    gate.is_open = True
    await watch.until(is_clip(clip), timeout=5.0)
    await asyncio.sleep(1.5)
    assert watch.count > 40 and is_clip(clip)(watch.frame)
    assert feed.encoded is not None and feed.encoded.seq > 30
    assert track.forwarded > 30
    # the relay's sender never ran an encoder: everything it sent was a packet
    encoder = getattr(track.sender, "_RTCRtpSender__encoder", None)
    assert encoder is not None and getattr(encoder, "codec", "unset") is None
    # resuming asked the source for keyframes instead of forwarding from a delta frame
    assert feed.encoded.keyframe_requests >= 1 and feed.encoded.keyframes >= 2


async def test_resume_never_forwards_a_delta_frame_first(chain: dict[str, object]) -> None:
    gate, track, feed = chain["gate"], chain["track"], chain["feed"]
    assert isinstance(gate, Gate) and isinstance(track, ForwardedVideoTrack) and isinstance(feed, Feed)
    await asyncio.sleep(1.0)
    assert feed.encoded is not None
    sent = record_packets(track)
    for _ in range(3):
        gate.is_open = True
        await asyncio.sleep(0.8)
        gate.is_open = False
        await asyncio.sleep(0.3)
    slates = {data for slate in slate_packets().values() for data in (slate.key, slate.repeat)}
    live = [i for i, data in enumerate(sent) if data not in slates]
    assert live, "nothing was forwarded"
    for i in live:  # every live run starts with a keyframe
        if i == 0 or sent[i - 1] in slates:
            assert vp8_keyframe(sent[i])


async def test_a_device_that_goes_away_shows_waiting_and_comes_back_on_the_same_track(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate, feed = chain["gate"], chain["feed"]
    assert isinstance(gate, Gate) and isinstance(feed, Feed)
    gate.is_open = True
    watch = chain["watch"]()  # type: ignore[operator]
    await watch.until(is_clip(clip), timeout=5.0)
    sender = chain["sender"]
    assert isinstance(sender, RTCPeerConnection)
    await sender.close()
    await watch.until(is_slate(WAITING_BGR), timeout=10.0)
    assert feed.encoded is None
    again, relay_in = loopback_peer(), loopback_peer()
    again.addTrack(ClipTrack(clip))
    relay_in.on("track", lambda track: feed.attach(track, receiver_of(relay_in, track)))
    await connect_peers(again, relay_in)
    await watch.until(is_clip(clip), timeout=10.0)
    await again.close()
    await relay_in.close()


async def test_only_a_feed_someone_reads_decoded_is_decoded(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate, feed = chain["gate"], chain["feed"]
    assert isinstance(gate, Gate) and isinstance(feed, Feed)
    gate.is_open = True
    watch = chain["watch"]()  # type: ignore[operator]
    await watch.until(is_clip(clip), timeout=5.0)
    await asyncio.sleep(0.5)
    # forwarding alone: aiortc's decoder thread gets nothing, the drain sees no decoded frame
    assert feed.encoded is not None and feed.encoded.seq > 10
    assert not feed.encoded.decoding and feed.frames == 0
    sub = feed.subscribe()  # an analysis tap, a recorder or a console watch starts reading
    assert sub is not None
    frame = await asyncio.wait_for(sub.recv(), 5.0)  # from a keyframe the relay asked for
    sub.stop()
    assert feed.encoded.decoding and feed.frames >= 1
    assert frame.width == 640 and frame.height == 480
    assert is_clip(clip)(frame.to_ndarray(format="bgr24"))


async def test_unused_track_is_closed_cleanly(chain: dict[str, object]) -> None:
    track = chain["track"]
    assert isinstance(track, MediaStreamTrack)
    track.stop()
    assert track.readyState == "ended"


async def test_a_lost_frame_upstream_makes_the_gate_wait_for_a_keyframe(
    chain: dict[str, object], clip: list[np.ndarray]
) -> None:
    gate, track, feed = chain["gate"], chain["track"], chain["feed"]
    assert isinstance(gate, Gate) and isinstance(track, ForwardedVideoTrack) and isinstance(feed, Feed)
    gate.is_open = True
    watch = chain["watch"]()  # type: ignore[operator]
    await watch.until(is_clip(clip), timeout=5.0)
    assert feed.encoded is not None
    sent = record_packets(track)
    requests, skipped = feed.encoded.keyframe_requests, track.skipped
    feed.encoded.lost()  # what the receiver's jitter buffer reports when it drops packets
    await asyncio.sleep(1.5)
    assert feed.encoded.keyframe_requests > requests
    slates = {data for slate in slate_packets().values() for data in (slate.key, slate.repeat)}
    live = [data for data in sent if data not in slates]
    # delta frames after the gap were dropped until a keyframe came, then forwarding went on
    assert track.skipped > skipped and any(vp8_keyframe(data) for data in live)
    await watch.until(is_clip(clip), timeout=5.0)
