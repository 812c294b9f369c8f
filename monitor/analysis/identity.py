"""Who is each face track? Sampled dlib embeddings, voted per track, against the booked people.

Theory of operation: a track is embedded when it appears, then every ``sample_period_new_s``
until it has ``votes`` samples (or while its latest sample is *clearly far*, below), every
``sample_period_uncertain_s`` while its verdict is PENDING or its latest sample disagrees with its
verdict, every ``recheck_period_s`` once decided, and only
every ``recheck_period_confident_s`` once *confidently* matched (matched, and the latest sample
voted for that person too). A confident track that is *disturbed* (the pipeline saw a break: the
track was missed or jumped, the face was partial or turned away, or it no longer looks as it did
at its latest sample) is due again at once; that is what catches one person taking another's
place, since a swap in front of the camera breaks the track or the view or changes the look.
Samples are only taken when the face passes the quality gates (``quality.py``). At most one face
is embedded per analysed frame (the most overdue), which bounds the cost of a frame. Each sample
holds the distance to every booked person. Over the last ``vote_window`` samples of the track:

- a sample *votes for* person P when P is closest, at distance <= ``match_distance``, and the
  next booked person is at least ``match_margin`` further;
- a sample is *far* when every booked person is further than ``unbooked_distance``, and *clearly
  far* when every one is further than ``clear_unbooked_distance``;
- UNBOOKED when the latest ``clear_unbooked_votes`` samples are all clearly far (a clear stranger:
  whatever older samples of the track said, the face in view now is nobody booked);
- else MATCH P needs ``votes`` votes for P and more votes than far samples; UNBOOKED needs
  ``votes`` far samples; anything else is PENDING (new track, poor quality, grey-zone distances).

Why a clear stranger needs fewer samples. With the default policy (the ``unbooked_face`` window as
long as ``clear_after_s``), the first UNBOOKED verdict of a face already decides the pause, so what
the pause rests on is the samples behind that verdict, and they must stay as safe as ``votes`` far ones. Far
samples of one face come from seconds of the same view and are not independent (a booked face
covered by a hand measured 0.61 on every sample for 7 s), so it is the distance, not the count,
that keeps a booked face out: ``clear_unbooked_distance`` (0.70) lies 0.2 beyond every sample of a
booked visitor measured on the fixtures' real footage (at most 0.50 through the pipeline's quality
gates, ``python -m monitor.analysis.calibrate``) and beyond that covered face, while the real
strangers measured sit at 0.74-0.91 (the fixtures' impostor and walk-in, carphone's man, the group
photo's strangers); two samples at least ``sample_period_new_s`` apart keep one bad frame from
deciding. Strangers nearer than that (0.50-0.70: lookalikes) still need ``votes`` far samples.

Between samples the track carries its verdict, so the tracker's stable ids carry identity.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from monitor.analysis.gallery import Enrolment
from monitor.analysis.settings import AnalysisSettings
from policies.events import Verdict

Sample = tuple[tuple[float, str], ...]  # (distance, person id) for every booked person, closest first


@dataclass(frozen=True, slots=True)
class IdentityDecision:
    verdict: Verdict
    participant: str | None  # the match, or the best guess when not matched
    distance: float | None  # median distance to ``participant`` over the window
    samples: int


def sample_of(distances: dict[str, float]) -> Sample:
    return tuple(sorted((d, pid) for pid, d in distances.items()))


def clearly_far(sample: Sample, settings: AnalysisSettings) -> bool:
    """Every booked person is further than ``clear_unbooked_distance`` (module doc)."""
    return sample[0][0] > settings.clear_unbooked_distance


def decide(samples: tuple[Sample, ...], settings: AnalysisSettings) -> IdentityDecision:
    window = [s for s in samples[-settings.vote_window :] if s]
    if not window:
        return IdentityDecision(Verdict.PENDING, None, None, 0)
    latest = window[-settings.clear_unbooked_votes :]
    clear = len(latest) == settings.clear_unbooked_votes and all(clearly_far(s, settings) for s in latest)
    votes: Counter[str] = Counter()
    far = 0
    for sample in window:
        best_d, best_id = sample[0]
        second_d = sample[1][0] if len(sample) > 1 else float("inf")
        if best_d <= settings.match_distance and second_d - best_d >= settings.match_margin:
            votes[best_id] += 1
        if best_d > settings.unbooked_distance:
            far += 1
    per_person: dict[str, list[float]] = {}
    for sample in window:
        for d, pid in sample:
            per_person.setdefault(pid, []).append(d)
    medians = {pid: statistics.median(ds) for pid, ds in per_person.items()}
    guess = min(medians, key=lambda pid: medians[pid])
    if clear:  # the nearest booked person to the face in view now, over its clear samples
        now = {pid: statistics.median(d for s in latest for d, p in s if p == pid) for pid in medians}
        nearest = min(now, key=lambda pid: now[pid])
        return IdentityDecision(Verdict.UNBOOKED, nearest, now[nearest], len(window))
    if votes:
        top, n = votes.most_common(1)[0]
        if n >= settings.votes and n > far:
            return IdentityDecision(Verdict.MATCH, top, medians[top], len(window))
    if far >= settings.votes:
        return IdentityDecision(Verdict.UNBOOKED, guess, medians[guess], len(window))
    return IdentityDecision(Verdict.PENDING, guess, medians[guess], len(window))


def votes_for(sample: Sample, participant: str, settings: AnalysisSettings) -> bool:
    """Whether ``sample`` is a vote for ``participant`` (closest, close enough, with the margin)."""
    best_d, best_id = sample[0]
    second_d = sample[1][0] if len(sample) > 1 else float("inf")
    return (
        best_id == participant
        and best_d <= settings.match_distance
        and second_d - best_d >= (settings.match_margin)
    )


@dataclass(slots=True)
class TrackIdentity:
    samples: deque[Sample] = field(default_factory=deque)
    last_sample_t: float | None = None
    decision: IdentityDecision = IdentityDecision(Verdict.PENDING, None, None, 0)
    disturbed: bool = False  # a break since the last sample (set by the pipeline)

    def _agrees(self, sample: Sample, settings: AnalysisSettings) -> bool:
        d = self.decision
        if d.verdict is Verdict.MATCH and d.participant is not None:
            return votes_for(sample, d.participant, settings)
        if d.verdict is Verdict.UNBOOKED:
            return sample[0][0] > settings.unbooked_distance
        return False

    def uncertain(self, settings: AnalysisSettings) -> bool:
        """No verdict yet, or the latest sample disagrees with the verdict: sample it fast."""
        return (
            self.decision.verdict is Verdict.PENDING
            or not self.samples
            or not self._agrees(self.samples[-1], settings)
        )

    def confident(self, settings: AnalysisSettings) -> bool:
        """A match its latest sample voted for, with no break in the track since that sample."""
        return (
            self.decision.verdict is Verdict.MATCH
            and not self.disturbed
            and bool(self.samples)
            and self._agrees(self.samples[-1], settings)
        )

    def voting(self, settings: AnalysisSettings) -> bool:
        """Its verdict waits on its next samples: a new track's first votes, or a face that may be a
        clear stranger (its latest sample clearly far, not yet unbooked). They come fast."""
        d = self.decision
        if d.verdict is Verdict.PENDING and len(self.samples) < settings.votes:
            return True
        maybe_stranger = bool(self.samples) and clearly_far(self.samples[-1], settings)
        return d.verdict is not Verdict.UNBOOKED and maybe_stranger

    def period(self, settings: AnalysisSettings) -> float:
        """Seconds between samples for this track as it stands."""
        d = self.decision
        fast = self.voting(settings)
        if d.verdict is Verdict.PENDING:
            return settings.sample_period_new_s if fast else settings.sample_period_uncertain_s
        if self.disturbed:
            return 0.0
        if self.uncertain(settings):
            return settings.sample_period_new_s if fast else settings.sample_period_uncertain_s
        if self.confident(settings):
            return settings.recheck_period_confident_s
        return settings.recheck_period_s

    def overdue(self, t: float, settings: AnalysisSettings) -> float | None:
        """How long past due a sample is (>= 0), or None when none is due."""
        if self.last_sample_t is None:
            return float("inf")
        late = t - self.last_sample_t - self.period(settings)
        return late if late >= 0 else None

    def add(
        self, sample: Sample, t: float, settings: AnalysisSettings, *, may_be_far: bool = True
    ) -> IdentityDecision:
        """Count ``sample`` (taken at ``t``). One that is far from everyone booked is dropped
        unless ``may_be_far``: it is taken as a doubtful view, never as evidence of a stranger."""
        if not may_be_far and sample[0][0] > settings.unbooked_distance:
            self.last_sample_t = t
            return self.decision
        self.samples.append(sample)
        while len(self.samples) > settings.vote_window:
            self.samples.popleft()
        self.last_sample_t = t
        self.disturbed = False
        self.decision = decide(tuple(self.samples), settings)
        return self.decision


class IdentityBook:
    """Per-track identity state of one source."""

    def __init__(self, enrolment: Enrolment, settings: AnalysisSettings) -> None:
        self.enrolment = enrolment
        self.settings = settings
        self._tracks: dict[int, TrackIdentity] = {}

    @property
    def enabled(self) -> bool:
        """An enrolment with nobody in it turns identity off (every face stays PENDING)."""
        return bool(self.enrolment.people)

    def state(self, track: int) -> TrackIdentity:
        return self._tracks.setdefault(track, TrackIdentity())

    def pick_due(self, t: float, eligible: tuple[int, ...]) -> int | None:
        """The most overdue eligible track, or None."""
        if not self.enabled:
            return None
        lateness = ((self.state(tid).overdue(t, self.settings), tid) for tid in eligible)
        due = [(late, -tid) for late, tid in lateness if late is not None]
        return -max(due)[1] if due else None

    def add_embedding(
        self, track: int, embedding: np.ndarray, t: float, *, may_be_far: bool = True
    ) -> IdentityDecision:
        sample = sample_of(self.enrolment.distances(embedding))
        return self.state(track).add(sample, t, self.settings, may_be_far=may_be_far)

    def decision(self, track: int) -> IdentityDecision:
        return self.state(track).decision

    def disturb(self, track: int) -> None:
        """The pipeline saw a break in ``track`` (missed, jumped, partial, turned away, look changed)."""
        self.state(track).disturbed = True

    def voting(self, track: int) -> bool:
        """``track``'s verdict waits on its next samples (:meth:`TrackIdentity.voting`)."""
        return self.enabled and self.state(track).voting(self.settings)

    def settled(self, track: int) -> bool:
        """Matched, and the latest sample agrees: nothing for identity to hurry about."""
        st = self.state(track)
        return st.decision.verdict is Verdict.MATCH and not st.disturbed and not st.uncertain(self.settings)

    def forget_except(self, live: tuple[int, ...]) -> None:
        for tid in set(self._tracks) - set(live):
            del self._tracks[tid]
