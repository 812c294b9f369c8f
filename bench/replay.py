"""Replay speed on one core: `monitor replay` of 640x480 30 fps fixture clips, as a multiple of real time.

``python -m bench.replay [--json bench/results/replay.json] [--rates 30,10,7.5,6,5,3]``

The process pins itself to one CPU and one thread per math library before anything heavy loads.
For each clip it measures:

- decode only (VP8 → frames, no colour conversion): the floor no replay can beat;
- decode + RGB conversion of every frame: what analysing every frame would pay before analysis
  (replay converts only the analysed frames, straight to RGB, the layout the models read);
- the full replay with the default cadence (``monitor/cadence.py``: 6 analysed frames a second
  while anything changes, 2 while the call is live and steady, plus frames the change gate adds;
  the counts of analysed, calm, gated and deliberately skipped frames are reported): wall time of
  the replay loop (decode, analysis, policy, timeline) → multiple of real time; its CPU time too
  (``process_time``: robust when other processes share the machine); the one-off set-up
  (enrolment of the booking's photos and model loading) separately;
- per-stage cost per analysed frame and per second of media, from ``FrameResult.timings_ms``;
- where a second of media goes (``ms_per_media_s``): decoding (with the conversions of analysed
  frames), analysis, and the rest (policy, cadence, timeline, the Python loop), which add up to the
  loop's wall time; and for the steady state, whether the 20x target is met and, if not, how much
  analysis a media second may cost for 20x given the decoding measured in the same run.

The clean clip is also looped to 60 s (packets remuxed, no re-encoding) for the steady-state
speed of a long call, where identity's start-up samples no longer dominate. Each measurement is
repeated (``--trials``) and the fastest run kept. Then the clean clip at several busy analysis
rates (the calm pace stays 2 a second): speed against how early the call goes live (the clean
call's target is live within 3 s), which is what picks the default rate. On a shared machine
compare the replay with the decode-only floor measured in the same run: decoding cannot be
skipped, so ``x_realtime_cpu`` of the replay is bounded by that of decoding.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import RESULTS, ROOT, machine, pin_to_one_core, write_json

CLIPS = ("clean", "unbooked_walk_in")
SWEEP_CLIP = "clean"
LOOPS = 6  # the clean clip played 6 times: a 60 s call, identity's start-up cost amortised


def _decode(path: Path, convert: bool) -> dict[str, float]:
    from monitor.media import Video

    wall0, cpu0 = time.perf_counter(), time.process_time()
    n, last = 0, 0.0
    with Video(path) as video:
        for tf in video.frames():
            if convert:
                tf.rgb()
            n += 1
            last = tf.t
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    media = last + 1 / 30
    return {
        "frames": n,
        "media_s": round(media, 3),
        "ms_per_frame": round(wall / n * 1000, 3),
        "x_realtime_wall": round(media / wall, 1),
        "x_realtime_cpu": round(media / cpu, 1),
    }


def _replay(name: str, fps: float, clip: Path | None = None) -> dict[str, Any]:
    from monitor.bookings import load_booking
    from monitor.replay import replay_file
    from policies.config import load_policy

    scenario = json.loads((ROOT / "fixtures" / "scenarios.json").read_text(encoding="utf-8"))[name]
    config = load_policy()
    booking = load_booking(ROOT / "fixtures" / scenario["booking"], config)
    out = io.StringIO()
    wall0 = time.perf_counter()
    path = clip if clip is not None else ROOT / "fixtures" / scenario["clip"]
    stats = replay_file(path, booking, config, out, analysis_fps=fps)
    total_wall = time.perf_counter() - wall0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    setup = total_wall - stats.wall_s
    live = next((x["t"] for x in lines if x["kind"] == "state" and x["state"] == "live"), None)
    n = max(stats.analysed, 1)
    return {
        "clip": scenario["clip"] if clip is None else f"{scenario['clip']} looped to {stats.media_s:.0f} s",
        "analysis_fps": fps,
        "frames": stats.frames,
        "analysed": stats.analysed,
        "analysed_calm": stats.analysed_calm,  # while the call was live and the picture steady
        "analysed_by_change_gate": stats.gated,
        "skipped": stats.frames - stats.analysed,  # decoded, deliberately not analysed
        "media_s": round(stats.media_s, 3),
        "setup_s": round(setup, 3),
        "loop_wall_s": round(stats.wall_s, 3),
        "x_realtime_wall": round(stats.media_s / stats.wall_s, 1),
        "loop_cpu_s": round(stats.cpu_s, 3),
        "x_realtime_cpu": round(stats.media_s / max(stats.cpu_s, 1e-9), 1),
        "decode_share": round(stats.decode_s / stats.wall_s, 3),
        "ms_per_media_s": _split(stats),
        "stage_ms_per_analysed_frame": {k: round(v / n, 2) for k, v in stats.stage_ms.items()},
        "stage_ms_per_media_s": {k: round(v / stats.media_s, 1) for k, v in stats.stage_ms.items()},
        "first_live_t": live,
        "pauses": sum(1 for x in lines if x["kind"] == "state" and x["state"] == "paused"),
    }


def _split(stats: Any) -> dict[str, float]:
    """Wall ms per media second: decoding (+ conversions), analysis (sum of the stages), the rest."""
    media = max(stats.media_s, 1e-9)
    decode = stats.decode_s * 1000 / media
    analysis = stats.stage_ms.get("total", 0.0) / media
    loop = stats.wall_s * 1000 / media
    return {
        "decode": round(decode, 1),
        "analysis": round(analysis, 1),
        "rest": round(loop - decode - analysis, 1),
        "loop": round(loop, 1),
    }


def _target(steady: dict[str, Any]) -> dict[str, Any]:
    """The 20x target on the steady state: met or not, and the analysis it leaves room for."""
    split = steady["ms_per_media_s"]
    budget = 1000 / 20 - split["decode"] - split["rest"]
    return {
        "x_realtime_cpu": steady["x_realtime_cpu"],
        "x_realtime_wall": steady["x_realtime_wall"],
        "met": steady["x_realtime_cpu"] >= 20,
        "analysis_ms_per_media_s": split["analysis"],
        "analysis_budget_ms_per_media_s": round(budget, 1),
    }


def _looped(src: Path, times: int, dst: Path) -> None:
    """``src`` played ``times`` times in a row, by remuxing its packets (no re-encoding)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="webm") as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream_from_template(istream)
        packets = [p for p in inp.demux(istream) if p.dts is not None and p.pts is not None]
        pts = [int(p.pts or 0) for p in packets]
        span = max(pts) + (pts[1] - pts[0])
        for k in range(times):
            for p, t in zip(packets, pts, strict=True):
                p.pts = p.dts = t + k * span
                p.stream = ostream
                out.mux(p)


