"""One decoded video frame in the forms analysis reads, each made at most once and only if asked for.

A live camera's frame and a recording's frame are both ``av.VideoFrame`` s; what the frame path
(``monitor/analysis/frame_path.py``) reads of them is the luma thumbnail (the cadence's change
gate, read straight from the Y plane of a decoded frame, no colour conversion), RGB (what the
models read, for analysis in this process) and I420 planes (1.5 bytes a pixel: the cheap form to
ship to a worker process, which converts them itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: pixel formats whose first plane is 8-bit luma
EIGHT_BIT_YUV = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
        "nv16",
        "gray",
    }
)


def luma_thumbnail(frame: Any, step: int = 8) -> np.ndarray:
    """Every ``step``-th luma pixel of every ``step``-th row (uint8), read straight from the
    decoded Y plane for 8-bit YUV frames (tens of microseconds, no colour conversion)."""
    if frame.format.name in EIGHT_BIT_YUV:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
    else:
        y = frame.to_ndarray(format="gray")
    return np.ascontiguousarray(y[::step, ::step])


def i420_planes(frame: Any) -> np.ndarray:
    """The frame as I420 planes, shape (h*3/2, w)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes: np.ndarray = frame.to_ndarray(format="yuv420p")
    return planes


class Picture:
    """A decoded ``av.VideoFrame`` (``frame``) and the forms of it analysis reads (see above)."""

    __slots__ = ("_i420", "frame")

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self._i420: np.ndarray | None = None

    def luma_thumbnail(self, step: int = 8) -> np.ndarray:
        """The luma thumbnail: from the Y plane of a yuv420p frame (what a decoder gives), else
        from the I420 planes (so the worker gets the same conversion)."""
        if self.frame.format.name == "yuv420p":
            return luma_thumbnail(self.frame, step)
        return self.i420()[: self.frame.height : step, ::step]

    def rgb(self) -> np.ndarray:
        rgb: np.ndarray = self.frame.to_ndarray(format="rgb24")
        return rgb

    def i420(self) -> np.ndarray:
        if self._i420 is None:
            self._i420 = i420_planes(self.frame)
        return self._i420


__all__ = ["EIGHT_BIT_YUV", "Picture", "i420_planes", "luma_thumbnail"]
