"""The console bench on a real server and store: every trial's alert reaches every console, the
figures are filled in from what was measured, and bad options are refused by name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import console


def test_each_trial_alert_reaches_every_console_and_the_figures_come_from_the_run(tmp_path: Path) -> None:
    report = asyncio.run(console.run(3, 2, tmp_path))
    delivery = report["alert_delivery_ms"]
    assert delivery["trials"] == 3 and delivery["consoles"] == 2
    assert 0 < delivery["p50"] <= delivery["p95"] <= delivery["max"]
    # per trial a pause, its alert and the end by staff are written; then the 1,000 warnings
    assert report["audit_records"] > 1000 + 3
    assert report["reconnect_backlog_1000_records_ms"] > 0 and report["audit_append_per_s"] > 0
    assert [row[0] for row in report["table"]][:3] == [
        "alert delivery p50",
        "alert delivery p95",
        "alert delivery max",
    ]


def test_options_below_one_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        console.main(["--trials", "0"])
    assert stopped.value.code == 2
    assert "--trials and --consoles must be at least 1" in capsys.readouterr().err
