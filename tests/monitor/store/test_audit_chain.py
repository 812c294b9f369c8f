"""The keyed, anchored audit chain: its key kept outside the database, its head checkpointed
outside it, and `monitor audit verify` naming deletions (newest records, a middle record with the
rest re-chained, with or without the key), a plain chain from before keyed chains keyed on first
write, and records that were lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from support.postgres import drop_audit_triggers, raw_script

import monitor.store
from monitor.cli import main
from monitor.store import audit_chain
from monitor.store.audit import GENESIS, AuditLog, canonical_json
from monitor.store.audit_chain import checkpoint_path, key_path, keyed_hash, load_key, read_checkpoints
from monitor.store.database import Store, StoreError, connect
from monitor.store.sql import IntegrityError, locate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def log(store_at: str) -> AuditLog:
    return AuditLog(Store(store_at))


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("alert", {"reason": "unbooked_face", "n": i}, prison="HMP Example", call_id=f"c{i % 3}")


def raw(where: str, sql: str) -> None:
    """What someone holding the database can do: drop the triggers and rewrite the table."""
    raw_script(where, drop_audit_triggers(where) + sql)


def save_copy(where: str) -> None:
    """A copy of the audit table as it is now, in the database (a backup, for :func:`restore`)."""
    raw_script(where, "CREATE TABLE audit_copy AS SELECT * FROM audit;")


def restore(where: str) -> None:
    raw(where, "DELETE FROM audit; INSERT INTO audit SELECT * FROM audit_copy;")


def rechain(where: str, start: int, key: bytes | None) -> None:
    """After a deletion, renumber the records from ``start`` on and recompute their links and
    hashes (with the key when given, else as the plain SHA-256 chain was made)."""
    raw(where, "")
    db = connect(locate(where))
    prev = db.execute("SELECT hash FROM audit WHERE id = ?", (start - 1,)).fetchone()[0]
    rows = list(db.execute("SELECT * FROM audit WHERE id >= ? ORDER BY id", (start,)))
    for new_id, row in enumerate(rows, start):
        body = {
            "id": new_id,
            "at": row["at"],
            "prison": row["prison"],
            "call_id": row["call_id"],
            "kind": row["kind"],
            "actor": row["actor"],
            "data": json.loads(row["data"]),
            "evidence": row["evidence"],
        }
        text = canonical_json(body)
        digest = keyed_hash(key, prev, text) if key else hashlib.sha256((prev + text).encode()).hexdigest()
        db.execute(
            "UPDATE audit SET id = ?, prev_hash = ?, hash = ? WHERE id = ?", (new_id, prev, digest, row["id"])
        )
        prev = digest
    db.close()


def verify_cli(where: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["audit", "verify", "--db", where, *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_key_is_kept_beside_the_database_readable_by_its_owner_only(log: AuditLog) -> None:
    fill(log, 2)
    path = key_path(log.store.path)
    assert path == log.store.path.with_name(log.store.path.name + ".audit-key")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(log.store.path, create=False)
    assert key is not None and len(key.secret) == 32
    if log.store.engine == "sqlite":
        assert key.secret.hex() not in log.store.path.read_bytes().hex()  # never in the database
    stored = log.store.db.execute("SELECT key_id FROM audit_chain").fetchone()[0]
    assert stored == key.key_id
    path.chmod(0o644)
    with pytest.raises(StoreError, match=r"may be read by others \(mode 644\); chmod 600 it"):
        AuditLog(log.store).append("alert", {}, prison="HMP Example")
    assert "may be read by others" in str(log.verify().problem)


def test_a_key_from_the_environment_and_a_wrong_key_are_named(
    store_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(audit_chain.KEY_ENV, "ab" * 32)
    log = AuditLog(Store(store_at))
    fill(log, 3)
    assert not key_path(log.store.path).exists()  # the environment's key, no file
    assert log.verify().ok
    monkeypatch.setenv(audit_chain.KEY_ENV, "cd" * 32)
    result = log.verify()
    assert not result.ok and "is not the key the chain" in str(result.problem)
    with pytest.raises(StoreError, match="is not the key the chain"):
        AuditLog(log.store).append("alert", {}, prison="HMP Example")  # nor can it be extended
    monkeypatch.setenv(audit_chain.KEY_ENV, "too short")
    with pytest.raises(StoreError, match="expected 64 or more hex digits"):
        AuditLog(log.store).append("alert", {}, prison="HMP Example")
    monkeypatch.delenv(audit_chain.KEY_ENV)
    assert "audit key" in str(log.verify().problem) and "not found" in str(log.verify().problem)


def test_deleting_the_newest_records_is_named_with_how_many(
    log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(log, 10)
    code, out, _ = verify_cli(log.store.location.text, capsys)
    head = log.get(10)
    assert head is not None
    assert code == 0 and out == (
        f"ok: 10 audit records, chain intact, head {head.hash}\n"
        f"newest checkpoint: 10 records, head {head.hash}\n"
    )
    raw(log.store.location.text, "DELETE FROM audit WHERE id > 8;")  # a valid, shorter chain is left
    code, _, err = verify_cli(log.store.location.text, capsys)
    assert code == 2
    assert err.startswith("monitor: audit chain broken: 2 records missing after #8 (the checkpoint of ")
    assert f"newest checkpoint: 10 records, head {head.hash}" in err


def test_deleting_a_middle_record_and_rechaining_is_named_with_the_key_or_without(log: AuditLog) -> None:
    fill(log, 10)
    where = log.store.location.text
    save_copy(where)
    raw(where, "DELETE FROM audit WHERE id = 5;")
    rechain(where, 5, None)  # without the key: as the plain chain was made
    result = log.verify()
    assert result.broken_id == 5 and "re-chained without the key" in str(result.problem)
    # with the key (stolen from beside the database) the chain holds: the checkpoints do not
    restore(where)
    raw(where, "DELETE FROM audit WHERE id = 5;")
    key = load_key(log.store.path, create=False)
    assert key is not None
    rechain(where, 5, key.secret)
    result = log.verify()
    assert not result.ok and result.broken_id == 5
    assert "audit record 5 does not match the checkpoint of" in str(result.problem)
    assert "changed, deleted or re-chained" in str(result.problem)


def test_rewriting_the_checkpoints_too_is_caught_by_a_copy_kept_elsewhere(
    log: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone holding the database, the key and the checkpoint file can make all three agree:
    only a copy of the checkpoints (or the head) kept elsewhere shows it, and verify takes one."""
    fill(log, 10)
    elsewhere = log.store.path.parent / "offsite-checkpoints"
    shutil.copy(checkpoint_path(log.store.path), elsewhere)
    raw(log.store.location.text, "DELETE FROM audit WHERE id > 6;")
    kept = [
        line
        for line in checkpoint_path(log.store.path).read_text().splitlines(keepends=True)
        if line.startswith("#") or int(line.split()[0]) <= 6
    ]
    checkpoint_path(log.store.path).write_text("".join(kept))
    code, out, _ = verify_cli(log.store.location.text, capsys)
    assert code == 0 and out.startswith("ok: 6 audit records")  # consistent, and wrong
    code, _, err = verify_cli(log.store.location.text, capsys, "--checkpoints", str(elsewhere))
    assert code == 2 and "4 records missing after #6" in err


