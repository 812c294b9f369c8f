"""Which clip or camera a received picture shows. np.ndarrays that crossed a real VP8 encoder never
equal the frames sent, so they are compared loosely: the mean absolute difference of an
8x-subsampled picture (a few units for the same frame, tens for another scene)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from signalling.client import shows_slate


def difference(image: np.ndarray, frame: np.ndarray) -> float:
    """Mean absolute difference of the two pictures, subsampled 8x (same size expected)."""
    return float(np.abs(image[::8, ::8].astype(float) - frame[::8, ::8]).mean())


def is_clip(
    clip: list[np.ndarray], within: float = 12.0, samples: int | None = None
) -> Callable[[np.ndarray], bool]:
    """A check that a picture shows a frame of ``clip`` (nearer than ``within`` to one of them):
    every frame, or about ``samples`` spread evenly over it."""
    frames = clip if samples is None else clip[:: max(1, len(clip) // samples)]
    return lambda image: min(difference(image, frame) for frame in frames) < within


def is_slate(colour: tuple[int, int, int]) -> Callable[[np.ndarray], bool]:
    """A check that a picture is the slate of ``colour`` (see ``signalling.client.shows_slate``)."""
    return lambda image: shows_slate(image, colour)


def closest_camera(
    image: np.ndarray, cameras: dict[str, list[np.ndarray]], within: float = 14.0
) -> str | None:
    """Which camera a received frame comes from: the one of the same size with a frame nearest to
    it (about 30 frames of each clip compared), if nearer than ``within``."""
    best, name = within, None
    for key, clip in cameras.items():
        if clip[0].shape != image.shape:
            continue
        for frame in clip[:: max(1, len(clip) // 30)]:
            diff = difference(image, frame)
            if diff < best:
                best, name = diff, key
    return name
