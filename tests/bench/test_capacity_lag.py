"""Issue 4's loop-lag target is judged on the max, at the default admission limit."""

from __future__ import annotations

from typing import Any

from bench.capacity import lag_rows, loop_lag_target
from monitor.call.admission import DEFAULT_MAX_CALLS


def step(mode: str, calls: int, p99: float, peak: float | None, **extra: Any) -> dict[str, Any]:
    return {"mode": mode, "calls": calls, "loop_lag_ms": {"p50": 1.0, "p99": p99, "max": peak, **extra}}


def test_a_max_over_50_ms_misses_the_target_even_when_the_p99_is_under_it() -> None:
    steps = [
        step("serve", 2, 9.8, 22.4),
        step("serve", DEFAULT_MAX_CALLS, 25.7, 51.6),
        step("serve", DEFAULT_MAX_CALLS + 1, 60.5, 145.1),
    ]
    verdict = loop_lag_target(steps, "serve")
    assert verdict["calls"] == DEFAULT_MAX_CALLS
    assert (verdict["p99_ms"], verdict["max_ms"], verdict["met"]) == (25.7, 51.6, False)


def test_the_step_at_the_default_limit_is_judged_not_the_largest_passing_one() -> None:
    steps = [step("forward", DEFAULT_MAX_CALLS, 5.5, 9.2), step("forward", DEFAULT_MAX_CALLS + 1, 6.7, 80.0)]
    assert loop_lag_target(steps, "forward")["met"] is True
    assert loop_lag_target(steps, "forward", calls=DEFAULT_MAX_CALLS + 1)["met"] is False


def test_no_verdict_without_the_step_or_without_the_max_of_the_loops_carrying_the_calls() -> None:
    assert loop_lag_target([step("naive", 1, 18, 158)], "naive")["met"] is None
    workers = loop_lag_target([step("workers", DEFAULT_MAX_CALLS, 42.2, None, front_max=15.2)], "workers")
    assert workers["met"] is None and workers["max_ms"] is None and "15.2" in workers["note"]


def test_the_table_says_met_not_met_or_not_judged() -> None:
    steps = [step("serve", DEFAULT_MAX_CALLS, 25.7, 51.6), step("forward", DEFAULT_MAX_CALLS, 5.5, 9.2)]
    modes = ("serve", "forward", "naive")
    summary = {mode: {"loop_lag_target": loop_lag_target(steps, mode)} for mode in modes}
    verdicts = [row[1] for row in lag_rows({"summary": {**summary, "calls_per_core_ratio": 3.2}})[1::2]]
    assert verdicts == ["NOT met", "met", "not judged"]
