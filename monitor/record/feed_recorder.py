"""Recording every incoming track of a live call, encoding off the event loop.

Theory of operation. A :class:`FeedRecorder` follows one :class:`~monitor.media.tracks.Feed` (a device's
camera or microphone). On the loop it only copies each frame's pixels/samples (``to_ndarray``, well
under a millisecond) into a bounded queue, stamped with call time; one low-priority thread per
recorder encodes and muxes (VP8 / Opus in WebM). A full queue drops the frame and counts it
(``dropped``) rather than delaying the loop or growing memory: the call always wins over its
archive. Microphones are recorded whole (Opus is cheap). Re-encoding 30 fps video costs more than
analysing it on this hardware, so cameras are archived at a lower rate: an *analysed* camera
records every frame the analysis saw plus the frames on replay's 6 fps grid (pushed by the call
with the same call time), so ``monitor replay`` of the archive sees what the live analysis saw and
reaches the live decisions; other cameras are sampled at ``max_fps``. Each connection of
the device (each new track on the feed) is a new *part*: ``<participant>.<kind>.<part>.webm``,
with a sidecar ``.json`` naming the call time of its first frame, so ``monitor replay --offset``
puts the recording's decisions on the live call's clock. Video streams use a 1/90000 time base
(aiortc's clock; other bases kill the encoder silently on 50 fps sources).

A part that cannot be written (a full disk, an I/O error) is given up and, after a back-off
(:class:`PartRetry`), a new part is started with the next frame, for as long as it takes:
:attr:`FeedRecorder.failing` names the failure until a newer part has reached the disk
(:meth:`PartFile.on_disk`), so the call can pause while its recording is not written and resume
once it is (``monitor/call/recording.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import av
import numpy as np

from monitor.media.tracks import Feed

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
QUEUE_FRAMES = 90
#: After a part fails, a new part is tried this long after, doubling while new parts fail.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 4.0
Item = TypeVar("Item")


class PartRetry:
    """When a recorder whose current part failed starts a new one: ``RETRY_FIRST_S`` after it
    noticed, doubling up to ``RETRY_MAX_S`` while the new parts fail too, back to the first delay
    once one reaches the disk (:meth:`recovered`)."""

    def __init__(self) -> None:
        self.delay = RETRY_FIRST_S
        self.at: float | None = None

    def due(self, failed: bool, t: float) -> bool:
        """Whether to start a new part now (``failed``: the current part has failed)."""
        if not failed:
            return False
        if self.at is None:
            self.at = t + self.delay
        if t < self.at:
            return False
        self.at = None
        self.delay = min(self.delay * 2, RETRY_MAX_S)
        return True

    def recovered(self) -> None:
        self.delay, self.at = RETRY_FIRST_S, None


class Failing:
    """A recorder's failure episode: from a part (or its sidecar) failing until a newer part of a
    connected feed has reached the disk. ``parts``: the recorder's parts, newest last."""

    def __init__(self, feed: Feed, retry: PartRetry) -> None:
        self.feed = feed
        self.retry = retry
        self.detail: str | None = None

    def failed(self, detail: str) -> None:
        self.detail = detail

    def now(self, parts: Sequence[PartFile[Any]]) -> str | None:
        latest = parts[-1] if parts else None
        if self.feed.track is None:  # nothing to record: a part of the next connection starts afresh
            self.detail = None
        elif latest is not None and latest.error is not None:
            self.detail = f"{latest.path.name}: {latest.error}"
        elif self.detail is not None and latest is not None and latest.on_disk():
            self.detail = None
            self.retry.recovered()
        return self.detail


