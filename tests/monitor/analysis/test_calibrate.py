"""The calibration arithmetic on real embeddings of the test media, at the chosen settings."""

from __future__ import annotations

from analysis_media import MEDIA, frame

from monitor.analysis.calibrate import Sample, far_rates, pair_table, vote_rates
from monitor.analysis.detect import FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.frame import Frame
from monitor.analysis.media import video_frames
from monitor.analysis.settings import AnalysisSettings

S = AnalysisSettings()


def test_no_false_match_and_few_misses_at_the_chosen_settings(
    detector: FaceDetector, embedder: Embedder
) -> None:
    def one(f: Frame) -> object:
        (d,) = detector.detect(f)
        return embedder.embed(f, d.box)

    samples = [
        Sample(who, name, True, one(frame(name)))  # type: ignore[arg-type]
        for who, name in (
            ("man", "single_face.jpg"),
            ("obama", "obama.jpg"),
            ("obama", "obama2.jpg"),
            ("obama", "obama3.jpg"),
            ("biden", "biden.jpg"),
            ("hopper", "grace_hopper_512x512.jpg"),
            ("collins", "astronaut.png"),
        )
    ]
    samples += [
        Sample("man", f"single_face.mp4#{i}", False, one(Frame(bgr)))  # type: ignore[arg-type]
        for i, _t, bgr in video_frames(MEDIA / "single_face.mp4", step=6)
    ]
    table = pair_table(samples)
    genuine = [r for r in table if r["genuine"]]
    impostor = [r for r in table if not r["genuine"]]
    assert {(r["a"], r["b"]) for r in genuine} == {("man", "man"), ("obama", "obama")}
    assert max(float(str(r["max"])) for r in genuine) < min(float(str(r["min"])) for r in impostor)
    rates = vote_rates(samples, S.match_distance, S.match_margin)
    assert rates["false_matches"] == 0 and rates["impostor_trials"] > 200
    assert rates["false_non_match_rate"] < 0.25  # single samples; voting over 5 absorbs these
    loose = vote_rates(samples, 0.9, 0.0)
    assert loose["false_matches"] > 0  # the counting does count: a silly threshold lets impostors in
    clear = far_rates(samples, S.clear_unbooked_distance)
    assert clear["genuine_trials"] > 50 and clear["genuine_far"] == 0  # no booked sample a clear stranger
    assert clear["genuine_nearest_max"] < S.clear_unbooked_distance - 0.1
    assert clear["impostor_far_rate"] > 0.5  # most strangers here are clear ones
    assert far_rates(samples, 0.3)["genuine_far"] > 0  # the counting does count
