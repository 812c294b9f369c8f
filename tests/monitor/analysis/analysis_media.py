"""Helpers to read the real media copied next to these tests (see media/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.media import read_image, video_frames

MEDIA = Path(__file__).parent / "media"


def image(name: str) -> np.ndarray:
    return read_image(MEDIA / name)


def frame(name: str) -> Frame:
    return Frame(image(name))


def clip(name: str, **kw: int) -> list[tuple[int, float, np.ndarray]]:
    return list(video_frames(MEDIA / name, **kw))


def face_over(bgr: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``bgr`` with its face (and a margin around it) replaced by the face of the photo ``other``,
    scaled into the same place: another real person where the first one was."""
    detector = FaceDetector()
    try:
        theirs = detector.detect(Frame(other))[0].box.square(1.5)
        ours = detector.detect(Frame(bgr))[0].box.square(1.5)
    finally:
        detector.close()
    x0, y0, side = round(ours.x), round(ours.y), round(ours.w)
    ox0, oy0, oside = round(theirs.x), round(theirs.y), round(theirs.w)
    face = other[oy0 : oy0 + oside, ox0 : ox0 + oside]
    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    out = bgr.copy()
    out[y0 : y0 + side, x0 : x0 + side] = patch
    return out
