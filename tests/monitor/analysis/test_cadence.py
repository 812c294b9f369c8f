"""Which frames replay analyses: busy and calm paces on one grid, and the change gate on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.analysis.cadence import Cadence, block_change
from monitor.media.video_file import Video

CLIPS = Path(__file__).resolve().parents[3] / "fixtures" / "clips"
STEP = 1 / 30


def _flat() -> np.ndarray:
    return np.full((60, 80), 100, np.uint8)


def _walk(cadence: Cadence, seconds: float, *, live: bool, steady: bool) -> list[float]:
    """Analysed times over a 30 fps stretch where every result has the given steadiness."""
    analysed = []
    for i in range(round(seconds * 30)):
        t = round(i * STEP, 3)  # millisecond pts, as webm gives them
        if cadence.due(t, STEP, live, _flat):
            cadence.analysed(t, STEP, steady, _flat)
            analysed.append(t)
    return analysed


def test_busy_pace_is_every_fifth_frame_on_the_grid() -> None:
    times = _walk(Cadence(6.0, 2.0), 2.0, live=True, steady=False)
    assert times == [0.0, 0.167, 0.333, 0.5, 0.667, 0.833, 1.0, 1.167, 1.333, 1.5, 1.667, 1.833]


def test_calm_pace_only_while_live_and_steady() -> None:
    assert len(_walk(Cadence(6.0, 2.0), 3.0, live=True, steady=True)) == 6  # 2 a second
    assert len(_walk(Cadence(6.0, 2.0), 3.0, live=False, steady=True)) == 18  # verifying/paused: busy
    assert len(_walk(Cadence(6.0, None), 3.0, live=True, steady=True)) == 18  # no calm pace


def test_an_unsteady_frame_brings_the_busy_pace_back_at_the_next_slot() -> None:
    cadence = Cadence(6.0, 2.0)
    assert cadence.due(0.0, STEP, True, _flat)
    cadence.analysed(0.0, STEP, True, _flat)
    assert not cadence.due(0.167, STEP, True, _flat)  # calm: the next one is at 0.5
    assert cadence.due(0.5, STEP, True, _flat)
    cadence.analysed(0.5, STEP, False, _flat)  # something changed
    assert cadence.due(0.667, STEP, True, _flat)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="analysis rate"):
        Cadence(0.0, 2.0)
    with pytest.raises(ValueError, match="calm analysis rate"):
        Cadence(6.0, -1.0)


def test_block_change_sees_a_local_change_that_the_mean_would_dilute() -> None:
    a = _flat()
    b = a.copy()
    b[:10, :10] = 250  # one corner block (a sixth of the height square) changed by 150
    assert block_change(a, b) == pytest.approx(150.0)
    assert float(np.abs(b.astype(int) - a).mean()) < 5  # the whole-frame mean barely moves
    assert block_change(a, a) == 0.0


def _gated_times(clip: str) -> tuple[list[float], int]:
    """Replay a real clip's frames through a cadence that is always live and steady: when does the
    change gate fire, and how many frames does it analyse in all?"""
    cadence = Cadence(6.0, 2.0)
    gated, analysed = [], 0
    with Video(CLIPS / clip) as video:
        for tf in video.frames():
            before = cadence.gated
            if cadence.due(tf.t, STEP, True, tf.luma_thumbnail):
                cadence.analysed(tf.t, STEP, True, tf.luma_thumbnail)
                analysed += 1
                if cadence.gated > before:
                    gated.append(tf.t)
    return gated, analysed


def test_a_talking_head_does_not_trip_the_change_gate() -> None:
    gated, analysed = _gated_times("clean.webm")
    assert gated == [] and analysed == 20  # 10 s at 2 a second


def test_a_person_walking_in_and_out_trips_the_change_gate() -> None:
    gated, _ = _gated_times("unbooked_walk_in.webm")
    # she slides in from 4.0 s (fully in view from 5.0 s) and leaves between 10 and 11 s
    assert gated and 4.0 <= gated[0] <= 5.0, gated
    assert any(10.0 <= t <= 11.2 for t in gated), gated
    assert all(4.0 <= t <= 5.2 or 10.0 <= t <= 11.2 for t in gated), gated


def test_thumbnail_is_the_luma_plane_subsampled() -> None:
    with Video(CLIPS / "clean.webm") as video:
        tf = next(iter(video.frames()))
        thumb = tf.luma_thumbnail()
        assert thumb.shape == (60, 80) and thumb.dtype == np.uint8
        gray = tf.frame.to_ndarray(format="gray")[::8, ::8].astype(float)
        # the raw (limited range, 16-235) luma that the full-range grey conversion stretches
        stretched = (thumb.astype(float) - 16) * 255 / 219
        assert np.abs(np.clip(stretched, 0, 255) - gray).max() <= 2
