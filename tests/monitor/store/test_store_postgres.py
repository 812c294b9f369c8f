"""What sharing one database needs: several processes (as nodes) writing one audit chain at once,
one strict sequence that `monitor audit verify` checks (on both engines); on PostgreSQL, nodes
each holding their own serve lock and marking only their own calls interrupted, and connections
that are lost and opened again.

A real PostgreSQL server (``support.postgres``), real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.postgres import PostgresServer

from monitor.store.audit import AuditLog
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import BookedVisitor, BookingRow, Photo, Prisoner, Store, StoreError, Visitor
from monitor.store.lock import ServeLock
from monitor.store.sql import OperationalError

ROOT = Path(__file__).resolve().parents[3]

# One writer process: appends ``count`` records, alternately one by one (one transaction each,
# as an admin command does) and in batches through the writer thread (as a server does).
WRITER = """
import sys
from monitor.store.audit import AuditLog
from monitor.store.audit_writer import AuditWriter
from monitor.store.database import Store
where, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(where)
log, writer = AuditLog(store), AuditWriter(store.location, store.clock)
print("ready", flush=True)
sys.stdin.readline()
futures = []
for n in range(count):
    if n % 2:
        futures.append(writer.submit("alert", {"writer": name, "n": n}, prison="HMP Example",
                                     call_id=name, actor="policy", evidence=None))
    else:
        log.append("alert", {"writer": name, "n": n}, prison="HMP Example", call_id=name)
for future in futures:
    future.result(60)
writer.close()
"""


def test_several_processes_append_one_strictly_ordered_chain(store_at: str) -> None:
    """Four processes (as four nodes would) append at once; on SQLite too, where they share a file."""
    Store(store_at).close()
    names, count = ["a", "b", "c", "d"], 60
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_at, name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for name in names
    ]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    for writer in writers:  # all at once
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.wait(120) == 0
    verified = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "audit", "verify", "--db", store_at],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"ok: {len(names) * count} audit records, chain intact, head ")
    with Store(store_at) as store:
        records = AuditLog(store).since("HMP Example", 0, 10_000)
    assert [r.id for r in records] == list(range(1, len(names) * count + 1))  # no gap, no fork
    for name in names:  # each writer's records in the order it wrote them (each way of writing)
        mine = [r.data["n"] for r in records if r.data["writer"] == name]
        assert [n for n in mine if n % 2 == 0] == list(range(0, count, 2))
        assert [n for n in mine if n % 2] == list(range(1, count, 2))


def booking(call_id: str, start: float) -> BookingRow:
    return BookingRow(
        call_id, "A1234BC", "HMP Example", start, start + 1800, "s", "e", "{}", (BookedVisitor("v1", True),)
    )


def test_nodes_share_the_database_and_each_marks_only_its_own_calls(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with Store(url, node="node-a") as a, Store(url, node="node-b") as b:
        a.add_prisoner(Prisoner("A1234BC", "John Smith", "HMP Example"))
        a.add_visitor(
            Visitor("v1", "Jane Smith", "1987-07-21", (Photo("p.jpg", "ab" * 32, b"\0" * 8),)), "A1234BC"
        )
        for n, call_id in enumerate(("on-a", "on-b", "on-b-done")):
            a.add_booking(booking(call_id, 1_800_000_000.0 + n * 3600))
        AuditLog(a).append("state", {"state": "live"}, prison="HMP Example", call_id="on-a")
        AuditLog(b).append("state", {"state": "paused"}, prison="HMP Example", call_id="on-b")
        b.set_call_state("on-b-done", "ended")
        assert b.db.execute("SELECT node FROM calls WHERE call_id = 'on-b'").fetchone()[0] == "node-b"
        # every node reads which node last wrote a call's state (a node taking a call over says so)
        assert [(a.call(c) or pytest.fail()).node for c in ("on-a", "on-b")] == ["node-a", "node-b"]
        # node b starts again (it died): its running call is flagged, node a's live call is not
        assert b.mark_interrupted() == ["on-b"]
        assert not (a.call("on-a") or pytest.fail()).interrupted
        assert a.mark_interrupted() == ["on-a"]
    with Store(url) as single:  # a store that names no node (one server): every call it finds
        single.set_call_state("on-b-done", "live")
        assert single.mark_interrupted() == ["on-b-done"]


HOLDER = """
import sys, time
from monitor.store.lock import ServeLock
lock = ServeLock(sys.argv[1], sys.argv[2])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_serve_lock_is_per_node_and_dies_with_its_process(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "node-a"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(
            StoreError, match=r"another `monitor serve` with node name 'node-a' \(connected from"
        ):
            ServeLock(url, "node-a").acquire()
        with ServeLock(url, "node-b"):  # another node shares the database
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    deadline = time.monotonic() + 10
    while True:  # PostgreSQL ends the dead process's session (its socket closed) and the lock with it
        try:
            with ServeLock(url, "node-a"):
                break
        except StoreError:
            assert time.monotonic() < deadline, "the dead node's lock was never released"
            time.sleep(0.2)


def kill_sessions(postgres: PostgresServer, url: str) -> int:
    """The database's server ends every session on it (a restart or a network cut would too)."""
    with postgres.admin() as conn:
        row = conn.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (url.rsplit("/", 1)[1],),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_lost_connection_is_opened_again(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    store = Store(url)
    writer = AuditWriter(store.location, store.clock, retry_max_s=0.2)
    log = AuditLog(store, writer)
    first = writer.submit("alert", {"n": 1}, prison="P", call_id="c1", actor="policy", evidence=None)
    assert first.result(30).id == 1
    assert kill_sessions(postgres, url) == 2  # the store's and the writer thread's
    # a read outside a transaction is tried again on a new connection: nobody notices
    assert store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1
    # the writer's batch fails on its dead connection, is retried on a new one, and is written
    second = writer.submit("alert", {"n": 2}, prison="P", call_id="c1", actor="policy", evidence=None)
    assert second.result(30).id == 2
    kill_sessions(postgres, url)
    # a write transaction whose connection is lost fails (never carried on outside the lock) ...
    with pytest.raises(OperationalError), store.transaction() as db:
        db.execute("SELECT 1")
        kill_sessions(postgres, url)
        db.execute("UPDATE audit_chain SET keyed_at = keyed_at WHERE id = 0")
    # ... and the next one works
    assert AuditLog(store).append("alert", {"n": 3}, prison="P").id == 3
    writer.close()
    assert log.verify().ok
    store.close()


def test_a_role_is_held_by_one_store_and_taken_over_when_its_session_is_lost(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database()
    with Store(url, node="node-a") as a, Store(url, node="node-b") as b:
        assert a.holds("mail-sender") and not b.holds("mail-sender")
        assert a.holds("mail-sender") and not b.holds("mail-sender")  # held, and asked again
        assert b.holds("other-role")  # roles are independent
        with postgres.admin() as conn:  # the server ends every session holding or asking for it
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                ("monitor mail-sender",),
            )
        deadline = time.monotonic() + 10
        while not b.holds("mail-sender"):  # b finds its session lost, opens another, takes the role
            assert time.monotonic() < deadline, "nobody took the role over"
            time.sleep(0.1)
        assert not a.holds("mail-sender")  # a finds its session lost: the role is b's now
