"""The pause-latency bench's scenarios: real clips, told apart after VP8 as the server sees them,
and the split of one trial's time into first analysed frame, identity votes, window and firing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import pytest

from bench.loadgen import encode_frames
from bench.pause_clients import COVERED_S, SWAP_CLIP, BenchFailed, ClipMatcher, scenario_images
from bench.pause_figures import SPLITS, split_trial
from monitor.analysis.settings import AnalysisSettings

needs_media = pytest.mark.skipif(not SWAP_CLIP.is_file(), reason=f"real media {SWAP_CLIP} not here")


def decoded(images: list[Any]) -> list[Any]:
    """``images`` through the VP8 the devices send, decoded as the relay decodes them."""
    codec = av.CodecContext.create("libvpx", "r")
    out: list[Any] = []
    for packet in encode_frames(images):
        out += [frame.to_ndarray(format="bgr24") for frame in codec.decode(av.Packet(packet))]
    return out


@needs_media
@pytest.mark.parametrize("scenario", ["walk_in", "swap"])
def test_every_sent_frame_is_told_apart_after_vp8(scenario: str) -> None:
    clips = scenario_images(scenario)
    assert all(image.shape == (480, 640, 3) for images in clips.values() for image in images)
    matcher = ClipMatcher(clips)
    for name, images in clips.items():
        seen = decoded(images[::7])
        assert [matcher.which(image) for image in seen] == [name] * len(seen)


@needs_media
def test_the_swap_camera_shows_a_different_picture_from_the_booked_one() -> None:
    clips = scenario_images("swap")
    clean, intruder = clips["clean"][0].astype(float), clips["intruder"][0].astype(float)
    assert abs(clean - intruder).mean() > 30  # a cut to another camera, not the same view


def test_an_unknown_scenario_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'photo'"):
        scenario_images("photo")


def test_a_missing_swap_clip_stops_the_bench_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(BenchFailed, match=r"needs .*missing\.mp4 \(real media"):
        scenario_images("swap", swap_clip=tmp_path / "missing.mp4")


def test_a_trial_splits_into_first_frame_identity_window_and_firing() -> None:
    legs: dict[str, list[float]] = {k: [] for k in SPLITS}
    mono_of_call, switched = 1000.0, 1100.0  # call time 100.0 is monotonic 1100.0
    analysed = [
        (1099.95, 99.90, "clean"),  # before the switch
        (1100.12, 100.02, "clean"),  # in flight when the camera switched
        (1100.30, 100.20, "intruder"),  # the first analysed intruder frame: arrived 0.20 s after
        (1100.55, 100.45, "intruder"),
        (1100.80, 100.70, "intruder"),  # the finding starts here (the third vote)
        (1101.05, 100.95, "intruder"),
    ]
    seen, due, published = 1100.70, 1101.70, 1101.73
    row = split_trial(legs, analysed, mono_of_call, switched, seen, due, published)
    assert row["seen_s"] == pytest.approx(0.70)
    assert row["first_analysed_s"] == pytest.approx(0.20)
    assert row["analysis_s"] == pytest.approx(0.10)
    assert row["identity_s"] == pytest.approx(0.50)
    assert row["window_s"] == pytest.approx(1.00)
    assert row["fire_s"] == pytest.approx(0.03)
    assert row["intruder_frames_analysed_before_finding"] == 2
    assert all(len(legs[k]) == 1 for k in SPLITS)
    parts = row["first_analysed_s"] + row["identity_s"] + row["window_s"] + row["fire_s"]
    assert parts == pytest.approx(published - switched)


def test_a_trial_with_no_analysed_intruder_frame_keeps_the_coarse_split() -> None:
    legs: dict[str, list[float]] = {k: [] for k in SPLITS}
    row = split_trial(legs, [(1100.1, 100.0, "clean")], 1000.0, 1100.0, 1100.5, 1101.5, 1101.6)
    assert "first_analysed_s" not in row and legs["split_first_analysed_s"] == []
    assert legs["split_seen_s"] == [pytest.approx(0.5)]


def test_each_trial_starts_on_a_fresh_track() -> None:
    # the covered lens between trials outlasts the tracker's memory of an unseen face
    assert AnalysisSettings().track_max_missed_s < COVERED_S
    clips = scenario_images("walk_in")
    assert len(clips["covered"]) and not any(image.any() for image in clips["covered"])
