"""The pause-latency bench's figures: the legs and splits of each trial, summaries per condition,
targets, and the printed report (see :mod:`bench.pause_latency` for what each one measures)."""

from __future__ import annotations

from typing import Any

LEGS = ("gate_closed_on_prison_side_s", "alert_on_console_ws_s", "paused_decision_on_hub_s")
SPLITS = (
    "split_seen_s",
    "split_first_analysed_s",
    "split_analysis_s",
    "split_identity_s",
    "split_window_s",
    "split_fire_s",
)
#: Each condition's target for the p95 of the gate and console legs.
TARGET_P95_S = {"quiet": 1.0, "hog": 1.5}


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p95 (nearest rank) and max, in seconds to the millisecond."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    middle = len(ordered) // 2
    p50 = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    p95 = ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))]
    return {"n": len(values), "p50": round(p50, 3), "p95": round(p95, 3), "max": round(ordered[-1], 3)}


def condition_figures(
    condition: str,
    trials: int,
    legs: dict[str, list[float]],
    reasons: dict[str, int],
    loads: list[float],
    hog_cores: list[float],
) -> dict[str, Any]:
    """One condition's figures: each leg and split, its alert reasons, the machine's 1-minute load
    average over its trials, the cores its hog got, and whether it met its target (gate and console
    p95 within ``TARGET_P95_S``, every trial paused)."""
    target = TARGET_P95_S[condition]
    return {
        **{key: summary(values) for key, values in legs.items()},
        "alert_reasons": reasons,
        "load_average_mean": round(sum(loads) / len(loads), 2) if loads else None,
        "load_average_max": round(max(loads), 2) if loads else None,
        "hog_cores_mean": round(sum(hog_cores) / len(hog_cores), 2) if hog_cores else None,
        "target_p95_s": target,
        "target_met": all(
            len(legs[k]) == trials and summary(legs[k]).get("p95", 99) <= target for k in LEGS[:2]
        ),
    }


def split_trial(
    legs: dict[str, list[float]],
    analysed: list[tuple[float, float, str]],
    mono_of_call: float,
    switched: float,
    seen: float,
    due: float,
    published: float,
) -> dict[str, Any]:
    """One trial's split (appended to ``legs``, returned for the trial's row): the finding starts at
    ``seen`` (monotonic), is due at ``due`` and was published at ``published``; ``analysed`` holds
    (back from the worker, frame's call time, clip) for the measured visitor's analysed frames."""
    row: dict[str, Any] = {"seen_s": seen - switched, "window_s": due - seen, "fire_s": published - due}
    first = next(((back, t) for back, t, clip in analysed if clip == "intruder" and back >= switched), None)
    if first is not None:
        arrived = mono_of_call + first[1]
        row.update(first_analysed_s=arrived - switched, analysis_s=first[0] - arrived)
        row["identity_s"] = seen - arrived
        row["intruder_frames_analysed_before_finding"] = sum(
            1
            for back, t, clip in analysed
            if clip == "intruder" and back >= switched and mono_of_call + t < seen
        )
    for key in ("seen_s", "first_analysed_s", "analysis_s", "identity_s", "window_s", "fire_s"):
        if key in row:
            legs[f"split_{key}"].append(row[key])
            row[key] = round(row[key], 3)
    return row


def print_report(p: dict[str, Any]) -> None:
    """Print one run's figures (``run``'s result), a table per condition."""
    conditions = p["conditions"]
    load = p.get("load_received_fps")
    print(
        f"scenario {p['scenario']}: {p['load_calls']} load calls (received fps {load}), "
        f"{p['trials_per_condition']} trials per condition, relay {p['relay']}"
    )
    for c in conditions:
        figures = p[c]
        print(
            f"\n{c}: load average {figures['load_average_mean']} (max {figures['load_average_max']}), "
            f"hog {figures['hog_cores_mean']} cores"
        )
        print(f"{'what':42} {'p50':>6} {'p95':>6} {'max':>6}  n")
        for key in (*LEGS, *SPLITS):
            s = figures[key]
            print(f"{key:42} {s.get('p50', '-'):>6} {s.get('p95', '-'):>6} {s.get('max', '-'):>6}  {s['n']}")
        met = "met" if figures["target_met"] else "NOT met"
        target = figures["target_p95_s"]
        print(
            f"alert reasons: {figures['alert_reasons']}; target p95 <= {target} s (gate and console): {met}"
        )
