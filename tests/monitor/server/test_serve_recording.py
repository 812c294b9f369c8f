"""Every call is recorded: `monitor serve` records into its data folder unless told not to, and
turning recording off is said at start and written to each call's audit records.

Real processes (`python -m monitor.cli serve`), a real SQLite store, the recordings read back.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.serve_process import MONITOR, printed_links

from monitor.store.audit import AuditLog
from monitor.store.database import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


def booking_file(folder: Path, call_id: str) -> Path:
    document = json.loads(BOOKING.read_text())
    starts = datetime.now(UTC) - timedelta(seconds=1)
    ends = starts + timedelta(minutes=30)
    document.update(call_id=call_id, starts_at=starts.isoformat(), ends_at=ends.isoformat())
    shutil.copy(BOOKING.parent / "v1.jpg", folder / "v1.jpg")
    path = folder / f"{call_id}.json"
    path.write_text(json.dumps(document))
    return path


def serve(folder: Path, call_id: str, *flags: str) -> tuple[subprocess.Popen[str], str]:
    """A running `monitor serve` for one call started a second ago; its stderr so far is read at stop."""
    process = subprocess.Popen(
        [
            *MONITOR,
            "serve",
            "--booking",
            str(booking_file(folder, call_id)),
            "--port",
            "0",
            "--db",
            str(folder / "m.db"),
            "--analysis-workers",
            "1",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
    )
    printed_links(process)
    return process, call_id


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    return process.stderr.read()


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_calls_are_recorded_into_the_data_folder_by_default(tmp_path: Path) -> None:
    process, call_id = serve(tmp_path, "recorded-call")
    try:
        timeline = tmp_path / "m-data" / "recordings" / call_id / "timeline.jsonl"
        wait_for(lambda: timeline.is_file() and '"verifying"' in timeline.read_text())
    finally:
        stop(process)
    moved = tmp_path / "elsewhere"
    process, call_id = serve(tmp_path, "moved-call", "--record", str(moved))
    try:
        wait_for(lambda: (moved / call_id / "timeline.jsonl").is_file())
    finally:
        stop(process)
    assert not (tmp_path / "m-data" / "recordings" / call_id).exists()


def test_turning_recording_off_is_said_and_written_to_the_audit_log(tmp_path: Path) -> None:
    process, call_id = serve(tmp_path, "unrecorded-call", "--no-record")
    try:

        def recorded_off() -> bool:
            with Store(tmp_path / "m.db") as store:
                return any(r.kind == "recording_off" for r in AuditLog(store).for_call(call_id))

        wait_for(recorded_off)
    finally:
        stderr = stop(process)
    assert "recording is off (--no-record): calls are not recorded" in stderr
    with Store(tmp_path / "m.db") as store:
        off = [r for r in AuditLog(store).for_call(call_id) if r.kind == "recording_off"]
    assert len(off) == 1 and off[0].actor == "system" and off[0].data["detail"] == "monitor serve --no-record"
    assert not (tmp_path / "m-data" / "recordings").exists()

    both = subprocess.run(
        [
            *MONITOR,
            "serve",
            "--demo",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
            "--record",
            str(tmp_path / "r"),
            "--no-record",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert both.returncode == 1 and "give one or the other" in both.stderr, both.stderr
    assert "Traceback" not in both.stderr
