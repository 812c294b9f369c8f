"""Helpers to read the real media copied next to these tests (see media/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.analysis.frame import Frame
from monitor.analysis.media import read_image, video_frames

MEDIA = Path(__file__).parent / "media"


def image(name: str) -> np.ndarray:
    return read_image(MEDIA / name)


def frame(name: str) -> Frame:
    return Frame(image(name))


def clip(name: str, **kw: int) -> list[tuple[int, float, np.ndarray]]:
    return list(video_frames(MEDIA / name, **kw))
