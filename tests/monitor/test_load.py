"""The load probe: CPU share of this server and its worker processes, analysis wait, loop lag."""

from __future__ import annotations

import subprocess
import sys
import time

from monitor.load import LoadProbe, LoopLag, cpu_seconds


def test_a_busy_worker_process_shows_in_the_cpu_share() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"]
    )
    try:
        probe = LoadProbe(LoopLag(), pids=lambda: [busy.pid], cores=1)
        probe.sample()
        before = cpu_seconds(busy.pid)
        time.sleep(1.0)
        probe.sample()
        spun = (cpu_seconds(busy.pid) or 0.0) - (before or 0.0)
        share = probe.cpu()
        assert share is not None
        # the child spins (on a shared machine it gets what it gets); this process sleeps
        assert spun > 0.05 and spun * 0.8 < share < spun * 1.2 + 0.1, (share, spun)
    finally:
        busy.kill()
        busy.wait()
    assert cpu_seconds(busy.pid) is None  # gone: its figures are not read


def test_no_share_before_two_samples_and_idle_is_near_zero() -> None:
    probe = LoadProbe(LoopLag(), pids=list, cores=2)
    assert probe.cpu() is None and probe.analysis_wait_ms() is None
    probe.sample()
    time.sleep(0.3)
    probe.sample()
    share = probe.cpu()
    assert share is not None and share < 0.2


def test_the_analysis_wait_is_the_mean_wait_of_the_frames_analysed_in_the_window() -> None:
    totals = {"call/v1": (100, 1.0)}
    probe = LoadProbe(LoopLag(), pids=list, analysis=lambda: dict(totals), window_s=1.0, sample_s=0.5)
    probe.sample()
    totals["call/v1"] = (120, 1.0 + 20 * 0.030)  # 20 frames more, each waited 30 ms
    totals["call/v2"] = (10, 10 * 0.090)  # a new stream: 10 frames, 90 ms each
    probe.sample()
    wait = probe.analysis_wait_ms()
    assert wait is not None and abs(wait - (20 * 30 + 10 * 90) / 30) < 1e-6
    del totals["call/v2"]  # a stream that ends takes nothing back
    totals["call/v1"] = (120, 1.6)
    probe.sample()
    probe.sample()
    probe.sample()  # the window (3 samples) now holds no frame analysed
    assert probe.analysis_wait_ms() is None


def test_the_loop_lag_quantile_can_look_at_the_last_seconds_only() -> None:
    lag = LoopLag(interval=0.1, window_s=60.0)
    for _ in range(100):
        lag.record(0.2)  # a bad minute ...
    for _ in range(100):
        lag.record(0.001)  # ... then 10 quiet seconds
    assert lag.quantile(0.99) == 0.2
    assert lag.quantile(0.99, 10.0) == 0.001
    assert LoadProbe(lag).lag_ms() == 1.0
