"""One decoded frame with the colour conversions the stages share, each computed at most once.

A frame is made from whichever layout its source gives: BGR (OpenCV, ``Frame(bgr)``) or RGB
(``Frame.from_rgb``: what MediaPipe and dlib read, and what a decoder can output directly, so
replay never converts at all). The other layout and gray are derived lazily, on first use.
OpenCV's conversions treat both layouts alike (the same weights, the same rounding), so gray,
Lab and the other layout are bit-identical whichever one the frame was made from.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check(image: np.ndarray, layout: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 {layout} frame, got {image.shape} {image.dtype}")


class Frame:
    """A frame in BGR and/or RGB (at least one given) plus lazily converted gray."""

    __slots__ = ("_bgr", "_gray", "_rgb", "height", "width")

    def __init__(self, bgr: np.ndarray) -> None:
        _check(bgr, "BGR")
        self._bgr: np.ndarray | None = bgr
        self._rgb: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self.height, self.width = int(bgr.shape[0]), int(bgr.shape[1])

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> Frame:
        _check(rgb, "RGB")
        frame = cls.__new__(cls)
        frame._bgr = None
        frame._rgb = np.ascontiguousarray(rgb)
        frame._gray = None
        frame.height, frame.width = int(rgb.shape[0]), int(rgb.shape[1])
        return frame

    @property
    def bgr(self) -> np.ndarray:
        if self._bgr is None:
            assert self._rgb is not None
            self._bgr = cv2.cvtColor(self._rgb, cv2.COLOR_RGB2BGR)
        return self._bgr

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            assert self._bgr is not None
            self._rgb = np.ascontiguousarray(cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB))
        return self._rgb

    @property
    def gray(self) -> np.ndarray:
        if self._gray is None:
            if self._rgb is not None:
                self._gray = cv2.cvtColor(self._rgb, cv2.COLOR_RGB2GRAY)
            else:
                self._gray = cv2.cvtColor(self.bgr, cv2.COLOR_BGR2GRAY)
        return self._gray

    def lab(self, rows: slice, cols: slice) -> np.ndarray:
        """CIE Lab (8-bit OpenCV scaling) of a region, from whichever layout the frame holds."""
        if self._rgb is not None:
            return cv2.cvtColor(self._rgb[rows, cols], cv2.COLOR_RGB2LAB)
        return cv2.cvtColor(self.bgr[rows, cols], cv2.COLOR_BGR2LAB)
