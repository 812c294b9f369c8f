"""The clear-stranger cut-off against the fixtures' real footage: every identity sample the pipeline
takes of the booked visitor stays well inside ``clear_unbooked_distance`` (so two of them can never
make him a clear stranger), and the fixtures' strangers lie beyond it.

Each clip runs through the real pipeline (quality gates included) at 3 frames a second with every
face due for a sample on every frame, and a vote window of one sample, so each face's reported
distance is that frame's own sample.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from monitor.analysis.enrol import enrol_photos
from monitor.analysis.media import video_frames
from monitor.analysis.pipeline import FramePipeline
from monitor.analysis.settings import AnalysisSettings

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
S = AnalysisSettings()
#: every face sampled on every analysed frame, each frame's distance its own sample's
EVERY_FRAME = replace(
    S,
    sample_period_new_s=0.0,
    sample_period_uncertain_s=0.0,
    recheck_period_s=0.0,
    recheck_period_confident_s=0.0,
    vote_window=1,
)
#: clips of the booked visitor alone (with a cartoon, in the dark, half out of view, turned away)
BOOKED_ALONE = ("clean", "partial_face", "dark", "uneven_light", "cartoon_blips", "back_of_head")
#: how far inside the cut-off every sample of the booked visitor must stay
MARGIN = 0.1


def samples(clip: str, booking: str) -> list[tuple[int, float]]:
    """(track, distance to the nearest booked person) of every identity sample in ``clip``."""
    enrolment = enrol_photos({"v1": [FIXTURES / "bookings" / booking / "v1.jpg"]}, EVERY_FRAME)
    pipeline = FramePipeline(enrolment, source="v1", settings=EVERY_FRAME)
    out = []
    try:
        for _i, t, bgr in video_frames(FIXTURES / "clips" / f"{clip}.webm", step=10):
            for face in pipeline.process(bgr, t).faces:
                if face.embedded and face.face.distance is not None:
                    out.append((face.face.track, face.face.distance))
    finally:
        pipeline.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("clip", BOOKED_ALONE)
def test_no_sample_of_the_booked_visitor_comes_near_the_clear_stranger_cut_off(clip: str) -> None:
    taken = samples(clip, clip)
    assert len(taken) >= 10
    worst = max(d for _track, d in taken)
    assert worst < S.clear_unbooked_distance - MARGIN, f"{clip}: a booked sample at {worst:.3f}"


@pytest.mark.slow
def test_the_fixtures_strangers_are_clear_strangers() -> None:
    impostor = samples("clean", "impostor")  # the clean clip against someone else's photo
    assert len(impostor) >= 10 and min(d for _t, d in impostor) > S.clear_unbooked_distance
    walk_in = samples("unbooked_walk_in", "unbooked_walk_in")
    woman = [d for track, d in walk_in if track != 1]  # track 1: the booked man, there from the start
    assert woman and min(woman) > S.clear_unbooked_distance
    man = [d for track, d in walk_in if track == 1]
    assert man and max(man) < S.clear_unbooked_distance - MARGIN
