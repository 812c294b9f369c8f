"""The hub recorder: every call record published on the hub reaches the audit log, in hub order,
written by the right actor (policy decisions: ``policy``; presence: the device or ``system``)."""

from __future__ import annotations

import asyncio
import threading
import time

from monitor.hub import Hub
from monitor.store.audit import AuditLog
from monitor.store.audit_recorder import HubRecorder
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store


async def test_records_are_written_in_hub_order_by_the_right_actor(store_at: str) -> None:
    store = Store(store_at)
    log = AuditLog(store, AuditWriter(store.location, store.clock))
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


async def test_a_burst_is_written_whole_in_hub_order_by_a_small_queue(store_at: str) -> None:
    """20,000 records published at once, for two calls, through a queue of 100: the publisher
    waits for room (back-pressure) and not one record is dropped or reordered; a hub subscriber
    that stops reading is dropped meanwhile, the audit log is not."""
    store = Store(store_at)
    writer = AuditWriter(store.location, store.clock, max_records=100)
    log = AuditLog(store, writer)
    hub = Hub()
    recorder = HubRecorder(log, hub)
    recorder.start()
    lazy = hub.subscribe()  # a view that never reads: dropped after MAX_BACKLOG records
    held, holder = threading.Event(), Store(store_at)

    def hold_the_write_lock() -> None:  # the writer's first batch waits a second for this commit
        with holder.transaction():
            held.set()
            time.sleep(1.0)

    blocker = threading.Thread(target=hold_the_write_lock)
    blocker.start()
    held.wait()
    for n in range(20_000):
        call = "other" if n % 1000 == 500 else "burst"
        hub.publish(call, {"kind": "alert_repeated", "t": n / 1000, "reason": "capture_attempt", "n": n})
    assert hub.subscribers == 0 and lazy is not None
    assert writer.stats().waits >= 1  # the publisher had to wait: nothing was dropped instead
    blocker.join()
    holder.close()
    recorder.stop()  # every record handed over is written ...
    for _ in range(100):  # ... and the loop hears of each
        if recorder.written == 20_000:
            break
        await asyncio.sleep(0.05)
    assert recorder.written == 20_000 and recorder.failed == 0
    burst, other = log.for_call("burst"), log.for_call("other")
    assert [r.data["n"] for r in other] == list(range(500, 20_000, 1000))
    assert [r.data["n"] for r in burst] == [n for n in range(20_000) if n % 1000 != 500]
    assert log.verify().ok
    store.close()


async def test_a_record_with_a_lone_surrogate_is_kept_whole(store_at: str) -> None:
    """Such text is stored with JSON's escapes (``canonical_json``), so the record keeps what the
    client sent and the chain verifies."""
    store = Store(store_at)
    log = AuditLog(store, AuditWriter(store.location, store.clock))
    hub = Hub()
    recorder = HubRecorder(log, hub)
    recorder.start()
    hub.publish("c1", {"kind": "alert", "t": 1.0, "reason": "capture_attempt", "detail": "x\ud800y"})
    recorder.stop()
    [record] = log.for_call("c1")
    assert record.data["detail"] == "x\ud800y" and "sanitized" not in record.data
    assert log.verify().ok
    store.close()
