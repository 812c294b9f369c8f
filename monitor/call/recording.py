"""A call's archive (``monitor serve --record DIR``): its live timeline and its media, in DIR/<call id>/.

What is kept: ``timeline.jsonl`` (the policy's decisions, the same lines as replay's), each camera
(``<participant>.video``: an analysed camera's frames on the 6 fps grid plus the analysed ones,
pushed by the call; any other camera at ``RECORD_FPS``), each camera as received at full rate for
people to watch (``<participant>.camera``, not decoded) and each microphone (``<participant>.audio``).

Recording failures (a full disk, a codec error) are not the policy's business: the policy judges
who is in view, not the archive. So a call whose recording fails goes on, and the failure is never
silent: each failed file is published once on the staff hub as ``{"kind": "recording_failed",
"source", "file", "error"}`` (the console shows it as an alert and the audit log keeps it).
"""

from __future__ import annotations

import contextlib
import logging
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
        self._reported: set[str] = set()
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._timeline = (folder / "timeline.jsonl").open("a", encoding="utf-8")
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
        if self._timeline is None:
            return
        try:
            self._timeline.write(encode_line(record) + "\n")
            self._timeline.flush()
        except OSError as exc:  # a full disk: staff are told, the call goes on
            with contextlib.suppress(OSError):
                self._timeline.close()
            self._timeline = None
            self.failed("", "timeline.jsonl", f"{type(exc).__name__}: {exc}")

    def check(self) -> None:
        """Publish each recorder's failure once (see the module doc)."""
        for recorder in self.recorders:
            for error in recorder.errors:
                self.failed(recorder.name.split(".", 1)[0], recorder.name, error)

    def failed(self, source: str, what: str, error: str) -> None:
        key = f"{what}: {error}"
        if key in self._reported:
            return
        self._reported.add(key)
        log.error("call %s: recording %s failed: %s", self.call_id, what, error)
        record = {"kind": "recording_failed", "t": round(self.now(), 3), "source": source}
        self.publish({**record, "file": what, "error": error[:300]})

    async def stop(self) -> None:
        """Stop every recorder (what failed meanwhile is published) and close the timeline."""
        for recorder in self.recorders:
            await recorder.stop()
        self.check()
        self.recorders = []
        self.analysis_recorders = {}
        if self._timeline is not None:
            with contextlib.suppress(OSError):
                self._timeline.close()
            self._timeline = None


__all__ = ["RECORD_FPS", "CallRecording"]