def test_a_checkpoint_file_that_is_missing_altered_or_of_another_chain_fails(log: AuditLog) -> None:
    fill(log, 4)
    path = checkpoint_path(log.store.path)
    text = path.read_text()
    path.write_text(text + "4 not-a-hash 12\n")
    assert "line 6 is malformed (altered)" in str(log.verify().problem)
    path.write_text(text.replace("of chain ", "of chain 0000"))
    assert "is of chain 0000" in str(log.verify().problem)
    path.unlink()
    assert "is missing (it anchors the chain)" in str(log.verify().problem)


def test_lost_records_are_reported_never_intact(log: AuditLog) -> None:
    fill(log, 3)
    log.note_lost(2, "the server stopped while records could not be written; calls c1")
    result = log.verify()
    assert not result.ok and "2 records were never written (first at " in str(result.problem)
    assert "calls c1" in str(result.problem)


def test_the_checkpoint_file_is_compacted_and_keeps_what_verify_needs(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_chain, "MAX_BYTES", 2000)
    fill(log, 3)
    log.note_lost(1, "test")
    fill(log, 60)
    path = checkpoint_path(log.store.path)
    assert path.stat().st_size <= 2000
    found = read_checkpoints(path)
    assert max(c.records for c in found.checkpoints) == 63 and len(found.lost) == 1
    assert "1 records were never written" in str(log.verify().problem)


