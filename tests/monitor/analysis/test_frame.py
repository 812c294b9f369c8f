"""Frame: a frame made from RGB (what replay decodes to) gives the stages the same pixels as one
made from BGR, so the choice of layout can never move an analysis decision."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_media import image

from monitor.analysis.frame import Frame


@pytest.mark.parametrize("name", ["single_face.jpg", "astronaut.png", "multi_face.jpg"])
def test_rgb_and_bgr_frames_agree_bit_for_bit(name: str) -> None:
    bgr = image(name)
    from_bgr, from_rgb = Frame(bgr), Frame.from_rgb(np.ascontiguousarray(bgr[:, :, ::-1]))
    assert (from_rgb.width, from_rgb.height) == (from_bgr.width, from_bgr.height)
    assert np.array_equal(from_rgb.bgr, from_bgr.bgr)
    assert np.array_equal(from_rgb.rgb, from_bgr.rgb)
    assert np.array_equal(from_rgb.gray, from_bgr.gray)
    rows, cols = slice(10, from_bgr.height // 2), slice(5, from_bgr.width - 7)
    assert np.array_equal(from_rgb.lab(rows, cols), from_bgr.lab(rows, cols))


def test_conversions_are_made_once_and_only_when_asked() -> None:
    rgb = np.ascontiguousarray(image("single_face.jpg")[:, :, ::-1])
    frame = Frame.from_rgb(rgb)
    assert frame.rgb is frame.rgb and np.shares_memory(frame.rgb, rgb)  # no copy of a contiguous RGB
    assert frame._bgr is None  # nothing converted to BGR until asked
    assert frame.gray is frame.gray and frame.bgr is frame.bgr


BAD = [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3))]


@pytest.mark.parametrize("bad", BAD)
def test_bad_arrays_are_refused_in_either_layout(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8 BGR"):
        Frame(bad)
    with pytest.raises(ValueError, match="HxWx3 uint8 RGB"):
        Frame.from_rgb(bad)