def _best(trials: int, measure: Any, *args: Any) -> dict[str, Any]:
    """The fastest of ``trials`` runs (other processes only ever slow a run down)."""
    runs = [measure(*args) for _ in range(max(1, trials))]
    key = "loop_wall_s" if "loop_wall_s" in runs[0] else "ms_per_frame"
    best = min(runs, key=lambda r: r[key])
    best["trials"] = len(runs)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "replay.json")
    parser.add_argument("--rates", default="30,10,7.5,6,5,3", help="analysis rates (per s) for the sweep")
    parser.add_argument("--trials", type=int, default=3, help="runs per measurement; the fastest is kept")
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()

    from monitor.replay import ANALYSIS_FPS

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    result: dict[str, Any] = {
        "machine": {**machine(), "pinned_cpu": cpu},
        "default_analysis_fps": ANALYSIS_FPS,
    }
    clips: dict[str, Any] = {}
    for name in CLIPS:
        path = ROOT / "fixtures" / "clips" / f"{name}.webm"
        print(f"bench.replay: {name}", file=sys.stderr, flush=True)
        clips[name] = {
            "decode_only": _best(args.trials, _decode, path, False),
            "decode_rgb_every_frame": _best(args.trials, _decode, path, True),
            "replay": _best(args.trials, _replay, name, ANALYSIS_FPS),
        }
    result["clips"] = clips
    print(f"bench.replay: {SWEEP_CLIP} looped {LOOPS} times (steady state)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        long_clip = Path(tmp) / "long.webm"
        _looped(ROOT / "fixtures" / "clips" / f"{SWEEP_CLIP}.webm", LOOPS, long_clip)
        steady = _best(max(1, args.trials - 1), _replay, SWEEP_CLIP, ANALYSIS_FPS, long_clip)
    result["steady_state"] = steady
    result["target_20x"] = _target(steady)
    sweep = []
    for fps in rates:
        print(f"bench.replay: {SWEEP_CLIP} at {fps:g} analysed frames/s", file=sys.stderr, flush=True)
        run = _best(max(1, args.trials - 1), _replay, SWEEP_CLIP, fps)
        sweep.append(
            {
                k: run[k]
                for k in (
                    "analysis_fps",
                    "x_realtime_wall",
                    "x_realtime_cpu",
                    "first_live_t",
                    "pauses",
                    "setup_s",
                )
            }
        )
    result["rate_sweep"] = {"clip": f"clips/{SWEEP_CLIP}.webm", "runs": sweep}

    table: list[list[Any]] = []
    for name, c in clips.items():
        r = c["replay"]
        table += [
            [f"{name}: decode only", c["decode_only"]["x_realtime_wall"], "x real time"],
            [f"{name}: decode + RGB all", c["decode_rgb_every_frame"]["x_realtime_wall"], "x real time"],
            [f"{name}: replay @{ANALYSIS_FPS:g} fps (wall)", r["x_realtime_wall"], "x real time"],
            [f"{name}: replay @{ANALYSIS_FPS:g} fps (cpu)", r["x_realtime_cpu"], "x real time"],
            [f"{name}: set-up (enrol + models)", r["setup_s"], "s"],
            [f"{name}: analysis per media second", r["stage_ms_per_media_s"].get("total", 0.0), "ms"],
        ]
        for stage, ms in r["stage_ms_per_analysed_frame"].items():
            table.append([f"{name}: {stage}", ms, "ms / analysed frame"])
    table += [
        [f"{steady['clip']}: frames analysed", steady["analysed"], f"of {steady['frames']} decoded"],
        [f"{steady['clip']}: replay (wall)", steady["x_realtime_wall"], "x real time"],
        [f"{steady['clip']}: replay (cpu)", steady["x_realtime_cpu"], "x real time"],
        [f"{steady['clip']}: analysis per media second", steady["stage_ms_per_media_s"].get("total"), "ms"],
    ]
    for part, ms in steady["ms_per_media_s"].items():
        table.append([f"{steady['clip']}: {part}", ms, "ms wall / media second"])
    for stage, ms in steady["stage_ms_per_media_s"].items():
        if stage != "total":
            table.append([f"{steady['clip']}: {stage}", ms, "ms / media second"])
    goal = result["target_20x"]
    table.append(
        [
            "target >= 20x (steady state, cpu)",
            goal["x_realtime_cpu"],
            f"{'met' if goal['met'] else 'NOT met'}; analysis allowed for 20x "
            f"{goal['analysis_budget_ms_per_media_s']} ms/media s, spent {goal['analysis_ms_per_media_s']}",
        ]
    )
    for run in sweep:
        table.append(
            [
                f"sweep @{run['analysis_fps']:g} fps",
                run["x_realtime_wall"],
                f"x real time (wall); cpu {run['x_realtime_cpu']}x; live at {run['first_live_t']} s",
            ]
        )
    result["table"] = table
    result["machine"]["load_average_at_end"] = machine()["load_average_at_start"]
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