PLAIN_SCHEMA = ROOT / "monitor" / "store" / "migrations" / "001_initial.sql"


def plain_store(folder: Path, where: str, records: int) -> str:
    """A database as the program made it before keyed chains: schema 001, a plain SHA-256 chain."""
    migrations = folder / "migrations"
    migrations.mkdir()
    shutil.copy(PLAIN_SCHEMA, migrations / "001_initial.sql")
    path = where
    with Store(path, migrations=migrations) as store:
        prev = GENESIS
        for n in range(1, records + 1):
            body = {
                "id": n,
                "at": 1_800_000_000.0 + n,
                "prison": "HMP Example",
                "call_id": "c1",
                "kind": "alert",
                "actor": "policy",
                "data": {"n": n},
                "evidence": None,
            }
            digest = hashlib.sha256((prev + canonical_json(body)).encode()).hexdigest()
            store.db.execute(
                "INSERT INTO audit (id, at, prison, call_id, kind, actor, data, evidence, prev_hash, hash)"
                " VALUES (?, ?, 'HMP Example', 'c1', 'alert', 'policy', ?, NULL, ?, ?)",
                (n, body["at"], canonical_json(body["data"]), prev, digest),
            )
            prev = digest
    return path


def test_a_store_from_before_keyed_chains_is_keyed_on_its_next_record(
    tmp_path: Path, fresh_store_at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plain_store(tmp_path, fresh_store_at, 5)
    with Store(path) as store:  # migration 002 applies
        assert store.schema_version() == len(
            list((Path(monitor.store.__file__).parent / "migrations").glob("*.sql"))
        )
        log = AuditLog(store)
        plain = log.verify()
        assert plain.ok and not plain.keyed and plain.records == 5
        code, out, _ = verify_cli(path, capsys)
        assert code == 0 and "warning: this chain is not keyed yet" in out
        assert not key_path(store.path).exists()  # verify reads; it keys nothing
        log.append("state", {"state": "live"}, prison="HMP Example", call_id="c1")
        keyed = log.verify()
        assert keyed.ok and keyed.keyed and keyed.records == 6
        row = store.db.execute("SELECT keyed_records, plain_head, key_id FROM audit_chain").fetchone()
        assert (row[0], row[1]) == (5, plain.head) and row[2]
        # the records themselves are as they were; only their hashes are keyed now
        assert [r.data for r in log.for_call("c1")][:5] == [{"n": n} for n in range(1, 6)]
        with pytest.raises(IntegrityError, match="append-only"):
            store.db.execute("UPDATE audit SET hash = 'x' WHERE id = 1")  # keyed: fixed for good
        with pytest.raises(IntegrityError, match="settings are fixed"):
            store.db.execute("UPDATE audit_chain SET key_id = NULL")


def test_a_plain_chain_that_was_tampered_with_is_not_keyed(tmp_path: Path, fresh_store_at: str) -> None:
    path = plain_store(tmp_path, fresh_store_at, 5)
    raw(path, "DELETE FROM audit WHERE id = 3;")
    with Store(path) as store:
        log = AuditLog(store)
        with pytest.raises(StoreError, match=r"cannot be keyed: audit record 4 .*records 3\.\.3 are missing"):
            log.append("state", {"state": "live"}, prison="HMP Example", call_id="c1")
        assert store.db.execute("SELECT key_id FROM audit_chain").fetchone()[0] is None
        assert store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 4  # nothing written
        with pytest.raises(IntegrityError, match="append-only"):  # only hashes may change
            store.db.execute("UPDATE audit SET data = '{}' WHERE id = 1")


def test_a_replaced_database_starts_a_new_checkpoint_file(tmp_path: Path) -> None:
    log = AuditLog(Store(tmp_path / "monitor.db"))
    fill(log, 3)
    log.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'monitor.db'}{suffix}").unlink(missing_ok=True)
    fresh = AuditLog(Store(tmp_path / "monitor.db"))  # the same key file beside it is used again
    fill(fresh, 1)
    assert fresh.verify().ok
    assert len(list(tmp_path.glob("monitor.db.audit-checkpoints.*.old"))) == 1
    assert os.path.exists(tmp_path / "monitor.db.audit-checkpoints.reserve")
