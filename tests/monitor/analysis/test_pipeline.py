from __future__ import annotations

import pickle
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from analysis_media import MEDIA, face_over, image

from monitor.analysis.enrol import enrol_photos
from monitor.analysis.evidence import annotate
from monitor.analysis.frame import Frame
from monitor.analysis.gallery import Enrolment
from monitor.analysis.pipeline import AnalysisSettings, FramePipeline, FrameResult
from policies.events import Lighting, Observation, Role, Verdict, Visibility


@pytest.fixture(scope="module")
def man() -> Enrolment:
    return enrol_photos({"man": [MEDIA / "single_face.jpg"]})


@pytest.fixture(scope="module")
def obama() -> Enrolment:
    return enrol_photos({"obama": [MEDIA / "obama.jpg"]})


def _run(enrolment: Enrolment, frames: list[tuple[float, np.ndarray]], **kw: object) -> Iterator[FrameResult]:
    pipeline = FramePipeline(enrolment, source="cam1", **kw)  # type: ignore[arg-type]
    try:
        for t, bgr in frames:
            yield pipeline.process(bgr, t)
    finally:
        pipeline.close()


def test_booked_man_is_one_track_matched_within_a_second(man: Enrolment, man_clip: list) -> None:
    results = list(_run(man, [(t, bgr) for _i, t, bgr in man_clip]))
    assert all(len(r.observation.faces) == 1 and r.observation.faces[0].track == 1 for r in results)
    verdicts = [(r.observation.t, r.observation.faces[0].verdict) for r in results]
    first_match = next(t for t, v in verdicts if v is Verdict.MATCH)
    assert first_match <= 1.0
    assert all(v is Verdict.MATCH for t, v in verdicts if t >= first_match)  # never flips back
    last = results[-1].observation
    assert last.faces[0].participant == "man" and last.faces[0].visibility is Visibility.FULL
    assert last.faces[0].lighting is Lighting.OK and last.persons_without_face == 0
    assert all(r.rejected == () for r in results)
    assert sum(f.embedded for r in results for f in r.faces) <= 6  # identity is sampled, not per frame
    assert {"detect", "track", "landmarks", "identity", "persons", "total"} <= set(results[-1].timings_ms)
    x, y, w, h = last.faces[0].box
    assert 0 < x < x + w < 1 and 0 < y < y + h < 1


def test_impostor_is_never_matched_and_ends_unbooked(obama: Enrolment, man_clip: list) -> None:
    results = list(_run(obama, [(t, bgr) for _i, t, bgr in man_clip]))
    verdicts = [r.observation.faces[0].verdict for r in results]
    assert Verdict.MATCH not in verdicts
    assert verdicts[-1] is Verdict.UNBOOKED
    assert verdicts.index(Verdict.UNBOOKED) < 30  # decided within a second


def test_cartoon_blips_are_not_faces_and_a_leaving_person_leaves(
    man: Enrolment, man_clip: list, cartoon_clip: list
) -> None:
    frames = [(t, bgr) for _i, t, bgr in man_clip[:30]]
    frames += [(1.0 + t, cv2.resize(bgr, (640, 360))) for _i, t, bgr in cartoon_clip]
    results = list(_run(man, frames))
    assert all(len(r.observation.faces) == 1 for r in results[:30])
    cartoon = results[30:]
    assert all(r.observation.faces == () for r in cartoon)
    assert any(r.rejected for r in cartoon)  # the detector did fire, and was overruled
    assert all(r.observation.persons_without_face == 0 for r in cartoon)


def test_group_photo_gives_five_unmatched_tracks(man: Enrolment) -> None:
    group = image("multi_face.jpg")
    results = list(_run(man, [(t, group) for t in (0.0, 0.3, 0.6, 0.9)]))
    faces = results[-1].observation.faces
    assert len(faces) == 5 and len({f.track for f in faces}) == 5
    assert all(f.verdict is not Verdict.MATCH for f in faces)


def test_partial_and_dark_faces_are_reported_and_not_identified(man: Enrolment) -> None:
    (r,) = _run(man, [(0.0, image("obama_partial_face.jpg"))])
    assert r.observation.faces[0].visibility is Visibility.PARTIAL
    assert not r.faces[0].embedded and r.faces[0].quality_problem == "face partial"
    dark = (image("single_face.jpg") * 0.25).astype(np.uint8)
    results = list(_run(man, [(t, dark) for t in (0.0, 0.3, 0.6)]))
    face = results[-1].observation.faces[0]
    assert face.lighting is Lighting.DARK and face.verdict is Verdict.PENDING
    assert not any(f.embedded for res in results for f in res.faces)


