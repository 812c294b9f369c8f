"""The staff side of the families' pages, for the console: every read and decision it needs.

Theory of operation
-------------------
Each function takes the member of staff (``monitor.store.auth.Staff``, from the console's session)
and acts only inside their prison: an account is seen by the staff of the prisons its contacts are
at, a request or call by its prisoner's prison; anything else is :class:`Refused` with code
``not_found``, the same as something that does not exist. Governor-only actions (prison settings,
extra calls: ``family_prison.py``, re-exported here) check the role (``staff.role`` column:
``staff`` or ``governor``) and refuse with ``governor_only``. Decisions are one transaction each,
with their audit record (actor ``staff:<user name>``, ids and hashes only) and the family's e-mail
(queued through the :class:`~monitor.store.family_common.Mailer` given) inside it.

Reading an ID document or a face photo writes a ``document_viewed`` / ``photo_viewed`` record
*before* the bytes are returned, so no member of staff ever sees a document without a trace.
Deciding an account (or a person) sets when its documents are deleted: ``document_retention_days``
after the decision (``documents.purge_expired`` does it).

Lists return plain dicts ready for JSON (times as UTC epoch seconds, dates as YYYY-MM-DD).
"""

from __future__ import annotations

import math
import struct
from datetime import date
from typing import Any

from monitor.store.audit import AuditLog
from monitor.store.auth import Staff
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_accounts import account, people, today
from monitor.store.family_common import Mailer, Refused
from monitor.store.family_contacts import contact_by_id
from monitor.store.family_prison import (
    allowance,
    book_for_request,
    cancel_call,
    change_settings,
    decline_request,
    grant_extra_calls,
    grants,
    prison_settings,
    prisoner_link,
    prisoners,
    request_queue,
    set_prisoner_date_of_birth,
)
from monitor.store.family_roles import actor, reason_text, role, set_role
from policies.config import PolicyConfig

__all__ = [
    "allowance",
    "approve_contact",
    "approve_person",
    "book_for_request",
    "cancel_call",
    "change_settings",
    "contact_queue",
    "decline_request",
    "grant_extra_calls",
    "grants",
    "people_queue",
    "prison_settings",
    "prisoner_link",
    "prisoners",
    "read_document",
    "read_face_photo",
    "refuse_account",
    "refuse_contact",
    "refuse_person",
    "request_queue",
    "role",
    "set_prisoner_date_of_birth",
    "set_role",
    "verification_queue",
    "verify_account",
]


# -- what staff may see ----------------------------------------------------------------------------


def _account_here(store: Store, staff: Staff, account_id: str, what: str = "account") -> None:
    row = store.db.execute(
        "SELECT 1 FROM family_contacts c JOIN prisoners p ON p.id = c.prisoner_id"
        " WHERE c.account_id = ? AND p.prison = ? LIMIT 1",
        (account_id, staff.prison),
    ).fetchone()
    if row is None:
        raise Refused("not_found", f"no such {what}")


def _distance(a: bytes | None, b: bytes | None) -> float | None:
    if not a or not b or len(a) != len(b):
        return None
    n = len(a) // 8
    x, y = struct.unpack(f"<{n}d", a), struct.unpack(f"<{n}d", b)
    return round(math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y, strict=True))), 3)


def _person_view(store: Store, account_id: str) -> list[dict[str, Any]]:
    day = today(store)
    found = []
    for p in people(store, account_id):
        docs = store.db.execute(
            "SELECT id, kind, sha256, content_type, size, uploaded_at, deleted_at, face_embedding"
            " FROM family_documents WHERE person_id = ? AND replaced_at IS NULL ORDER BY uploaded_at",
            (p.id,),
        ).fetchall()
        photo = None
        if p.visitor_id is not None:
            photo = store.db.execute(
                "SELECT sha256, embedding FROM visitor_photos WHERE visitor_id = ? ORDER BY id DESC LIMIT 1",
                (p.visitor_id,),
            ).fetchone()
        found.append(
            {
                "id": p.id,
                "holder": p.holder,
                "name": p.name,
                "date_of_birth": p.date_of_birth,
                "address": p.address,
                "adult": p.adult(day),
                "status": p.status,
                "reason": p.reason,
                "visitor_id": p.visitor_id,
                "face_photo": None if photo is None else photo["sha256"],
                "documents": [
                    {
                        "id": d["id"],
                        "kind": d["kind"],
                        "sha256": d["sha256"],
                        "content_type": d["content_type"],
                        "size": d["size"],
                        "uploaded_at": d["uploaded_at"],
                        "deleted": d["deleted_at"] is not None,
                        # how far the face on the ID is from the face photo (same person: below ~0.5)
                        "face_distance": _distance(
                            d["face_embedding"], None if photo is None else photo["embedding"]
                        ),
                    }
                    for d in docs
                ],
            }
        )
    return found


