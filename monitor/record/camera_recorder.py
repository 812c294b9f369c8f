"""Recording a camera at its full frame rate, as received, without decoding or re-encoding it.

Theory of operation. The analysed-camera archive (:mod:`monitor.record.feed_recorder`) holds the frames the
analysis saw, so that ``monitor replay`` reaches the live decisions; at most 6-10 frames a second,
because re-encoding costs more than analysing on this hardware. Investigators also want to *watch*
the call as it was. The relay already has every received VP8 frame in encoded form (forwarding,
:mod:`monitor.media.forward`), so a :class:`CameraRecorder` subscribes to those frames and muxes them
into WebM as they are: ~0.03 ms a frame, no decoder started, original quality.

VP8 frames depend on the ones before, so a part starts at a keyframe, and any gap (frames lost on
the way in, a subscriber queue overflow, a full write queue) skips to the next keyframe, asking the
camera for one, instead of writing a file that decodes to garbage. Each connection of the device
(each new track on the feed) is a new part: ``<participant>.camera.<part>.webm`` with the same
``.json`` sidecar as the other archives (the call time of its first frame). Packets are stamped
with call time at receipt on a 1/90000 time base. Muxing and file I/O run on one low-priority
thread per part (:class:`~monitor.record.feed_recorder.PartFile`, as for the other archives); a failure (e.g.
a full disk) is reported through ``errors`` and ``failing``, and a new part is tried after a
back-off, from the next keyframe, as the other archives do. Cameras whose codec is not VP8 have no
encoded frames: the sampled ``video`` archive still records them.
"""

from __future__ import annotations

import asyncio
import fractions
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from monitor.media.tracks import Feed
from monitor.record.feed_recorder import Failing, PartFile, PartRetry, finish

TIME_BASE = fractions.Fraction(1, 90_000)
QUEUE_FRAMES = 300  # 10 s at 30 fps; a frame is a few kB


def vp8_size(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1), or None if it is not one."""
    if len(keyframe) < 10 or keyframe[0] & 1 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    width = (keyframe[7] << 8 | keyframe[6]) & 0x3FFF
    height = (keyframe[9] << 8 | keyframe[8]) & 0x3FFF
    return (width, height) if width and height else None


class _PartMuxer(PartFile[tuple[bytes, bool, float]]):
    """Muxes one part's encoded frames into WebM, as they are."""

    def __init__(self, path: Path, size: tuple[int, int]) -> None:
        self.size = size
        super().__init__(path, QUEUE_FRAMES)

    def write(self, container: Any) -> None:
        stream = container.add_stream("libvpx", rate=30)  # codec parameters only: never encodes
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        last_pts = -1
        for data, keyframe, t in self.queued():
            packet = av.Packet(data)
            packet.stream = stream
            packet.time_base = TIME_BASE
            packet.pts = packet.dts = last_pts = max(round(t * 90_000), last_pts + 1)
            packet.is_keyframe = keyframe
            container.mux(packet)
            self.written += 1

    def put(self, data: bytes, keyframe: bool, t: float) -> bool:
        return self.offer((data, keyframe, t))


class CameraRecorder:
    """Records ``feed``'s received VP8 frames at full rate, one part per connection."""

    def __init__(self, feed: Feed, folder: Path, name: str, now: Callable[[], float]) -> None:
        self.feed = feed
        self.folder = folder
        self.name = name  # e.g. "v1.camera"
        self.now = now
        self.part = 0
        self.skipped = 0  # frames not written: waiting for a keyframe after a gap, or a full queue
        self.muxers: list[_PartMuxer] = []
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.retry = PartRetry()
        self._failing = Failing(feed, self.retry)

    @property
    def last_error(self) -> str | None:
        """The error of the newest part, if it failed."""
        return self.muxers[-1].error if self.muxers else None

    @property
    def failing(self) -> str | None:
        """Why the archive is not being written now (a part failed and no newer one reached the
        disk yet), else None."""
        return self._failing.now(self.muxers)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await finish(task, self.muxers)

    @property
    def errors(self) -> list[str]:
        return self.failures + [m.error for m in self.muxers if m.error]

    @property
    def written(self) -> int:
        return sum(m.written for m in self.muxers)

    async def _run(self) -> None:
        while True:
            source, generation = self.feed.encoded, self.feed.generation
            if source is None or source.kind != "video":
                await asyncio.sleep(0.1)
                continue
            await self._record_connection(source, generation)

    async def _record_connection(self, source: Any, generation: int) -> None:
        """One connection's frames, until the feed gets another track or loses this one."""
        sub = source.subscribe()
        muxer: _PartMuxer | None = None
        last_seq: int | None = None
        need_key = True
        try:
            while self.feed.generation == generation and not source.ended:
                item = await sub.get(0.1)  # short: a new connection is noticed at once
                if item is None:
                    continue
                if last_seq is not None and item.seq != last_seq + 1:
                    need_key = True  # a gap: what follows cannot decode until the next keyframe
                last_seq = item.seq
                if muxer is not None and muxer.error is not None:  # reported through ``errors``
                    if not self.retry.due(True, self.now()):
                        self.skipped += 1
                        continue
                    muxer.close()  # a new part is tried, from the next keyframe
                    muxer, need_key = None, True
                if need_key and not item.keyframe:
                    self.skipped += 1
                    source.request_keyframe()  # rate-limited
                    continue
                if muxer is None:
                    size = vp8_size(item.data)
                    if size is None:
                        self.skipped += 1
                        continue
                    muxer = self._new_part(size, self.now())
                need_key = not muxer.put(item.data, item.keyframe, self.now())
                self.skipped += need_key
            # the connection is over: wait for the feed's next one (polled,
            # like Feed.follow: the feed's generation is bumped from aiortc's callbacks, no event)
            while self.feed.generation == generation:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        finally:
            sub.close()
            if muxer is not None:
                muxer.close()

    def _new_part(self, size: tuple[int, int], t: float) -> _PartMuxer:
        self.part += 1
        stem = f"{self.name}.{self.part}"
        sidecar = {"file": f"{stem}.webm", "first_frame_call_t": round(t, 3)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)  # (again, if it was removed meanwhile)
            (self.folder / f"{stem}.json").write_text(json.dumps(sidecar))
        except OSError as exc:  # reported through ``errors`` and ``failing``
            self.failures.append(f"{stem}.json: {exc}")
            self._failing.failed(f"{stem}.json: {exc}")
        muxer = _PartMuxer(self.folder / f"{stem}.webm", size)
        self.muxers.append(muxer)
        return muxer