def test_empty_enrolment_turns_identity_off(man_clip: list) -> None:
    results = list(_run(Enrolment(), [(t, bgr) for _i, t, bgr in man_clip[:10]], role=Role.PRISONER))
    assert all(r.observation.role is Role.PRISONER for r in results)
    assert all(f.face.verdict is Verdict.PENDING and not f.embedded for r in results for f in r.faces)


def test_results_pickle_and_annotate(man: Enrolment, man_clip: list) -> None:
    results = list(_run(man, [(t, bgr) for _i, t, bgr in man_clip[:20]]))
    obs = pickle.loads(pickle.dumps(results[-1].observation))
    assert isinstance(obs, Observation) and obs == results[-1].observation
    assert pickle.loads(pickle.dumps(AnalysisSettings())) == AnalysisSettings()
    bgr = man_clip[19][2]
    marked = annotate(bgr, results[-1])
    assert marked.shape == bgr.shape and not np.array_equal(marked, bgr)
    assert results[-1].faces[0].label.startswith("#1 ")


def _worker(enrolment: Enrolment, frames: list[tuple[float, np.ndarray]]) -> list[Observation]:
    return [r.observation for r in _run(enrolment, frames)]


def test_pipeline_runs_in_a_spawned_worker_with_a_pickled_enrolment(man: Enrolment, man_clip: list) -> None:
    """How the live relay uses it: enrolment pickled to a fresh process that builds the pipeline."""
    import multiprocessing

    frames = [(t, bgr) for _i, t, bgr in man_clip[:24]]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.apply(_worker, (man, frames))
    local = _worker(man, frames)
    assert remote == local  # same decisions in another process: analysis is deterministic
    assert remote[-1].faces[0].verdict is Verdict.MATCH


def test_close_is_idempotent_and_final(man_clip: list) -> None:
    pipeline = FramePipeline(Enrolment(), source="cam1")
    pipeline.close()
    pipeline.close()
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.process(man_clip[0][2], 0.0)


def test_an_rgb_frame_gives_the_same_results_as_its_bgr_twin(man: Enrolment, man_clip: list) -> None:
    """Replay hands the pipeline RGB frames (``Frame.from_rgb``), the live worker too; analysis
    must not depend on the layout: same faces, boxes, verdicts, distances, steadiness."""
    frames = [(t, bgr) for _i, t, bgr in man_clip[:30]]
    rgb = [(t, Frame.from_rgb(np.ascontiguousarray(bgr[:, :, ::-1]))) for t, bgr in frames]
    a = list(_run(man, frames))
    b = list(_run(man, rgb))  # type: ignore[arg-type]
    assert [r.observation for r in a] == [r.observation for r in b]
    assert [r.steady for r in a] == [r.steady for r in b]
    assert [[f.landmarks for f in r.faces] for r in a] == [[f.landmarks for f in r.faces] for r in b]
    assert any(f.embedded for r in b for f in r.faces)


def test_bad_frames_are_refused(man: Enrolment) -> None:
    pipeline = FramePipeline(man, source="cam1")
    try:
        with pytest.raises(ValueError, match="BGR"):
            pipeline.process(np.zeros((48, 64), np.uint8), 0.0)
        with pytest.raises(ValueError, match="BGR"):
            pipeline.process(np.zeros((48, 64, 3), np.float32), 0.0)
    finally:
        pipeline.close()


def test_a_booked_face_settles_into_steady_frames_and_a_break_unsettles_them(
    man: Enrolment, obama: Enrolment, man_clip: list
) -> None:
    frames = [(t, bgr) for _i, t, bgr in man_clip]
    results = list(_run(man, frames))
    steady = [r.steady for r in results]
    first = steady.index(True)
    assert results[first].observation.faces[0].verdict is Verdict.MATCH
    assert not any(steady[:first]) and first <= 30  # verified within a second, then steady
    # once steady, no more identity samples for the confident match within this short clip
    assert not any(f.embedded for r in results[first + 1 :] for f in r.faces)
    # the same face someone else is booked for never settles
    assert not any(r.steady for r in _run(obama, frames))
    # a gap (the face missing for a frame) breaks the steadiness: the next frame is not steady
    blank = (frames[first + 5][0], np.zeros_like(frames[0][1]))
    gap = [*frames[: first + 5], blank, *frames[first + 6 :]]
    broken = list(_run(man, gap))
    assert broken[first + 4].steady and not broken[first + 5].steady and not broken[first + 6].steady