def _contacts_view(store: Store, account_id: str, prison_name: str) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT c.id FROM family_contacts c JOIN prisoners p ON p.id = c.prisoner_id"
        " WHERE c.account_id = ? AND p.prison = ? ORDER BY c.created_at",
        (account_id, prison_name),
    ).fetchall()
    views = []
    for row in rows:
        c = contact_by_id(store, row["id"])
        assert c is not None
        views.append({**c.public(), "prisoner_id": c.prisoner_id})
    return views


def verification_queue(store: Store, staff: Staff, config: PolicyConfig) -> list[dict[str, Any]]:
    """Accounts waiting to be checked by this prison, oldest first, with the time left of the
    ``verification_hours`` promise (negative when late)."""
    rows = store.db.execute(
        "SELECT DISTINCT a.id, a.email, a.submitted_at, a.id_shows_address FROM family_accounts a"
        " JOIN family_contacts c ON c.account_id = a.id JOIN prisoners p ON p.id = c.prisoner_id"
        " WHERE a.status = 'pending' AND p.prison = ? ORDER BY a.submitted_at, a.id",
        (staff.prison,),
    ).fetchall()
    now = store.clock()
    queue = []
    for row in rows:
        due = row["submitted_at"] + config.verification_hours * 3600.0
        queue.append(
            {
                "account": row["id"],
                "email": row["email"],
                "submitted_at": row["submitted_at"],
                "due_at": due,
                "seconds_left": due - now,
                "id_shows_address": bool(row["id_shows_address"]),
                "people": _person_view(store, row["id"]),
                "contacts": _contacts_view(store, row["id"], staff.prison),
            }
        )
    return queue


def read_document(store: Store, vault: DocumentVault, staff: Staff, document_id: str) -> tuple[str, bytes]:
    """(content type, bytes) of an ID document or proof of address; audited before it is read."""
    row = store.db.execute(
        "SELECT account_id, person_id, kind, sha256, content_type, deleted_at FROM family_documents"
        " WHERE id = ?",
        (document_id,),
    ).fetchone()
    if row is None:
        raise Refused("not_found", "no such document")
    _account_here(store, staff, row["account_id"], "document")
    if row["deleted_at"] is not None:
        raise Refused("deleted", "this document was deleted after the retention period")
    AuditLog(store).append(
        "document_viewed",
        {"account": row["account_id"], "document": document_id, "kind": row["kind"], "sha256": row["sha256"]},
        prison=staff.prison,
        actor=actor(staff),
    )
    return row["content_type"], vault.read(document_id)


def read_face_photo(store: Store, staff: Staff, person_id: str) -> tuple[str, bytes]:
    """(content type, bytes) of a person's enrolled face photo; audited before it is read."""
    row = store.db.execute(
        "SELECT f.account_id, ph.path, ph.sha256 FROM family_people f"
        " JOIN visitor_photos ph ON ph.visitor_id = f.visitor_id WHERE f.id = ? ORDER BY ph.id DESC LIMIT 1",
        (person_id,),
    ).fetchone()
    if row is None:
        raise Refused("not_found", "no such photo")
    _account_here(store, staff, row["account_id"], "photo")
    AuditLog(store).append(
        "photo_viewed",
        {"account": row["account_id"], "person": person_id, "sha256": row["sha256"]},
        prison=staff.prison,
        actor=actor(staff),
    )
    return "image/jpeg", (store.data_dir / row["path"]).read_bytes()


# -- deciding accounts and people ------------------------------------------------------------------


def _retain(store: Store, where: str, value: str, config: PolicyConfig) -> None:
    store.db.execute(
        f"UPDATE family_documents SET delete_after = ? WHERE {where} = ? AND delete_after IS NULL",
        (store.clock() + config.document_retention_days * 86400.0, value),
    )


