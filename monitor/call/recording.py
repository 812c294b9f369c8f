"""A call's archive (``monitor serve`` records into ``<data dir>/recordings``, ``--record DIR``
moves it): its live timeline and its media, in DIR/<call id>/.

What is kept: ``timeline.jsonl`` (the policy's decisions, the same lines as replay's), each camera
(``<participant>.video``: an analysed camera's frames on the 6 fps grid plus the analysed ones,
pushed by the call; any other camera at ``RECORD_FPS``), each camera as received at full rate for
people to watch (``<participant>.camera``, not decoded) and each microphone (``<participant>.audio``).

Every call is recorded, so a recording that cannot be written (a full disk, an I/O error) is a
fault of the call: :meth:`CallRecording.failing` names it from the moment a file fails until the
recording is written again (each recorder starts a new part after a back-off and counts as
written once a newer part has reached the disk; timeline lines that could not be written are kept,
up to ``MAX_PENDING_LINES``, and written again in order). The call turns that into
``FaultRaised(recording_error)`` / ``FaultCleared`` (``call.py``): the policy pauses it meanwhile
(``[faults] recording_error_pauses``). Each failure is also published once on the staff hub as
``{"kind": "recording_failed", "source", "file", "error"}`` (the console shows it as an alert and
the audit log keeps it): once per recorder and failure, not once per part retried.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from monitor.analysis.cadence import ANALYSIS_FPS, Cadence
from monitor.call.sampler import FRAME_STEP_S, Taken
from monitor.media.tracks import Feed
from monitor.record.camera_recorder import CameraRecorder
from monitor.record.feed_recorder import FeedRecorder
from monitor.record.timeline import encode_line

log = logging.getLogger(__name__)

#: Cameras that are not analysed are archived at this rate (analysed ones: see the module doc).
RECORD_FPS = 10.0
#: Timeline lines kept while the timeline cannot be written; past it the oldest are dropped (counted).
MAX_PENDING_LINES = 10_000
#: How often a timeline that cannot be written is tried again.
TIMELINE_RETRY_S = 1.0

Publish = Callable[[dict[str, Any]], None]


class CallRecording:
    """The recorders and the timeline file of one call (nothing at all when ``folder`` is None).
    ``pushed``: the participants whose camera the call analyses (their frames come by :meth:`frame`)."""

    def __init__(
        self,
        call_id: str,
        folder: Path | None,
        video: Mapping[str, Feed],
        audio: Mapping[str, Feed],
        pushed: set[str],
        now: Callable[[], float],
        publish: Publish,
    ) -> None:
        self.call_id = call_id
        self.now = now
        self.publish = publish
        self.recorders: list[FeedRecorder | CameraRecorder] = []
        self.analysis_recorders: dict[str, FeedRecorder] = {}
        self.grids: dict[str, Cadence] = {}  # participant -> which of its frames to archive
        self._timeline: IO[str] | None = None
        self._timeline_path: Path | None = None
        self._pending: deque[str] = deque()  # timeline lines not written yet (the disk failed)
        self._pending_dropped = 0
        self._timeline_failure: str | None = None
        self._timeline_retry_at = 0.0
        self._reported: set[str] = set()  # recorders (names) whose current failure is published
        self._told: set[str] = set()  # the part errors published
        if folder is None:
            return
        # the folder and the timeline are made with the first line (``_write_pending``): a disk
        # that cannot take them is then a recording fault of the call, not a call that cannot load
        self._timeline_path = folder / "timeline.jsonl"
        for participant in video:
            feed = video[participant]
            camera = FeedRecorder(
                feed, folder, f"{participant}.video", now, max_fps=RECORD_FPS, pushed=participant in pushed
            )
            self.recorders.append(camera)
            # the camera as received, at full rate, for people to watch (no decoding)
            self.recorders.append(CameraRecorder(feed, folder, f"{participant}.camera", now))
            self.recorders.append(FeedRecorder(audio[participant], folder, f"{participant}.audio", now))
            if participant in pushed:
                self.analysis_recorders[participant] = camera

    def start(self) -> None:
        if self._timeline_path is not None:
            with contextlib.suppress(OSError):  # else the first line or part tries again, as a fault
                self._timeline_path.parent.mkdir(parents=True, exist_ok=True)
        for recorder in self.recorders:
            recorder.start()

    def frame(self, participant: str, taken: Taken) -> None:
        """An analysed camera's newest frame: kept if it went to analysis or is on the 6 fps grid."""
        recorder = self.analysis_recorders.get(participant)
        if recorder is None:
            return
        grid = self.grids.setdefault(participant, Cadence(ANALYSIS_FPS, None, None))
        if taken.sample is None and not grid.due(taken.t, FRAME_STEP_S, False, taken.picture.luma_thumbnail):
            return
        grid.analysed(taken.t, FRAME_STEP_S, False, None)
        try:
            recorder.push(taken.frame, taken.t)
        except OSError as exc:
            self.failed(participant, recorder.name, f"{type(exc).__name__}: {exc}")

    def write_timeline(self, record: dict[str, Any]) -> None:
        if self._timeline_path is None:
            return
        self._pending.append(encode_line(record) + "\n")
        if len(self._pending) > MAX_PENDING_LINES:
            self._pending.popleft()
            self._pending_dropped += 1
        if self._timeline_failure is None:
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the pending timeline lines, in order; on failure keep them and note why."""
        assert self._timeline_path is not None
        try:
            if self._timeline is None:
                self._timeline_path.parent.mkdir(parents=True, exist_ok=True)
                self._timeline = self._timeline_path.open("a", encoding="utf-8")
            while self._pending:
                self._timeline.write(self._pending[0])
                self._timeline.flush()
                self._pending.popleft()
        except OSError as exc:  # a full disk: kept, tried again (``failing``)
            if self._timeline is not None:
                with contextlib.suppress(OSError):
                    self._timeline.close()
            self._timeline = None
            if self._timeline_failure is None:
                error = f"{type(exc).__name__}: {exc}"
                self._timeline_failure = f"timeline.jsonl: {error}"
                self.failed("", "timeline.jsonl", error)
            self._timeline_retry_at = self.now() + TIMELINE_RETRY_S
            return
        if self._timeline_failure is not None:
            if self._pending_dropped:
                log.error(
                    "call %s: %d timeline lines were lost while the disk failed",
                    self.call_id,
                    self._pending_dropped,
                )
            self._timeline_failure, self._pending_dropped = None, 0
            self._reported.discard("timeline.jsonl")

    def failing(self) -> str | None:
        """Why the recording is not being written now (the first failing file), else None."""
        if self._timeline_failure is not None and self.now() >= self._timeline_retry_at:
            self._write_pending()
        if self._timeline_failure is not None:
            return self._timeline_failure
        return next((why for recorder in self.recorders if (why := recorder.failing)), None)

    def check(self) -> None:
        """Publish each recorder's failure once per episode (see the module doc)."""
        for recorder in self.recorders:
            why = recorder.failing
            if why is None:
                self._reported.discard(recorder.name)
            elif recorder.name not in self._reported:
                self.failed(recorder.name.split(".", 1)[0], recorder.name, why)
                self._told.add(recorder.last_error or why)

    def failed(self, source: str, what: str, error: str) -> None:
        if what in self._reported:
            return
        self._reported.add(what)
        log.error("call %s: recording %s failed: %s", self.call_id, what, error)
        record = {"kind": "recording_failed", "t": round(self.now(), 3), "source": source}
        self.publish({**record, "file": what, "error": error[:300]})

    async def stop(self) -> None:
        """Stop every recorder (what failed meanwhile is published) and close the timeline."""
        for recorder in self.recorders:
            await recorder.stop()
        for recorder in self.recorders:  # a failure in the last moments is published too
            if (error := recorder.last_error) is not None and error not in self._told:
                self._reported.discard(recorder.name)
                self.failed(recorder.name.split(".", 1)[0], recorder.name, error)
        if self._timeline_failure is not None:
            self._write_pending()
        self.recorders = []
        self.analysis_recorders = {}
        if self._timeline is not None:
            with contextlib.suppress(OSError):
                self._timeline.close()
            self._timeline = None


__all__ = ["RECORD_FPS", "CallRecording"]
