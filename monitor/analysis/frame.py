"""One decoded frame with the colour conversions the stages share, each computed at most once."""

from __future__ import annotations

import cv2
import numpy as np


class Frame:
    """A BGR frame (as decoders give it) plus lazily converted RGB (MediaPipe, dlib) and gray."""

    __slots__ = ("_gray", "_rgb", "bgr", "height", "width")

    def __init__(self, bgr: np.ndarray) -> None:
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {bgr.shape} {bgr.dtype}")
        self.bgr = bgr
        self.height, self.width = int(bgr.shape[0]), int(bgr.shape[1])
        self._rgb: np.ndarray | None = None
        self._gray: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            self._rgb = np.ascontiguousarray(cv2.cvtColor(self.bgr, cv2.COLOR_BGR2RGB))
        return self._rgb

    @property
    def gray(self) -> np.ndarray:
        if self._gray is None:
            self._gray = cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY)
        return self._gray
