"""Call requests to prisons in *staff-booked* mode: the family names who joins and up to three
times that suit them; staff book a time (``family_calls.book_request``) or decline with a reason
(``family_staff.decline_request``). One open request per contact at a time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.store.audit import AuditLog
from monitor.store.database import Store
from monitor.store.family_calls import MAX_NOTE, MAX_PREFERRED, usable_contact
from monitor.store.family_common import Refused, new_id
from monitor.store.family_contacts import callers
from monitor.store.sql import Row
from policies.config import PolicyConfig


def request_call(
    store: Store,
    account_id: str,
    contact_id: str,
    person_ids: list[str],
    main_id: str,
    preferred: list[datetime],
    note: str,
    config: PolicyConfig,
) -> str:
    """A new open request; returns its id."""
    with store.transaction() as db:
        c, p = usable_contact(store, account_id, contact_id)
        if p.mode != "staff_booked":
            raise Refused(
                "self_select", f"{p.name} lets you choose a time: pick one of the free times instead"
            )
        if not 1 <= len(preferred) <= MAX_PREFERRED:
            raise Refused("preferred", f"give 1 to {MAX_PREFERRED} times that suit you")
        now = datetime.fromtimestamp(store.clock(), UTC)
        if any(t <= now for t in preferred):
            raise Refused("preferred", "the times that suit you must be in the future")
        if len(note) > MAX_NOTE:
            raise Refused("note", f"the note can be at most {MAX_NOTE} characters")
        first = min(preferred).astimezone(p.tz).date()
        chosen = callers(store, account_id, c.prisoner_id, person_ids, main_id, first, config)
        if db.execute(
            "SELECT 1 FROM call_requests WHERE contact_id = ? AND status = 'open'", (c.id,)
        ).fetchone():
            raise Refused(
                "request_open", f"you already have a request waiting for a call with {c.prisoner_name}"
            )
        request_id = new_id("req")
        db.execute(
            "INSERT INTO call_requests (id, account_id, contact_id, people, preferred, note, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                account_id,
                c.id,
                json.dumps([x.id for x in chosen]),
                json.dumps([t.astimezone(p.tz).isoformat() for t in sorted(preferred)]),
                note,
                store.clock(),
            ),
        )
        AuditLog(store).append(
            "call_requested",
            {"account": account_id, "contact": c.id, "request": request_id},
            prison=c.prison,
            actor="family",
        )
    return request_id


def withdraw_request(store: Store, account_id: str, request_id: str) -> None:
    with store.transaction() as db:
        row = db.execute(
            "SELECT r.status, p.prison FROM call_requests r JOIN family_contacts c ON c.id = r.contact_id"
            " JOIN prisoners p ON p.id = c.prisoner_id WHERE r.id = ? AND r.account_id = ?",
            (request_id, account_id),
        ).fetchone()
        if row is None:
            raise Refused("no_request", "no such request")
        if row["status"] != "open":
            raise Refused("request_closed", f"this request is already {row['status']}")
        db.execute(
            "UPDATE call_requests SET status = 'withdrawn', decided_at = ? WHERE id = ?",
            (store.clock(), request_id),
        )
        AuditLog(store).append(
            "request_withdrawn",
            {"account": account_id, "request": request_id},
            prison=row["prison"],
            actor="family",
        )


def request_public(row: Row) -> dict[str, object]:
    return {
        "id": row["id"],
        "contact": row["contact_id"],
        "people": json.loads(row["people"]),
        "preferred": json.loads(row["preferred"]),
        "note": row["note"],
        "status": row["status"],
        "reason": row["reason"],
        "call_id": row["call_id"],
        "created_at": row["created_at"],
    }


def requests(store: Store, account_id: str) -> list[dict[str, object]]:
    """The account's requests, newest first (open, booked, declined, withdrawn)."""
    rows = store.db.execute(
        "SELECT * FROM call_requests WHERE account_id = ? ORDER BY created_at DESC, id", (account_id,)
    ).fetchall()
    return [request_public(r) for r in rows]
