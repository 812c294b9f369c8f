"""Checking the audit chain: walking it record by record, keying a plain chain from before keyed
chains, and comparing the chain with its checkpoint file (see ``audit.py`` and ``audit_chain.py``).

Pure reads of the ``audit`` and ``audit_chain`` tables, except :func:`key_chain`, which runs inside
the append that keys the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from monitor.store.audit_chain import AuditKey, Checkpoints, checkpoint_path, key_path, keyed_hash, load_key
from monitor.store.audit_chain import read_checkpoints as read_checkpoint_file
from monitor.store.audit_record import GENESIS, Verification, canonical_json, record_of
from monitor.store.database import Store, StoreError
from monitor.store.sql import Connection, Row

log = logging.getLogger(__name__)

Hash = Callable[[str, str], str]  # (previous hash, canonical body) -> hash


def plain_hash(prev_hash: str, canonical_body: str) -> str:
    """The hash of a chain from before keyed chains."""
    return hashlib.sha256((prev_hash + canonical_body).encode("utf-8")).hexdigest()


def chain_row(store: Store) -> Row:
    row: Row | None = store.db.execute("SELECT * FROM audit_chain WHERE id = 1").fetchone()
    if row is None:
        raise StoreError(f"{store.name}: the audit chain settings row is missing (altered)")
    return row


def stored_key(db_path: Path, key_id: str) -> AuditKey:
    """The key a keyed chain was written with, or a StoreError saying why it is not at hand."""
    key = load_key(db_path, create=False)
    if key is None:
        raise StoreError(
            f"audit key {key_path(db_path)} not found: the chain of {db_path} is keyed (key id "
            f"{key_id}); restore the key file or set $MONITOR_AUDIT_KEY"
        )
    if key.key_id != key_id:
        raise StoreError(
            f"audit key {key.source} (key id {key.key_id}) is not the key the chain of {db_path} "
            f"was written with (key id {key_id})"
        )
    return key


def key_chain(store: Store, db: Connection, key: AuditKey) -> None:
    """Inside a write transaction: verify the plain chain, recompute every hash with ``key``, fix
    the chain's settings and start its checkpoint file."""
    rows = list(db.execute("SELECT * FROM audit ORDER BY id"))
    found = walk(rows, plain_hash)
    if found.problem is not None:
        raise StoreError(f"the audit chain cannot be keyed: {found.problem}")
    prev = GENESIS
    for row in rows:
        digest = keyed_hash(key.secret, prev, canonical_json(record_of(row).body()))
        db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, row["id"]))
        prev = digest
    chain_id = secrets.token_hex(8)
    db.execute(
        "UPDATE audit_chain SET chain_id = ?, key_id = ?, keyed_at = ?, keyed_records = ?, plain_head = ?"
        " WHERE id = 1",
        (chain_id, key.key_id, store.clock(), len(rows), found.head),
    )
    Checkpoints(checkpoint_path(store.path), chain_id).start()
    if rows:
        log.warning("audit chain of %s keyed: %d records re-hashed", store.name, len(rows))


@dataclass(frozen=True, slots=True)
class Walked:
    records: int
    head: str
    broken_id: int | None = None
    problem: str | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # of the records ``wanted``


def walk(
    rows: Iterable[Row],
    hash_of: Hash,
    evidence_path: Callable[[str], Path] | None = None,
    wanted: frozenset[int] = frozenset(),
) -> Walked:
    """Check each record's id, link and hash (and evidence file, given ``evidence_path``); the
    first that does not hold ends the walk."""
    prev_hash, prev_id, count = GENESIS, 0, 0
    hashes: dict[int, str] = {}
    for row in rows:
        count += 1
        problem = _problem(row, prev_id, prev_hash, hash_of, evidence_path)
        if problem is not None:
            call = f", {row['call_id']}" if row["call_id"] else ""
            where = f"audit record {row['id']} ({row['kind']}{call})"
            return Walked(count, prev_hash, row["id"], f"{where}: {problem}", hashes)
        prev_hash, prev_id = row["hash"], row["id"]
        if prev_id in wanted:
            hashes[prev_id] = prev_hash
    return Walked(count, prev_hash, hashes=hashes)


