"""Forwarding recovers fast from lost keyframes, with real aiortc peers and a real face clip.

sender --(WebRTC)--> relay_in: Feed + EncodedSource --> ForwardedVideoTrack --(WebRTC)--> receiver

A :class:`KeyframeDropper` in front of a receiver's RTP handling throws away every packet of the
next VP8 keyframe *and every retransmission of them*: the loss a starved host causes when a
keyframe burst overflows a socket buffer and the NACK or the retransmission is lost too. Plain
aiortc then holds all later frames until 512 packets have gone by (seconds); these tests check the
relay's side (monitor/media/jitter.py on the relay's receivers, keyframe requests passed upstream) brings
the picture back within a second or two.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.contrib.media import MediaRelay
from support.pictures import is_clip
from support.waiting import until

from monitor.media.encoded import receiver_of
from monitor.media.forward import ForwardedVideoTrack
from monitor.media.jitter import LossWatch, watch_losses
from monitor.media.tracks import Clock, Feed, Gate, make_slates
from signalling.client import ClipTrack, Watch, connect_peers, loopback_peer

#: Recovery bound: the hole is given up after 0.3 s, then a keyframe is one round trip away.
#: Generous for a loaded 2-core machine; plain aiortc takes 5-15 s.
RECOVER_S = 3.0


class KeyframeDropper:
    """Drops, at one receiver, every packet of the next VP8 keyframe once armed and, if
    ``permanent``, every retransmission of those packets (RTX) too."""

    def __init__(self, receiver: Any, permanent: bool = True) -> None:
        self.receiver = receiver
        self.permanent = permanent
        self.armed = False
        self.timestamp: int | None = None
        self.lost: set[int] = set()
        self.dropped_rtx = 0
        self._handle = receiver._handle_rtp_packet
        receiver._handle_rtp_packet = self._filter

    def _mime(self, payload_type: int) -> str:
        codec = self.receiver._RTCRtpReceiver__codecs.get(payload_type)
        return "" if codec is None else str(codec.mimeType).lower()

    async def _filter(self, packet: Any, arrival_time_ms: int) -> None:
        mime = self._mime(packet.payload_type)
        if mime == "video/rtx" and self.permanent and int.from_bytes(packet.payload[:2], "big") in self.lost:
            self.dropped_rtx += 1
            return None
        if mime == "video/vp8" and packet.payload:
            if self.armed and self.timestamp is None:
                descriptor, rest = VpxPayloadDescriptor.parse(packet.payload)
                if descriptor.partition_start and descriptor.partition_id == 0 and not rest[0] & 1:
                    self.timestamp, self.armed = packet.timestamp, False
            if packet.timestamp == self.timestamp:
                self.lost.add(packet.sequence_number)
                return None
        await self._handle(packet, arrival_time_ms)
        return None


@pytest.fixture
async def chain(clip: list[np.ndarray]) -> AsyncIterator[dict[str, Any]]:
    feed = Feed(MediaRelay(), "video", "v1/video")
    sender, relay_in, relay_out, receiver = loopback_peer(), loopback_peer(), loopback_peer(), loopback_peer()
    sender.addTrack(ClipTrack(clip))
    relay_in.on("track", lambda track: feed.attach(track, receiver_of(relay_in, track)))
    gate = Gate()
    track = ForwardedVideoTrack(feed, gate, Clock(), make_slates())
    track.sender = relay_out.addTrack(track)
    received: dict[str, Watch] = {}
    receiver.on("track", lambda t: received.setdefault(t.kind, Watch(t)))
    await connect_peers(sender, relay_in)
    await connect_peers(relay_out, receiver)
    yield {
        "gate": gate,
        "feed": feed,
        "track": track,
        "received": received,
        "relay_in": relay_in.getTransceivers()[0].receiver,
        "receiver": receiver.getTransceivers()[0].receiver,
    }
    for peer in (sender, relay_in, relay_out, receiver):
        await peer.close()
    for watch in received.values():
        watch.stop()


async def first_clip_frame(received: dict[str, Watch], clip: list[np.ndarray]) -> float:
    """Seconds until the receiver shows the camera."""
    start = time.monotonic()
    await until(lambda: "video" in received, 20.0, "the receiver's video track", every=0.02)
    await received["video"].until(is_clip(clip), timeout=20.0)
    return time.monotonic() - start


async def test_the_relay_recovers_when_the_first_keyframe_from_the_camera_is_lost(
    chain: dict[str, Any], clip: list[np.ndarray]
) -> None:
    dropper = KeyframeDropper(chain["relay_in"])
    await asyncio.sleep(0.5)
    dropper.armed = True  # opening the gate asks the camera for a keyframe: that one is lost
    chain["gate"].is_open = True
    took = await first_clip_frame(chain["received"], clip)
    assert dropper.lost, "no keyframe was dropped"
    watch: LossWatch = chain["relay_in"]._loss_watch
    assert watch.skips >= 1 and watch.plis >= 1  # the hole was given up and a keyframe requested
    assert took < RECOVER_S, f"the camera came through after {took:.1f} s"
    await asyncio.sleep(1.0)  # and it keeps coming
    assert is_clip(clip)(chain["received"]["video"].frame)


async def test_a_receiver_that_lost_the_forwarded_keyframe_gets_a_new_one_through_the_relay(
    chain: dict[str, Any], clip: list[np.ndarray]
) -> None:
    """The receiving device asks (PLI) after losing the keyframe; the relay, which does not
    encode, passes the request to the camera and forwards its next keyframe."""
    watch_losses(chain["receiver"])  # the device recovers the way a browser does
    dropper = KeyframeDropper(chain["receiver"])
    await asyncio.sleep(0.5)
    requests = chain["feed"].encoded.keyframe_requests
    dropper.armed = True
    chain["gate"].is_open = True
    took = await first_clip_frame(chain["received"], clip)
    assert dropper.lost
    assert chain["track"].downstream_plis >= 1
    assert chain["feed"].encoded.keyframe_requests >= requests + 2  # on resume, and for the PLI
    assert took < RECOVER_S, f"the camera came through after {took:.1f} s"


async def test_a_keyframe_lost_once_is_retransmitted_from_the_relays_history(
    chain: dict[str, Any], clip: list[np.ndarray]
) -> None:
    """A plain aiortc receiver (no loss watch) NACKs what it missed; the relay's sender
    retransmits forwarded packets as it would encoded ones."""
    dropper = KeyframeDropper(chain["receiver"], permanent=False)
    await asyncio.sleep(0.5)
    dropper.armed = True
    chain["gate"].is_open = True
    took = await first_clip_frame(chain["received"], clip)
    assert dropper.lost
    assert took < RECOVER_S, f"the camera came through after {took:.1f} s"
