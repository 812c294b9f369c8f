"""Kill a live call's process with SIGKILL while its decisions are being audited: the bookings and
the audit chain survive, and the call is flagged interrupted when the store is opened again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitor.store.audit import AuditLog
from monitor.store.database import Store

ROOT = Path(__file__).resolve().parents[3]

# A real Call (policy session, hub) with the console's HubRecorder writing every decision to the
# audit log, and staff pausing/resuming it as fast as the loop allows.
SERVER = """
import asyncio, dataclasses, sys, time
from datetime import UTC, datetime, timedelta
from monitor.admin import import_booking
from monitor.store.audit import AuditLog
from monitor.store.audit_recorder import HubRecorder
from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.hub import Hub
from monitor.store.database import Store
from policies.config import load_policy

async def main():
    store = Store(sys.argv[1])
    base = load_booking(sys.argv[2], load_policy())
    start = datetime.now(UTC) - timedelta(seconds=1)
    booking = dataclasses.replace(base, call_id="crash-call", starts_at=start,
                                  ends_at=start + (base.ends_at - base.starts_at))
    import_booking(store, booking)
    hub, calls = Hub(), Calls[Call]()
    HubRecorder(AuditLog(store), hub, calls).start()
    call = Call(booking, load_policy(), wall_clock=time.time, hub=hub)
    calls.add(call)
    call.start()
    n = 0
    while True:
        await call.staff_pause(f"pause {n}", "officer")
        await call.staff_resume("officer")
        await asyncio.sleep(0)
        n += 1
        if n == 50:
            print("ready", flush=True)

asyncio.run(main())
"""


def test_killed_server_leaves_bookings_and_chain_intact(store_at: str) -> None:
    db = store_at
    booking = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, db, str(booking)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    with Store(db) as store:
        if store.engine == "sqlite":
            assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert store.booking("crash-call") is not None
        log = AuditLog(store)
        result = log.verify()
        assert result.ok, result.problem
        kinds = {r.kind for r in log.for_call("crash-call")}
        assert {"state", "alert"} <= kinds and result.records > 50
        assert store.mark_interrupted() == ["crash-call"]
        call = store.call("crash-call")
        assert call is not None and call.interrupted