def _problem(
    row: Row,
    prev_id: int,
    prev_hash: str,
    hash_of: Hash,
    evidence_path: Callable[[str], Path] | None,
) -> str | None:
    """What is wrong with one record after a good ``prev_id``, or None."""
    if row["id"] != prev_id + 1:
        return f"records {prev_id + 1}..{row['id'] - 1} are missing"
    if row["prev_hash"] != prev_hash:
        return f"does not link to record {prev_id} (a record before it was changed or replaced)"
    try:
        record = record_of(row)
        computed = hash_of(prev_hash, canonical_json(record.body()))
    except (ValueError, TypeError):
        return "data is not valid JSON (altered)"
    if not hmac.compare_digest(computed, str(row["hash"])):
        return "contents do not match its hash (altered, or re-chained without the key)"
    if evidence_path is not None and record.evidence is not None:
        path = evidence_path(record.evidence)
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return f"evidence file {path} is missing"
        if actual != record.evidence:
            return f"evidence file {path} was altered"
    return None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def verify(
    store: Store, evidence_path: Callable[[str], Path] | None, checkpoints: Path | None = None
) -> Verification:
    """Walk the whole chain and check it against its checkpoint file (``checkpoints``, default
    beside the database); name the first record that does not hold, or what is missing."""
    row = chain_row(store)
    rows = store.db.execute("SELECT * FROM audit ORDER BY id")
    if row["key_id"] is None:  # a plain chain from before keyed chains
        plain = walk(rows, plain_hash, evidence_path)
        return Verification(plain.records, plain.head, plain.broken_id, plain.problem, keyed=False)
    try:
        key = stored_key(store.path, row["key_id"])
    except StoreError as exc:
        return Verification(0, GENESIS, None, f"cannot check the keyed chain: {exc}")
    path = checkpoints or checkpoint_path(store.path)
    try:
        anchors = read_checkpoint_file(path)
    except FileNotFoundError:
        return Verification(0, GENESIS, None, f"checkpoint file {path} is missing (it anchors the chain)")
    except OSError as exc:
        return Verification(0, GENESIS, None, f"checkpoint file {path}: {exc.strerror}")
    wanted = frozenset(c.records for c in anchors.checkpoints)
    found = walk(rows, lambda prev, body: keyed_hash(key.secret, prev, body), evidence_path, wanted)
    newest = max(anchors.checkpoints, key=lambda c: c.records, default=None)
    shown = None if newest is None else f"{newest.records} records, head {newest.head}"

    def failed(problem: str, broken: int | None = None) -> Verification:
        return Verification(found.records, found.head, broken, problem, checkpoint=shown)

    if found.problem is not None:
        return failed(found.problem, found.broken_id)
    if anchors.problem is not None:
        return failed(f"{anchors.problem} (altered)")
    if anchors.chain_id != row["chain_id"]:
        return failed(f"checkpoint file {path} is of chain {anchors.chain_id}, not {row['chain_id']}")
    for anchor in sorted(anchors.checkpoints, key=lambda c: c.records):
        if anchor.records <= found.records and found.hashes.get(anchor.records) != anchor.head:
            return failed(
                f"audit record {anchor.records} does not match the checkpoint of {_iso(anchor.at)}: "
                "records up to it were changed, deleted or re-chained",
                anchor.records,
            )
    if newest is not None and newest.records > found.records:
        return failed(
            f"{newest.records - found.records} records missing after #{found.records} "
            f"(the checkpoint of {_iso(newest.at)} counted {newest.records})"
        )
    if anchors.lost:
        lost, first = sum(x.records for x in anchors.lost), anchors.lost[0]
        return failed(f"{lost} records were never written (first at {_iso(first.at)}: {first.why})")
    if found.records and newest is None:
        return failed(f"checkpoint file {path} has no checkpoint (it anchors the chain)")
    return Verification(found.records, found.head, checkpoint=shown)
