"""The call-level parts of ``bench.accuracy``: false pauses, time to live, decision times.

- **Clean calls**: every fixture scenario whose golden timeline goes live and never pauses, with
  no injected events (found from ``fixtures/scenarios.json`` and ``fixtures/expected``, so a new
  clean fixture joins by itself), each looped (``_accuracy_replay.looped``) so that together they
  last ``CLEAN_TARGET_S``; every pause in them is a false pause. The other people's clips
  (``_accuracy_people.CLIPS``) are replayed once each, booked with their own reference frame.
- **Time to live**: the clean fixture and the other people's clips started at a few different
  frames (the analysis grid then falls differently on the same footage).
- **Intruder**: ``unbooked_walk_in`` (a second person slides in from 4.0 s, fully in by 5.0 s)
  started at different frames: pause and alert times after 4.0 s.
- **Impostor**: ``impostor`` (the man on camera, another man's reference photo) at different
  frames: time to the first pause from the first frame, and whether it ever went live.
- **Swap**: the clean call, live, then a cut to another real person's recording (scaled to
  640x480): time from the cut to the pause, per stranger.
- **Impostor matrix**: each other person's clip booked with everyone else's reference frame:
  how often a wrong person goes live (a decision-level false accept), pauses, or stays undecided.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench import ROOT
from bench._accuracy_people import CLIPS, SWAP_ONLY, Clip
from bench._accuracy_replay import Caller, CallResult, Piece, booking_for, enrolment_of, looped
from bench._accuracy_stats import events_per_hour, percentiles, proportion
from bench.media import MediaCache

FIXTURES = ROOT / "fixtures"
CLEAN_TARGET_S = 1800.0
QUICK_CLEAN_S = 40.0
WALK_IN_ENTRY_S = 4.0  # fixtures/build_fixtures.py: she starts to slide in at 4.0 s, is in by 5.0 s
PHASES = tuple(range(0, 30, 3))  # start frames: the analysis grid (every 5th frame) falls 10 ways
TRIAL_S = 8.0  # a time-to-live or impostor trial's length
SWAP_BEFORE_FRAMES = 180  # 6 s of the clean call (live at ~2.3 s) before the cut ...
SWAP_SHIFTS = (0, 2, 4)  # ... plus this many frames: the cut falls on 3 places of the analysis grid
SWAP_AFTER_S = 8.0
MATRIX_S = 6.0


_STARTED = time.perf_counter()


def _say(text: str) -> None:
    print(f"bench.accuracy: [{time.perf_counter() - _STARTED:6.0f} s] {text}", file=sys.stderr, flush=True)


def clean_scenarios() -> list[str]:
    """Scenarios whose golden timeline goes live and never pauses, with no injected events."""
    scenarios = json.loads((FIXTURES / "scenarios.json").read_text(encoding="utf-8"))
    names = []
    for name, spec in scenarios.items():
        expected = FIXTURES / spec["expected"]
        if spec.get("events") or not expected.is_file():
            continue
        lines = [json.loads(x) for x in expected.read_text(encoding="utf-8").splitlines() if x.strip()]
        states = [x.get("state") for x in lines if x.get("kind") == "state"]
        if "live" in states and "paused" not in states:
            names.append(name)
    return names


def _scenario(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((FIXTURES / "scenarios.json").read_text(encoding="utf-8"))[name]
    return spec


def _clip_path(clip: Clip, cache: MediaCache) -> Path | None:
    if clip.medium.startswith("fixtures/"):
        return ROOT / clip.medium
    return cache.path(clip.medium)


def clean_calls(caller: Caller, quick: bool) -> dict[str, Any]:
    names = clean_scenarios()
    target = (QUICK_CLEAN_S if quick else CLEAN_TARGET_S) / max(1, len(names))
    runs = []
    for name in names:
        spec = _scenario(name)
        booking, visitors = caller.fixture_booking(spec["booking"])
        pieces = looped(Piece(FIXTURES / spec["clip"]), target)
        _say(f"clean call {name}: {len(pieces)} loops")
        result = caller.call(booking, visitors, pieces)
        runs.append(_clean_run(name, spec["clip"], result, len(pieces)))
    media = sum(r["media_s"] for r in runs)
    pauses = sum(len(r["pauses"]) for r in runs)
    warnings = sum(sum(r["warnings"].values()) for r in runs)
    return {
        "scenarios": names,
        "runs": runs,
        "media_s": round(media, 1),
        "false_pauses": events_per_hour(pauses, media) if media else None,
        "warnings": events_per_hour(warnings, media) if media else None,
    }


def _clean_run(name: str, clip: str, result: CallResult, loops: int) -> dict[str, Any]:
    return {
        "name": name,
        "clip": clip,
        "loops": loops,
        "media_s": round(result.media_s, 1),
        "cpu_s": round(result.cpu_s, 1),
        "live_t": result.live_t,
        "pauses": result.pauses,
        "warnings": result.warnings(),
        "alerts": result.alerts(),
    }


def other_people(
    caller: Caller, refs: dict[str, tuple[np.ndarray, Path]], cache: MediaCache, quick: bool
) -> dict[str, Any]:
    """Each other person's clip, whole, booked with their own reference frame."""
    runs, missing = [], []
    for clip in CLIPS[1:3] if quick else CLIPS[1:]:
        path = _clip_path(clip, cache)
        if path is None or clip.person not in refs:
            missing.append(clip.person)
            continue
        embedding, photo = refs[clip.person]
        start, stop = clip.replay
        if quick:
            stop = min(stop, start + 240)
        _say(f"other person's call: {clip.person}")
        result = caller.call(
            booking_for(photo, caller.config, f"acc-{clip.person}"),
            enrolment_of(embedding),
            [Piece(path, start, stop, clip.rotate)],
        )
        runs.append({"person": clip.person, **_clean_run(clip.person, clip.medium, result, 1)})
    media = sum(r["media_s"] for r in runs)
    pauses = sum(len(r["pauses"]) for r in runs)
    return {
        "runs": runs,
        "pauses": [{"person": r["person"], **p} for r in runs for p in r["pauses"]],
        "missing": missing,
        "media_s": round(media, 1),
        "false_pauses": events_per_hour(pauses, media) if media else None,
        "never_live": [r["person"] for r in runs if r["live_t"] is None],
    }