class PartFile(Generic[Item]):
    """One WebM part written on its own low-priority thread from a bounded queue: the loop only
    offers items (a full queue refuses, never blocks); the thread opens the file and hands it to
    :meth:`write`. A failure (a full disk, a codec error) is kept in ``error`` and logged, never
    raised to the loop; the part's later items are refused."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.items: queue.Queue[Item | None] = queue.Queue(capacity)
        self.written = 0
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name=f"record-{path.name}", daemon=True)
        self.thread.start()

    def write(self, container: Any) -> None:
        """Write the queued items into ``container`` until :meth:`close` (on the thread)."""
        raise NotImplementedError

    def queued(self) -> Iterator[Item]:
        while (item := self.items.get()) is not None:
            yield item

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # let the relay and analysis have the CPU first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        container: Any = None
        try:
            container = av.open(str(self.path), mode="w", format="webm")
            self.write(container)
        except Exception as exc:  # a full disk or a codec error: report it, never crash the loop
            self.error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, OSError):  # the disk: the recorder retries, no traceback each time
                log.error("recording %s failed: %s", self.path, self.error)
            else:
                log.exception("recording %s failed", self.path)
            with contextlib.suppress(Exception):
                while self.items.get_nowait() is not None:
                    pass
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            if self.error is not None:  # a part that never reached the disk leaves no empty file
                with contextlib.suppress(OSError):
                    if self.path.stat().st_size == 0:
                        self.path.unlink()

    def offer(self, item: Item) -> bool:
        if self.error is not None:
            return False
        try:
            self.items.put_nowait(item)
        except queue.Full:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self.items.put(None, timeout=2.0)

    def on_disk(self) -> bool:
        """The part has not failed and something of it is in its file (libav writes in blocks, so
        a part that cannot reach the disk stays empty until its first block fails)."""
        if self.error is not None:
            return False
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False


async def finish(task: asyncio.Task[None] | None, parts: Sequence[PartFile[Any]]) -> None:
    """Stop a recorder: cancel the task that reads its feed, then close every part it wrote and
    wait (off the loop) for their threads to write what is queued."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    for part in parts:
        part.close()
    for part in parts:
        await asyncio.to_thread(part.thread.join, 10)


class _PartWriter(PartFile[tuple[np.ndarray, float, dict[str, Any]]]):
    """Encodes one part of decoded frames or samples."""

    def __init__(self, path: Path, kind: str) -> None:
        self.kind = kind
        super().__init__(path, QUEUE_FRAMES)

    def write(self, container: Any) -> None:
        stream: Any = None
        first_t: float | None = None
        last_pts = -1
        samples = 0
        for data, t, info in self.queued():
            if first_t is None:
                first_t = t
            if self.kind == "video":
                if stream is None:
                    stream = container.add_stream("libvpx", rate=30)
                    stream.width, stream.height = info["width"], info["height"]
                    stream.pix_fmt = "yuv420p"
                    stream.codec_context.time_base = VIDEO_TIME_BASE
                    # near-transparent quality: replaying the archive must see what analysis saw
                    stream.bit_rate = 3_000_000
                    stream.options = {
                        "deadline": "realtime",
                        "cpu-used": "8",
                        "crf": "6",
                        "qmin": "0",
                        "qmax": "16",
                    }
                frame: Any = av.VideoFrame.from_ndarray(data, format="yuv420p")
                pts = round((t - first_t) * 90_000)
                frame.time_base = VIDEO_TIME_BASE
            else:
                if stream is None:
                    stream = container.add_stream("libopus", rate=48_000)
                    stream.layout = "stereo"
                frame = av.AudioFrame.from_ndarray(data, format=info["format"], layout=info["layout"])
                frame.sample_rate = info["rate"]
                pts = samples  # audio is continuous: count samples, not arrival times
                samples += frame.samples
                frame.time_base = fractions.Fraction(1, info["rate"])
            if pts <= last_pts:
                pts = last_pts + 1
            frame.pts = last_pts = pts
            for packet in stream.encode(frame):
                container.mux(packet)
            self.written += 1
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)

    def put(self, data: np.ndarray, t: float, info: dict[str, Any]) -> bool:
        return self.offer((data, t, info))