def test_a_face_swapped_in_place_is_identified_again_at_once(man: Enrolment, man_clip: list) -> None:
    """A confident match is re-checked only every recheck_period_confident_s, and a track stays
    continuous while its box overlaps, so another person appearing where the booked one was would
    ride on the old verdict: only the face's changed look (identity_look_change) catches it."""
    frames = [(t, bgr) for i, t, bgr in man_clip if i % 5 == 0]  # the 6 fps replay grid
    swap_t = 2.0
    other = image("biden.jpg")
    swapped = [(t, face_over(bgr, other) if t >= swap_t else bgr) for t, bgr in frames]
    k = next(i for i, (t, _bgr) in enumerate(frames) if t >= swap_t)
    results = list(_run(man, swapped))
    assert results[k - 1].steady and results[k - 1].faces[0].face.verdict is Verdict.MATCH
    at_swap = results[k].faces[0]
    assert at_swap.face.track == results[k - 1].faces[0].face.track  # the tracker saw no break
    assert at_swap.embedded and not results[k].steady  # ... the look did: sampled again at once
    # without the look check the new face keeps the old verdict, steady, with no new sample
    blind = list(_run(man, swapped, settings=AnalysisSettings(identity_look_change=float("inf"))))
    assert all(r.steady and not r.faces[0].embedded for r in blind[k:])
    # the booked man's own look over the same frames never triggers a re-check once steady
    alone = list(_run(man, frames))
    first = next(i for i, r in enumerate(alone) if r.steady)  # the sample that decided the match
    assert all(r.steady and r.work["identity"] == 0 for r in alone[first + 1 :])


def test_a_face_is_voting_until_its_verdict_is_in(man: Enrolment, man_clip: list) -> None:
    """``FrameResult.voting`` (what the worker pool serves first): a new face's first samples, and a
    face swapped in place that is clearly nobody booked, decided on two samples."""
    frames = [(t, bgr) for i, t, bgr in man_clip if i % 5 == 0]  # the 6 fps replay grid
    alone = list(_run(man, frames))
    matched = next(i for i, r in enumerate(alone) if r.faces[0].face.verdict is Verdict.MATCH)
    assert matched >= 2 and all(r.voting for r in alone[:matched])
    assert not any(r.voting for r in alone[matched:])
    swap_t = 2.0
    other = image("biden.jpg")
    k = next(i for i, (t, _bgr) in enumerate(frames) if t >= swap_t)
    swapped = list(_run(man, [(t, face_over(bgr, other) if t >= swap_t else bgr) for t, bgr in frames]))
    assert not swapped[k - 1].voting
    assert swapped[k].voting and swapped[k].faces[0].face.verdict is Verdict.MATCH  # one sample: not yet
    assert swapped[k + 1].faces[0].embedded and swapped[k + 1].faces[0].face.verdict is Verdict.UNBOOKED
    assert not any(r.voting for r in swapped[k + 1 :])