def _list_people(store: Store, account_id: str) -> None:
    """Every approved person of the account on the visitor list of every approved contact."""
    store.db.execute(
        "INSERT INTO visitor_list (prisoner_id, visitor_id, approved_at)"
        " SELECT c.prisoner_id, f.visitor_id, ? FROM family_contacts c JOIN family_people f"
        " ON f.account_id = c.account_id WHERE c.account_id = ? AND c.status = 'approved'"
        " AND f.status = 'approved' AND f.visitor_id IS NOT NULL ON CONFLICT DO NOTHING",
        (store.clock(), account_id),
    )


def _complete(p: Any, day: date) -> bool:
    return p.visitor_id is not None and (not p.adult(day) or "id_document" in p.documents)


def verify_account(
    store: Store,
    staff: Staff,
    account_id: str,
    config: PolicyConfig,
    mailer: Mailer,
    *,
    approve_contacts: bool = True,
) -> None:
    """The account is verified; its people with everything needed are approved; with
    ``approve_contacts``, its pending contacts at this prison are approved too."""
    with store.transaction() as db:
        _account_here(store, staff, account_id)
        acc = account(store, account_id)
        if acc.status != "pending":
            raise Refused("not_pending", f"this account is {acc.status}, not waiting to be checked")
        now = store.clock()
        db.execute(
            "UPDATE family_accounts SET status = 'verified', refusal_reason = NULL, decided_by = ?,"
            " decided_at = ? WHERE id = ?",
            (staff.username, now, account_id),
        )
        day = today(store)
        approved = [p.id for p in people(store, account_id) if p.status == "new" and _complete(p, day)]
        db.executemany(
            "UPDATE family_people SET status = 'approved', decided_by = ?, decided_at = ? WHERE id = ?",
            [(staff.username, now, p) for p in approved],
        )
        contacts = [
            c["id"] for c in _contacts_view(store, account_id, staff.prison) if c["status"] == "pending"
        ]
        if approve_contacts:
            db.executemany(
                "UPDATE family_contacts SET status = 'approved', decided_by = ?, decided_at = ? WHERE id = ?",
                [(staff.username, now, c) for c in contacts],
            )
        _list_people(store, account_id)
        _retain(store, "account_id", account_id, config)
        AuditLog(store).append(
            "account_verified",
            {"account": account_id, "people": approved, "contacts": contacts if approve_contacts else []},
            prison=staff.prison,
            actor=actor(staff),
        )
        mailer.send(
            "account_verified", acc.email, name=people(store, account_id)[0].name, prison=staff.prison
        )


def refuse_account(
    store: Store, staff: Staff, account_id: str, reason: str, config: PolicyConfig, mailer: Mailer
) -> None:
    reason = reason_text(reason)
    with store.transaction() as db:
        _account_here(store, staff, account_id)
        acc = account(store, account_id)
        if acc.status != "pending":
            raise Refused("not_pending", f"this account is {acc.status}, not waiting to be checked")
        db.execute(
            "UPDATE family_accounts SET status = 'refused', refusal_reason = ?, decided_by = ?,"
            " decided_at = ? WHERE id = ?",
            (reason, staff.username, store.clock(), account_id),
        )
        _retain(store, "account_id", account_id, config)
        AuditLog(store).append(
            "account_refused", {"account": account_id}, prison=staff.prison, actor=actor(staff)
        )
        mailer.send(
            "account_refused",
            acc.email,
            name=people(store, account_id)[0].name,
            reason=reason,
            prison=staff.prison,
        )


def people_queue(store: Store, staff: Staff) -> list[dict[str, Any]]:
    """People added to verified accounts (with a contact at this prison) waiting to be approved."""
    rows = store.db.execute(
        "SELECT DISTINCT a.id FROM family_accounts a JOIN family_people f ON f.account_id = a.id"
        " JOIN family_contacts c ON c.account_id = a.id JOIN prisoners p ON p.id = c.prisoner_id"
        " WHERE a.status = 'verified' AND f.status = 'new' AND p.prison = ? ORDER BY a.id",
        (staff.prison,),
    ).fetchall()
    day = today(store)
    queue = []
    for row in rows:
        waiting = {p.id for p in people(store, row["id"]) if p.status == "new" and _complete(p, day)}
        view = [p for p in _person_view(store, row["id"]) if p["id"] in waiting]
        if view:
            queue.append({"account": row["id"], "people": view})
    return queue


