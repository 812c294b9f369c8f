"""The soak benchmark's summary: memory growth after warm-up, drift first minute against last."""

from __future__ import annotations

from typing import Any

from bench.soak import summarise


def sample(t: float, rss: float, lag: float, latency: float) -> dict[str, Any]:
    return {
        "t_s": t,
        "relay_rss_mb": rss,
        "worker_rss_mb": 100.0,
        "loop_lag_p99_ms": lag,
        "analysis_latency_p50_ms": latency,
        "analysis_latency_p95_ms": latency * 2,
        "analysed": 50,
        "received_fps_min": 30.0,
        "forward_backlog": 0,
    }


def test_growth_is_measured_from_the_end_of_warm_up_and_drift_compares_first_and_last_minute() -> None:
    # 10 minutes sampled every 10 s: memory climbs during warm-up (ignored), then by 10 MB;
    # the loop lag doubles in the last minute, analysis latency rises from 40 to 60 ms
    samples = [
        sample(
            t,
            rss=(50.0 if t < 60 else 100.0 + (t - 60) / 54),
            lag=4.0 if t <= 540 else 8.0,
            latency=40.0 if t < 180 else 60.0,
        )
        for t in range(10, 601, 10)
    ]
    result = summarise("forward", 2, 600.0, 60.0, samples)
    assert result["memory_mb_after_warm_up"] == 200.0 and result["memory_mb_at_end"] == 210.0
    assert result["memory_growth_pct"] == 5.0
    assert result["drift_first_minute_from_s"] == 60 and result["drift_last_minute_from_s"] == 550
    assert result["loop_lag_p99_ms_first_minute"] == 4.0 and result["loop_lag_p99_ms_last_minute"] == 8.0
    assert result["loop_lag_p99_ms_drift"] == 4.0
    assert result["analysis_latency_p50_ms_drift"] == 20.0 and result["analysis_latency_p95_ms_drift"] == 40.0
    assert result["received_fps_min_last_minute"] == 30.0 and result["samples"] == samples


def test_a_run_without_analysis_reports_no_latency_rather_than_zero() -> None:
    samples = [{**sample(t, 100.0, 4.0, 0.0), "analysis_latency_p50_ms": None} for t in (10, 20, 30)]
    result = summarise("naive", 1, 30.0, 10.0, samples)
    assert result["analysis_latency_p50_ms_first_minute"] is None
    assert result["analysis_latency_p50_ms_drift"] is None
    assert result["memory_growth_pct"] == 0.0
