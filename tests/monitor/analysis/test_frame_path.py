"""The one frame path (sampler → analysis → observation) on a real clip with the real pipeline, as
replay and the bench's naive relay compose it: inline analysis hands its result back before the
sample is marked taken, so a steady result still sets the calm pace."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.analysis.enrol import enrol_booking
from monitor.analysis.frame_path import Analysed, FramePath, InlineAnalysis, Sampler
from monitor.analysis.pipeline import FramePipeline
from monitor.bookings import load_booking
from monitor.media.picture import Picture
from monitor.media.video_file import Video
from policies.config import load_policy
from policies.events import Role

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
CLEAN = FIXTURES / "clips" / "clean.webm"
CLEAN_BOOKING = FIXTURES / "bookings" / "clean" / "booking.json"


def test_inline_results_come_back_stamped_and_steady_ones_slow_the_pace() -> None:
    booking = load_booking(CLEAN_BOOKING, load_policy())
    visitors, _prisoner = enrol_booking(booking)
    source = booking.main_caller.id
    results: list[Analysed] = []

    def analysed(result: Analysed) -> None:  # as replay's: learn, then judge
        results.append(result)
        path.learned(result)

    analysis = InlineAnalysis(analysed)
    analysis.add(source, FramePipeline(visitors, source=source, role=Role.VISITOR))
    path = FramePath(Sampler(source, 6.0, 2.0, offset=30.0), analysis)
    offered: list[float] = []
    try:
        with Video(CLEAN) as video:
            for tf in video.frames():
                if tf.t >= 8.0:
                    break
                offered.append(tf.t)
                sample = path.offer(tf.t, 1 / 30, True, Picture(tf.frame))
                if sample is not None:
                    assert results and results[-1].sample is sample  # back before offer returned
    finally:
        analysis.close()
    assert not analysis.busy(source)
    for result in results:  # stamped in call time: the sampler's offset plus media time
        assert result.observation.t == result.sample.at == 30.0 + result.sample.t
        assert result.observation.source == source and result.result is not None
    steady = [a for a in results if a.steady]
    assert steady, "the booked man alone in view never made a steady frame"
    # after the first steady frame the calm pace (2 a second) applies while frames stay steady:
    # well under the busy grid's 6 a second
    first = steady[0].sample.t
    later = [a for a in results if a.sample.t > first]
    assert later and any(a.sample.calm for a in later)
    assert len(later) < 6 * (offered[-1] - first) * 0.75, len(later)
