"""What an audit record is: its fields, the canonical JSON its hash covers, and the checks a
record must pass before it is queued (so a record that cannot be stored is refused at once, on the
caller's side, and never blocks the writer)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from monitor.store.database import StoreError
from policies.text import encodable

GENESIS = "0" * 64

#: Record kinds the console shows: the timeline kinds plus what people and devices did.
TIMELINE_KINDS = ("state", "alert", "warning", "warning_cleared", "identity", "recheck", "event")
OTHER_KINDS = ("staff_action", "joined", "left", "login")


def canonical_json(value: Any) -> str:
    """The one encoding of a record (stored and hashed). A lone surrogate (refused by the wire
    parsers) gets JSON's ASCII escapes instead, so a record can always be hashed and stored."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if encodable(text):
        return text
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: float
    prison: str
    call_id: str | None
    kind: str
    actor: str
    data: dict[str, Any]
    evidence: str | None
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """What the hash covers."""
        return {
            "id": self.id,
            "at": self.at,
            "prison": self.prison,
            "call_id": self.call_id,
            "kind": self.kind,
            "actor": self.actor,
            "data": self.data,
            "evidence": self.evidence,
        }

    def public(self) -> dict[str, Any]:
        """The form sent to the console (no hashes)."""
        return {**self.body(), "audit_id": self.id}


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    head: str
    broken_id: int | None = None
    problem: str | None = None
    keyed: bool = True  # False: a chain from before keyed chains, not keyed yet
    checkpoint: str | None = None  # the newest checkpoint, as `verify` prints it

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether audit records are being written. While not ``ok``, ``calls`` are the calls with
    records waiting to be written (they must not go on unrecorded: see ``FaultRaised``)."""

    ok: bool = True
    detail: str = ""  # why records cannot be written
    calls: frozenset[str] = field(default_factory=frozenset)
    waiting: int = 0  # records waiting to be written
    since: float | None = None  # wall-clock time of the first failed write


def check_record(kind: str, prison: str, data: dict[str, Any], call_id: str | None, actor: str) -> None:
    """Refuse a record that cannot be hashed and stored (one clear line)."""
    if not kind or not prison:
        raise StoreError("an audit record needs a kind and a prison")
    try:
        canonical_json(data).encode("utf-8")
        (kind + prison + (call_id or "") + actor).encode("utf-8")
    except (TypeError, ValueError) as exc:  # not JSON, NaN, a lone surrogate (UnicodeEncodeError)
        raise StoreError(f"audit record {kind}: data cannot be stored: {exc}") from None


def record_of(row: Any) -> AuditRecord:
    """The record in a row of the ``audit`` table."""
    return AuditRecord(
        row["id"],
        row["at"],
        row["prison"],
        row["call_id"],
        row["kind"],
        row["actor"],
        json.loads(row["data"]),
        row["evidence"],
        row["prev_hash"],
        row["hash"],
    )