def test_a_changed_picture_gets_a_person_check_even_while_steady(man: Enrolment, man_clip: list) -> None:
    frames = [(t, bgr) for i, t, bgr in man_clip if i % 5 == 0]
    pipeline = FramePipeline(man, source="cam1")
    try:
        results = [pipeline.process(bgr, t) for t, bgr in frames[:-2]]
        assert results[-1].steady and results[-1].work["pose"] == 0  # steady: pose is not due
        t, bgr = frames[-2]
        assert pipeline.process(bgr, t).work["pose"] == 0
        t, bgr = frames[-1]
        changed = pipeline.process(bgr, t, changed=True)
        assert changed.work["pose"] == 1 and changed.steady  # checked, and nobody faceless found
        # the pipeline also sees a change by itself: a real scene (the ice-block photo) filling the
        # right of the picture, behind the man, on the next frame
        scenery = image("640px-IceBlockNearJoekullsarlon.jpg")
        behind = bgr.copy()
        h, w = behind.shape[:2]
        behind[:, w * 3 // 4 :] = cv2.resize(scenery, (w - w * 3 // 4, h), interpolation=cv2.INTER_AREA)
        assert pipeline.process(behind, t + 0.17).work["pose"] == 1
        assert pipeline.process(behind, t + 0.33).work["pose"] == 0  # unchanged since: not again
    finally:
        pipeline.close()
    assert sum(r.work["pose"] for r in results) >= 1 and sum(r.work["mesh"] for r in results) >= 1
    assert sum(r.work["identity"] for r in results) == sum(f.embedded for r in results for f in r.faces)


def test_a_face_analysed_once_every_1_5_s_keeps_its_track_and_is_matched(
    man: Enrolment, man_clip: list
) -> None:
    """A starved live worker (or a calm replay) analyses a camera about once a second: the face must
    keep its track, be matched from its first few samples, and then cost no more samples."""
    sparse = [(1.5 * k, bgr) for k, (_i, _t, bgr) in enumerate(man_clip[::10])]
    results = list(_run(man, sparse))
    assert all([f.face.track for f in r.faces] == [1] for r in results)
    verdicts = [r.faces[0].face.verdict for r in results]
    assert verdicts[2] is Verdict.MATCH and set(verdicts[2:]) == {Verdict.MATCH}
    assert [r.faces[0].embedded for r in results] == [True] * 3 + [False] * (len(results) - 3)
    # the former 0.7 s memory: every analysed frame a new face, sampled again, never identified
    short = list(_run(man, sparse, settings=AnalysisSettings(track_max_missed_s=0.7)))
    assert [r.faces[0].face.track for r in short] == list(range(1, len(short) + 1))
    assert all(r.faces[0].embedded and r.faces[0].face.verdict is Verdict.PENDING for r in short)


def _matched_then_gone(man_clip: list, gap_s: float) -> tuple[list[tuple[float, np.ndarray]], int, float]:
    """The man at 6 fps until well matched (1 s), then an empty picture (camera covered) until
    ``gap_s`` after he was last seen: (frames, how many show him, when he was last seen)."""
    frames = [(t, bgr) for i, t, bgr in man_clip if i % 5 == 0 and t <= 1.0]
    seen, last = len(frames), frames[-1][0]
    blank = np.zeros_like(man_clip[0][2])
    frames += [(last + k / 6, blank) for k in range(1, round(gap_s * 6))]
    return frames, seen, last


def test_a_face_unseen_for_1_5_s_keeps_its_track_and_verdict(man: Enrolment, man_clip: list) -> None:
    frames, seen, last = _matched_then_gone(man_clip, 1.5)
    back = [(last + 1.5 + t, bgr) for i, t, bgr in man_clip if i % 5 == 0 and t <= 1.0]
    results = list(_run(man, frames + back))
    before = results[seen - 1].faces[0]
    assert before.face.verdict is Verdict.MATCH and before.face.track == 1
    assert all(r.faces == () for r in results[seen : len(frames)])  # gone for 1.5 s
    returned = results[len(frames) :]
    assert all([f.face.track for f in r.faces] == [1] for r in returned)  # the same track ...
    assert all(r.faces[0].face.verdict is Verdict.MATCH for r in returned)  # ... and verdict
    # the break makes one re-check due at once; a new track would take three samples
    assert sum(r.work["identity"] for r in returned) == 1 and returned[0].faces[0].embedded


def test_another_person_where_the_booked_face_was_after_a_gap_is_identified_afresh(
    man: Enrolment, man_clip: list
) -> None:
    frames, seen, last = _matched_then_gone(man_clip, 1.0)
    other = image("biden.jpg")
    walk_in = [(last + 1.0 + t, face_over(bgr, other)) for i, t, bgr in man_clip if i % 10 == 0 and t <= 1.0]
    results = list(_run(man, frames + walk_in))
    assert results[0].faces[0].face.track == 1
    assert results[seen - 1].faces[0].face.verdict is Verdict.MATCH
    theirs = [r.faces[0] for r in results[len(frames) :]]
    assert all(f.face.track == 2 for f in theirs)  # a new track: the man's verdict is not inherited
    assert theirs[0].embedded and all(f.face.verdict is not Verdict.MATCH for f in theirs)
    # with the look checks off, the man's track and verdict would carry over to the other person
    blind = list(_run(man, frames + walk_in, settings=AnalysisSettings(identity_look_change=float("inf"))))
    assert blind[len(frames)].faces[0].face.track == 1
    assert blind[len(frames)].faces[0].face.verdict is Verdict.MATCH