def all_clean(fixtures: dict[str, Any], others: dict[str, Any]) -> dict[str, Any] | None:
    """False pauses over the clean fixtures and the other people's clips together."""
    media = fixtures["media_s"] + others["media_s"]
    pauses = sum(len(r["pauses"]) for r in fixtures["runs"]) + len(others["pauses"])
    return events_per_hour(pauses, media) if media else None


def time_to_live(
    caller: Caller,
    refs: dict[str, tuple[np.ndarray, Path]],
    cache: MediaCache,
    others: dict[str, Any],
    quick: bool,
) -> dict[str, Any]:
    trials: list[dict[str, Any]] = []
    spec = _scenario("clean")
    booking, visitors = caller.fixture_booking(spec["booking"])
    frames = round(TRIAL_S * 30)
    for k in PHASES[:1] if quick else PHASES:
        result = caller.call(booking, visitors, [Piece(FIXTURES / spec["clip"], k, k + frames)])
        trials.append({"person": "pyfeat_man", "start_frame": k, "live_t": result.live_t})
    for run in others["runs"]:
        trials.append({"person": run["person"], "start_frame": 0, "live_t": run["live_t"]})
    if not quick:
        for clip in CLIPS[1:]:
            path = _clip_path(clip, cache)
            if path is None or clip.person not in refs:
                continue
            embedding, photo = refs[clip.person]
            booking = booking_for(photo, caller.config, f"acc-{clip.person}")
            for k in (10, 20):
                start = clip.replay[0] + k
                result = caller.call(
                    booking, enrolment_of(embedding), [Piece(path, start, start + frames, clip.rotate)]
                )
                trials.append({"person": clip.person, "start_frame": k, "live_t": result.live_t})
    lives = [t["live_t"] for t in trials if t["live_t"] is not None]
    return {
        "trials": trials,
        "people": len({t["person"] for t in trials}),
        "live_s": percentiles(lives),
        "never_live": [t for t in trials if t["live_t"] is None],
    }


def intruder(caller: Caller, quick: bool) -> dict[str, Any]:
    spec = _scenario("unbooked_walk_in")
    booking, visitors = caller.fixture_booking(spec["booking"])
    trials: list[dict[str, Any]] = []
    for k in PHASES[:1] if quick else PHASES:
        entry = WALK_IN_ENTRY_S - k / 30
        result = caller.call(booking, visitors, [Piece(FIXTURES / spec["clip"], k, 360)])
        pause = result.first("state", after=entry, state="paused")
        alert = result.first("alert", after=entry)
        trials.append(
            {
                "start_frame": k,
                "live_before_entry": result.live_t is not None and result.live_t < entry,
                "pause_after_s": None if pause is None else round(pause["t"] - entry, 3),
                "pause_reasons": None if pause is None else pause.get("reasons"),
                "alert_after_s": None if alert is None else round(alert["t"] - entry, 3),
                "alert_reason": None if alert is None else alert["reason"],
            }
        )
    return _timed(trials, "pause_after_s", "alert_after_s", measured_from="her entrance starts (4.0 s)")


def impostor(caller: Caller, quick: bool) -> dict[str, Any]:
    spec = _scenario("impostor")
    booking, visitors = caller.fixture_booking(spec["booking"])
    trials: list[dict[str, Any]] = []
    frames = round(TRIAL_S * 30)
    for k in PHASES[:1] if quick else PHASES:
        result = caller.call(booking, visitors, [Piece(FIXTURES / spec["clip"], k, k + frames)])
        pause = result.first("state", state="paused")
        alert = result.first("alert")
        trials.append(
            {
                "start_frame": k,
                "went_live": result.live_t is not None,
                "pause_after_s": None if pause is None else pause["t"],
                "pause_reasons": None if pause is None else pause.get("reasons"),
                "alert_after_s": None if alert is None else alert["t"],
                "alert_reason": None if alert is None else alert["reason"],
            }
        )
    out = _timed(trials, "pause_after_s", "alert_after_s", measured_from="the first frame")
    out["went_live"] = proportion(sum(t["went_live"] for t in trials), len(trials))
    return out


