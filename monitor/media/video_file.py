"""Video files for replay: open with PyAV, iterate decoded frames with their media time.

Every way a file can be bad (missing, a directory, unreadable, not a video, no video stream,
corrupt data part-way) becomes one :class:`~monitor.errors.UserError` naming the file, so the
command line prints one line and no traceback. Frames are handed out as ``av.VideoFrame`` so the
caller only pays for the BGR conversion on the frames it analyses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from monitor.errors import UserError
from monitor.media.picture import luma_thumbnail


@dataclass(frozen=True, slots=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float | None  # nominal (average) frame rate, when the container says
    duration_s: float | None  # when the container says
    codec: str


@dataclass(frozen=True, slots=True)
class TimedFrame:
    index: int  # decoded frame number, from 0
    t: float  # seconds since the first frame (from pts)
    frame: Any  # av.VideoFrame

    def bgr(self) -> Any:
        return self.frame.to_ndarray(format="bgr24")

    def rgb(self) -> Any:
        """The frame as RGB (what MediaPipe and dlib read); the same pixels as :meth:`bgr`, reversed."""
        return self.frame.to_ndarray(format="rgb24")

    def luma_thumbnail(self, step: int = 8) -> np.ndarray:
        """Every ``step``-th luma pixel of every ``step``-th row (``monitor.media.picture``)."""
        return luma_thumbnail(self.frame, step)


def _error(path: Path, exc: BaseException) -> UserError:
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return UserError(f"{path}: cannot read video: {detail}")


class Video:
    """An opened video file. Use as a context manager; iterate :meth:`frames` once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"{self.path}: video file not found")
        if not self.path.is_file():
            raise UserError(f"{self.path}: not a video file (it is a directory or a device)")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _error(self.path, exc) from None
        if not self._container.streams.video:
            self._container.close()
            raise UserError(f"{self.path}: has no video stream")
        fmt = str(self._container.format.name)
        if fmt == "image2" or fmt.endswith("_pipe"):
            self._container.close()
            raise UserError(f"{self.path}: is a still image, not a video")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "NONE"  # one core, deterministic
        ctx = self._stream.codec_context
        rate = self._stream.average_rate or self._stream.guessed_rate
        duration: float | None = None
        if self._stream.duration is not None and self._stream.time_base is not None:
            duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration is not None and len(self._container.streams) == 1:
            duration = self._container.duration / av.time_base
        self.info = VideoInfo(
            path=self.path,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=float(rate) if rate else None,
            duration_s=duration,
            codec=str(ctx.name),
        )

    def __enter__(self) -> Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[TimedFrame]:
        """Decoded frames in presentation order, ``t`` from pts relative to the first frame.

        Frames without a pts are timed from the previous one at the nominal rate. Raises UserError
        when the file holds no decodable frame or its data is corrupt.
        """
        tb: Fraction | None = self._stream.time_base
        step = 1.0 / self.info.fps if self.info.fps else 1.0 / 30.0
        first: float | None = None
        last_t = -step
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                if frame.pts is not None and tb is not None:
                    abs_t = float(frame.pts * tb)
                    if first is None:
                        first = abs_t
                    t = abs_t - first
                else:
                    t = last_t + step
                if t < last_t:  # never let media time run backwards
                    t = last_t
                last_t = t
                yield TimedFrame(index, t, frame)
                index += 1
        except (av.FFmpegError, OSError, ValueError) as exc:
            where = f" after {index} frames (t={last_t:.2f} s)" if index else ""
            raise UserError(f"{self.path}: corrupt or unreadable video data{where}: {exc}") from None
        if index == 0:
            raise UserError(f"{self.path}: no decodable video frames")
        expected = self.info.duration_s
        if expected is not None and last_t + step < expected - max(1.0, 0.05 * expected):
            raise UserError(
                f"{self.path}: truncated or corrupt: frames stop at {last_t + step:.2f} s "
                f"of the {expected:.2f} s the file declares"
            )


__all__ = ["TimedFrame", "Video", "VideoInfo"]
