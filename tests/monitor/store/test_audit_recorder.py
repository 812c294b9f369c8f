"""The hub recorder: every call record published on the hub reaches the audit log, in hub order,
written by the right actor (policy decisions: ``policy``; presence: the device or ``system``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.hub import Hub
from monitor.store.audit import AuditLog
from monitor.store.audit_recorder import HubRecorder
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store


async def test_records_are_written_in_hub_order_by_the_right_actor(tmp_path: Path) -> None:
    store = Store(tmp_path / "monitor.db")
    log = AuditLog(store, AuditWriter(store.path, store.clock))
    hub = Hub()
    recorder = HubRecorder(log, hub)
    recorder.start()
    published = [
        {
            "kind": "joined",
            "t": 1.0,
            "source": "v1",
            "participant": "v1",
            "role": "visitor",
            "actor": "device",
        },
        {"kind": "state", "t": 1.5, "state": "verifying", "previous": "waiting", "reasons": []},
        {"kind": "recording_failed", "t": 2.0, "source": "v1", "file": "v1.video", "error": "disk full"},
        {"kind": "left", "t": 3.0, "source": "v1", "participant": "v1", "role": "visitor", "actor": "system"},
        {"kind": "left", "t": 4.0, "source": "A1", "participant": "A1", "role": "prisoner"},
    ] + [{"kind": "warning", "t": 5.0 + n, "reason": "poor_lighting", "source": "v1"} for n in range(100)]
    for record in published:
        hub.publish("c1", record)
    for _ in range(100):
        if recorder.written == len(published):
            break
        await asyncio.sleep(0.05)
    recorder.stop()  # writes what was handed over
    records = log.for_call("c1")
    assert recorder.written == len(published) == len(records)
    assert [r.data.get("t") for r in records] == [p["t"] for p in published]  # hub order
    assert [r.actor for r in records[:5]] == ["device:v1", "policy", "system", "system", "device:A1"]
    assert {r.actor for r in records[5:]} == {"policy"}
    assert all("actor" not in r.data for r in records)
    assert all(r.prison == "unknown" for r in records)  # no booking in the store, no live call
    assert log.verify().ok
    store.close()