def swaps(
    caller: Caller, refs: dict[str, tuple[np.ndarray, Path]], cache: MediaCache, quick: bool
) -> dict[str, Any]:
    spec = _scenario("clean")
    booking, visitors = caller.fixture_booking(spec["booking"])
    strangers = [SWAP_ONLY] if quick else [SWAP_ONLY, *CLIPS[1:]]
    trials: list[dict[str, Any]] = []
    missing: list[str] = []
    for clip in strangers:
        path = _clip_path(clip, cache)
        if path is None:
            missing.append(clip.person)
            continue
        start, stop = clip.replay
        piece = Piece(path, start, stop, clip.rotate, fit=True)
        after = [piece] * (2 if piece.seconds() < SWAP_AFTER_S else 1)
        for k in SWAP_SHIFTS[:1] if quick else SWAP_SHIFTS:
            before = Piece(FIXTURES / spec["clip"], 0, SWAP_BEFORE_FRAMES + k)
            result = caller.call(booking, visitors, [before, *after])
            cut = result.starts[1]
            end = cut + SWAP_AFTER_S
            pause = result.first("state", after=cut, state="paused")
            if pause is not None and pause["t"] > end:
                pause = None
            trials.append(
                {
                    "stranger": clip.person,
                    "cut_frame": SWAP_BEFORE_FRAMES + k,
                    "live_before_cut": result.live_t is not None and result.live_t < cut,
                    "pause_after_s": None if pause is None else round(pause["t"] - cut, 3),
                    "pause_reasons": None if pause is None else pause.get("reasons"),
                    "alerts_after_cut": dict(
                        Counter(r["reason"] for r in result.records if r["kind"] == "alert" and r["t"] >= cut)
                    ),
                }
            )
    out = _timed(trials, "pause_after_s", None, measured_from="the cut")
    out["missing"] = missing
    out["not_paused_within_s"] = SWAP_AFTER_S
    by_stranger: dict[str, list[float | None]] = {}
    for t in trials:
        by_stranger.setdefault(t["stranger"], []).append(t["pause_after_s"])
    out["by_stranger"] = by_stranger
    return out


def _timed(
    trials: list[dict[str, Any]], key: str, alert_key: str | None, measured_from: str
) -> dict[str, Any]:
    times = [t[key] for t in trials if t[key] is not None]
    out: dict[str, Any] = {
        "measured_from": measured_from,
        "trials": trials,
        "paused": proportion(len(times), len(trials)),
        "pause_s": percentiles(times),
        "first_pause_reasons": dict(Counter(r for t in trials for r in (t.get("pause_reasons") or [])[:1])),
    }
    if alert_key is not None:
        out["alert_s"] = percentiles([t[alert_key] for t in trials if t[alert_key] is not None])
    return out


def impostor_matrix(
    caller: Caller, refs: dict[str, tuple[np.ndarray, Path]], cache: MediaCache, quick: bool
) -> dict[str, Any]:
    """Each clip's person on camera, booked as each other clip's person."""
    clips = [c for c in CLIPS if c.person in refs and _clip_path(c, cache) is not None]
    if quick:
        clips = clips[:2]
    outcomes: list[dict[str, Any]] = []
    for on_camera in clips:
        path = _clip_path(on_camera, cache)
        assert path is not None
        start = on_camera.replay[0]
        piece = Piece(path, start, start + round(MATRIX_S * 30), on_camera.rotate)
        for booked in clips:
            if booked.person == on_camera.person:
                continue
            embedding, photo = refs[booked.person]
            result = caller.call(
                booking_for(photo, caller.config, "acc-matrix"), enrolment_of(embedding), [piece]
            )
            pause = result.first("state", state="paused")
            outcome = (
                "went_live" if result.live_t is not None
                else "paused_unbooked" if pause is not None and "unbooked_face" in pause.get("reasons", [])
                else "paused_other" if pause is not None
                else "undecided"
            )  # fmt: skip
            outcomes.append(
                {
                    "on_camera": on_camera.person,
                    "booked": booked.person,
                    "outcome": outcome,
                    "pause_t": None if pause is None else pause["t"],
                    "pause_reasons": None if pause is None else pause.get("reasons"),
                }
            )
    live_people = {x for o in outcomes if o["outcome"] == "went_live" for x in (o["on_camera"], o["booked"])}
    return {
        "seconds": MATRIX_S,
        "people": len(clips),
        "outcomes": outcomes,
        "counts": dict(Counter(o["outcome"] for o in outcomes)),
        "false_accepts": proportion(sum(o["outcome"] == "went_live" for o in outcomes), len(outcomes)),
        "false_accept_people": proportion(len(live_people), len(clips)),
        "pause_s": percentiles([o["pause_t"] for o in outcomes if o["pause_t"] is not None]),
    }
