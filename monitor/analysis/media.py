"""Reading real media for calibration, tests and benchmarks: images via OpenCV, video via PyAV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    return image


def video_frames(
    path: Path, *, step: int = 1, start: int = 0, stop: int | None = None, width: int | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds, BGR frame) of every ``step``-th frame in ``[start, stop)``; scaled to ``width``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if stop is not None and i >= stop:
                break
            if i < start or (i - start) % step:
                continue
            tb = stream.time_base
            t = float(frame.pts * tb) if frame.pts is not None and tb is not None else i / 30.0
            bgr: np.ndarray = frame.to_ndarray(format="bgr24")
            if width is not None and bgr.shape[1] != width:
                height = round(bgr.shape[0] * width / bgr.shape[1] / 2) * 2
                bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
            yield i, t, bgr