class FeedRecorder:
    def __init__(
        self,
        feed: Feed,
        folder: Path,
        name: str,
        now: Callable[[], float],
        *,
        max_fps: float | None = None,
        pushed: bool = False,
    ) -> None:
        self.feed = feed
        self.folder = folder
        self.name = name  # e.g. "v1.video"
        self.now = now
        self.max_fps = max_fps  # sample a subscribed camera at most this often
        self.pushed = pushed  # frames arrive through push() (the analysed frames) instead
        self.part = 0
        self.dropped = 0
        self.writers: list[_PartWriter] = []
        self.failures: list[str] = []  # files that could not be written (e.g. a full disk)
        self._task: asyncio.Task[None] | None = None
        self._writer: _PartWriter | None = None
        self._generation = -1
        self._last_t = float("-inf")
        self.retry = PartRetry()
        self._failing = Failing(feed, self.retry)

    @property
    def last_error(self) -> str | None:
        """The error of the newest part, if it failed."""
        return self.writers[-1].error if self.writers else None

    @property
    def failing(self) -> str | None:
        """Why the archive is not being written now (see the module doc), else None."""
        return self._failing.now(self.writers)

    def start(self) -> None:
        if self._task is None and not self.pushed:
            self._task = asyncio.ensure_future(self._run())

    def push(self, frame: Any, t: float) -> None:
        """Record ``frame`` seen at call time ``t`` (pushed mode)."""
        new_connection = self._generation != self.feed.generation and self.feed.track is not None
        retry = self._writer is not None and self.retry.due(self._writer.error is not None, t)
        if new_connection or self._writer is None or retry:
            if self._writer is not None:
                self._writer.close()
            self._generation = self.feed.generation
            self._writer = self._new_part(t)
        data, info = self._copy(frame)
        if not self._writer.put(data, t, info):
            self.dropped += 1

    async def stop(self) -> None:
        task, self._task, self._writer = self._task, None, None
        await finish(task, self.writers)

    @property
    def errors(self) -> list[str]:
        return self.failures + [w.error for w in self.writers if w.error]

    async def _run(self) -> None:
        writer: _PartWriter | None = None

        def new_source() -> None:  # a reconnect starts a new part file
            nonlocal writer
            if writer is not None:
                writer.close()
                writer = None

        async for frame in self.feed.follow(on_new_source=new_source):
            t = self.now()
            if self.max_fps is not None and t - self._last_t < 1.0 / self.max_fps:
                continue
            self._last_t = t
            if writer is not None and self.retry.due(writer.error is not None, t):
                writer.close()  # failed: a new part is tried (see the module doc)
                writer = None
            if writer is None:
                writer = self._new_part(t)
            data, info = self._copy(frame)
            if not writer.put(data, t, info):
                self.dropped += 1

    def _new_part(self, t: float) -> _PartWriter:
        self.part += 1
        stem = f"{self.name}.{self.part}"
        sidecar = {"file": f"{stem}.webm", "first_frame_call_t": round(t, 3)}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)  # (again, if it was removed meanwhile)
            (self.folder / f"{stem}.json").write_text(json.dumps(sidecar))
        except OSError as exc:  # reported through ``errors`` and ``failing``
            self.failures.append(f"{stem}.json: {exc}")
            self._failing.failed(f"{stem}.json: {exc}")
        writer = _PartWriter(self.folder / f"{stem}.webm", self.feed.kind)
        self.writers.append(writer)
        return writer

    @staticmethod
    def _copy(frame: Any) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(frame, av.VideoFrame):
            source = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
            return source.to_ndarray(format="yuv420p"), {"width": frame.width, "height": frame.height}
        samples: np.ndarray = frame.to_ndarray().copy()
        info = {"format": frame.format.name, "layout": frame.layout.name, "rate": frame.sample_rate}
        return samples, info
