"""Calls for ``bench.accuracy``: real clips through the real analysis and policy (``monitor.replay``).

A call is made of *pieces* of real recordings played back to back (``Spliced``): a piece is a
frame range of a file, optionally turned by the file's display rotation and cropped and scaled to
640x480 (so a camera cut to another recording keeps the frame size, as a phone's camera would).
Each piece keeps its own frame times, shifted to follow the previous piece by one frame: a clip is
*looped* by playing it again with re-stamped times, and a *swap* is a cut from one recording to
another. No frame is drawn. A loop's seam is a cut back to the clip's start, a harder case than a
real call (the analysis sees a jump), so a clean clip looped many times errs on the side of more
false pauses, not fewer.

``Call`` replays one such piece list against a booking through ``monitor.replay.Replay`` with a
prepared pipeline (the booked person's embedding computed once) and keeps the timeline records.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np

from bench import ROOT

WIDTH, HEIGHT = 640, 480


@dataclass(frozen=True, slots=True)
class Piece:
    path: Path
    start: int = 0  # first frame (decoded index)
    stop: int | None = None  # end frame (exclusive); None: to the end of the file
    rotate: int = 0  # 0 or 180: the file's display rotation, applied
    fit: bool = False  # crop to 4:3 and scale to 640x480

    def seconds(self) -> float:
        """The piece's length from the frame rate and its packets (counted, not decoded)."""
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 30)
            total = sum(1 for packet in container.demux(stream) if packet.size)
        stop = total if self.stop is None else min(self.stop, total)
        return max(0, stop - self.start) / fps


def _transformed(frame: Any, piece: Piece) -> Any:
    if not piece.rotate and not piece.fit:
        return frame
    rgb = frame.to_ndarray(format="rgb24")
    if piece.rotate == 180:
        rgb = rgb[::-1, ::-1]
    if piece.fit:
        h, w = rgb.shape[:2]
        if w * 3 > h * 4:  # wider than 4:3: crop the sides
            cw = h * 4 // 3
            rgb = rgb[:, (w - cw) // 2 : (w - cw) // 2 + cw]
        else:
            ch = w * 3 // 4
            rgb = rgb[(h - ch) // 2 : (h - ch) // 2 + ch]
        rgb = cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")


class Spliced:
    """Pieces back to back as one recording; reads like ``monitor.media.video_file.Video``."""

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = tuple(pieces)
        self.starts: list[float] = []  # media time at which each piece begins

    def frames(self) -> Iterator[Any]:
        from monitor.media.video_file import TimedFrame, Video

        offset, index = 0.0, 0
        self.starts = []
        for piece in self.pieces:
            self.starts.append(offset)
            first: float | None = None
            last = offset
            with Video(piece.path) as video:
                step = 1.0 / (video.info.fps or 30.0)
                for tf in video.frames():
                    if tf.index < piece.start:
                        continue
                    if piece.stop is not None and tf.index >= piece.stop:
                        break
                    if first is None:
                        first = tf.t
                    last = offset + tf.t - first
                    yield TimedFrame(index, last, _transformed(tf.frame, piece))
                    index += 1
            offset = last + step


def looped(piece: Piece, seconds: float) -> list[Piece]:
    """The piece repeated until the call lasts at least ``seconds``."""
    length = piece.seconds()
    return [piece] * max(1, -(-round(seconds * 1000) // max(1, round(length * 1000))))


def booking_for(photo: Path, config: Any, call_id: str) -> Any:
    """A 30-minute booking of one visitor ("v1") whose reference photo is ``photo``."""
    from policies.booking import parse_booking

    doc = {
        "call_id": call_id,
        "prison": "HMP Example",
        "prisoner": {"id": "A1234BC", "name": "John Smith"},
        "starts_at": "2026-12-01T14:00:00+00:00",
        "ends_at": "2026-12-01T14:30:00+00:00",
        "participants": [
            {
                "id": "v1",
                "name": "Visitor One",
                "date_of_birth": "1990-01-01",
                "main_caller": True,
                "reference_photos": [photo.name],
            }
        ],
    }
    return parse_booking(doc, photo.parent, config)


def enrolment_of(embedding: np.ndarray) -> Any:
    from monitor.analysis.gallery import EnrolledPerson, Enrolment

    return Enrolment((EnrolledPerson("v1", (embedding,)),))


@dataclass(frozen=True, slots=True)
class CallResult:
    records: list[dict[str, Any]]
    media_s: float
    cpu_s: float
    starts: list[float]  # media time each piece began

    def first(self, kind: str, after: float = 0.0, **match: Any) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in self.records
                if r["kind"] == kind and r["t"] >= after and all(r.get(k) == v for k, v in match.items())
            ),
            None,
        )

    @property
    def live_t(self) -> float | None:
        r = self.first("state", state="live")
        return None if r is None else float(r["t"])

    @property
    def pauses(self) -> list[dict[str, Any]]:
        return [
            {"t": r["t"], "reasons": r.get("reasons", [])}
            for r in self.records
            if r["kind"] == "state" and r["state"] == "paused"
        ]

    def warnings(self) -> dict[str, int]:
        return dict(Counter(r["reason"] for r in self.records if r["kind"] == "warning"))

    def alerts(self) -> dict[str, int]:
        return dict(Counter(r["reason"] for r in self.records if r["kind"] == "alert"))


class Caller:
    """Replays calls with the default policy; keeps the fixtures' enrolments."""

    def __init__(self) -> None:
        from policies.config import load_policy

        self.config = load_policy()
        self._fixture_enrolments: dict[str, tuple[Any, Any]] = {}
        self.calls = 0
        self.cpu_s = 0.0

    def fixture_booking(self, rel: str) -> tuple[Any, Any]:
        """(booking, visitors' enrolment) of a fixture booking, enrolled once."""
        if rel not in self._fixture_enrolments:
            from monitor.analysis.enrol import enrol_booking
            from monitor.bookings import load_booking

            booking = load_booking(ROOT / "fixtures" / rel, self.config)
            visitors, _prisoner = enrol_booking(booking)
            self._fixture_enrolments[rel] = (booking, visitors)
        return self._fixture_enrolments[rel]

    def call(self, booking: Any, visitors: Any, pieces: Sequence[Piece]) -> CallResult:
        from monitor.analysis.pipeline import FramePipeline
        from monitor.media.video_file import Video
        from monitor.replay.replay import Replay
        from policies.events import Role

        pipeline = FramePipeline(
            visitors, source=booking.main_caller.id, role=Role.VISITOR, stage_clock=time.process_time
        )
        replay = Replay(booking, self.config, pipeline=pipeline)
        records: list[dict[str, Any]] = []
        video = Spliced(pieces)
        try:
            stats = replay.run(cast(Video, video), (), lambda r: records.append(json.loads(json.dumps(r))))
        finally:
            replay.close()
        self.calls += 1
        self.cpu_s += stats.cpu_s
        return CallResult(records, stats.media_s, stats.cpu_s, list(video.starts))