def _decide_person(
    store: Store, staff: Staff, person_id: str, config: PolicyConfig, mailer: Mailer, reason: str | None
) -> None:
    with store.transaction() as db:
        row = db.execute("SELECT account_id FROM family_people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise Refused("not_found", "no such person")
        _account_here(store, staff, row["account_id"], "person")
        acc = account(store, row["account_id"])
        everyone = {p.id: p for p in people(store, row["account_id"])}
        p = everyone[person_id]
        if acc.status != "verified":
            raise Refused("not_verified", "check the account first (the verification queue)")
        if p.status != "new" or not _complete(p, today(store)):
            raise Refused("not_waiting", f"{p.name} is not waiting to be approved")
        status = "approved" if reason is None else "refused"
        db.execute(
            "UPDATE family_people SET status = ?, reason = ?, decided_by = ?, decided_at = ? WHERE id = ?",
            (status, reason, staff.username, store.clock(), person_id),
        )
        _list_people(store, row["account_id"])
        _retain(store, "person_id", person_id, config)
        AuditLog(store).append(
            f"person_{status}",
            {"account": acc.id, "person": person_id},
            prison=staff.prison,
            actor=actor(staff),
        )
        holder = next(x for x in everyone.values() if x.holder)
        extra = {} if reason is None else {"reason": reason}
        mailer.send(
            f"person_{status}",
            acc.email,
            name=holder.name,
            person_name=p.name,
            prison=staff.prison,
            **extra,
        )


def approve_person(store: Store, staff: Staff, person_id: str, config: PolicyConfig, mailer: Mailer) -> None:
    """A person added after the account was verified may now be on calls (visitor lists follow)."""
    _decide_person(store, staff, person_id, config, mailer, None)


def refuse_person(
    store: Store, staff: Staff, person_id: str, reason: str, config: PolicyConfig, mailer: Mailer
) -> None:
    _decide_person(store, staff, person_id, config, mailer, reason_text(reason))


# -- contacts (visitor lists) ----------------------------------------------------------------------


def contact_queue(store: Store, staff: Staff) -> list[dict[str, Any]]:
    """Pending contacts with this prison's prisoners, of verified accounts, oldest first."""
    rows = store.db.execute(
        "SELECT c.id, c.account_id FROM family_contacts c JOIN prisoners p ON p.id = c.prisoner_id"
        " JOIN family_accounts a ON a.id = c.account_id WHERE c.status = 'pending' AND p.prison = ?"
        " AND a.status = 'verified' ORDER BY c.created_at, c.id",
        (staff.prison,),
    ).fetchall()
    queue = []
    for row in rows:
        c = contact_by_id(store, row["id"])
        assert c is not None
        queue.append(
            {
                **c.public(),
                "prisoner_id": c.prisoner_id,
                "account": row["account_id"],
                "people": _person_view(store, row["account_id"]),
            }
        )
    return queue


def _decide_contact(store: Store, staff: Staff, contact_id: str, mailer: Mailer, reason: str | None) -> None:
    with store.transaction() as db:
        c = contact_by_id(store, contact_id)
        if c is None or c.prison != staff.prison:
            raise Refused("not_found", "no such contact")
        acc = account(store, c.account_id)
        if acc.status != "verified":
            raise Refused("not_verified", "check the account first (the verification queue)")
        if c.status != "pending":
            raise Refused("not_waiting", f"this contact is already {c.status}")
        status = "approved" if reason is None else "refused"
        db.execute(
            "UPDATE family_contacts SET status = ?, reason = ?, decided_by = ?, decided_at = ? WHERE id = ?",
            (status, reason, staff.username, store.clock(), contact_id),
        )
        _list_people(store, c.account_id)
        AuditLog(store).append(
            f"contact_{status}",
            {"account": acc.id, "contact": contact_id, "prisoner": c.prisoner_id},
            prison=staff.prison,
            actor=actor(staff),
        )
        holder = people(store, acc.id)[0]
        extra = {} if reason is None else {"reason": reason}
        mailer.send(
            f"contact_{status}",
            acc.email,
            name=holder.name,
            prisoner_name=c.prisoner_name,
            prison=c.prison,
            **extra,
        )


def approve_contact(store: Store, staff: Staff, contact_id: str, mailer: Mailer) -> None:
    """The family may call this prisoner: its approved people go on the prisoner's visitor list."""
    _decide_contact(store, staff, contact_id, mailer, None)


def refuse_contact(store: Store, staff: Staff, contact_id: str, reason: str, mailer: Mailer) -> None:
    _decide_contact(store, staff, contact_id, mailer, reason_text(reason))
