"""The relay bench's call has both directions analysed: the prisoner is booked with a reference
photo of the man the prison side's camera shows, and the real pipeline matches him to it."""

from __future__ import annotations

from bench.relay import CLIPS, PRISONER_PHOTO, both_sides_booking, summary
from signalling.client import load_clip


def test_the_prison_side_camera_is_matched_to_the_prisoner_booked_with_his_photo() -> None:
    from monitor.analysis.enrol import enrol_booking
    from monitor.analysis.pipeline import FramePipeline
    from policies.events import Role, Verdict

    booking = both_sides_booking("bench-test")
    assert booking.prisoner.reference_photos == (PRISONER_PHOTO,)
    _visitors, prisoner = enrol_booking(booking)
    assert prisoner is not None and prisoner.ids == (booking.prisoner.id,)
    pipeline = FramePipeline(prisoner, source=booking.prisoner.id, role=Role.PRISONER)
    try:
        faces = []
        for i, image in enumerate(load_clip(CLIPS / "clean.webm", max_frames=30)[::3]):
            faces = list(pipeline.process(image, i / 10).observation.faces)
    finally:
        pipeline.close()
    assert [(f.verdict, f.participant) for f in faces] == [(Verdict.MATCH, booking.prisoner.id)]


def test_the_lag_summary_has_the_p99_next_to_the_max() -> None:
    lags = [1.0] * 98 + [30.0, 70.0]
    got = summary(lags)
    assert (got["p50"], got["p99"], got["max"]) == (1.0, 70.0, 70.0)
    assert summary([float(i) for i in range(1000)])["p99"] == 990.0
