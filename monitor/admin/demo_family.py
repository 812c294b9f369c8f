"""The demo family of `make run`: a verified account whose holder is the demo call's visitor, with
the demo prisoner as an approved contact, so a newcomer can sign in on /family and book a call.

Made once per database and given a fresh random password at every start (earlier sessions end).
The holder is the demo booking's visitor (his reference photo is the fixture's), his photo ID is
that same photo (encrypted like any family's), his ID shows his address. The demo call itself
uses the prisoner's one free call of the month, so the demo staff account (a governor) grants the
prisoner extra calls for this month and the next, with the reason "demo": the family can book at
once, and the grant shows how a governor's extra calls work.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_accounts import NewDocument, add_document, register
from monitor.store.family_common import new_id
from monitor.store.family_contacts import set_prisoner_date_of_birth
from monitor.store.family_staff import set_role
from monitor.store.prisons import prison
from policies.booking import Booking
from policies.family import month_key

DEMO_EMAIL = "demo.family@example.org"
DEMO_PRISONER_DOB = "1980-02-03"
DEMO_ADDRESS = "1 Demo Street, Leeds LS1 1AA"
DEMO_EXTRA_CALLS = 4


class _Unsent:
    def send(self, kind: str, to: str, **fields: object) -> None:
        """The demo account is made confirmed: nothing to mail."""


def demo_family(store: Store, booking: Booking, staff_username: str) -> tuple[str, str]:
    """The demo family account for ``booking``'s prisoner and first visitor; (e-mail, password)."""
    password = secrets.token_urlsafe(12)
    hashed = auth.hash_password(password)
    prisoner = booking.prisoner
    now = store.clock()
    with store.transaction() as db:
        set_role(store, staff_username, "governor")
        row = db.execute("SELECT date_of_birth FROM prisoners WHERE id = ?", (prisoner.id,)).fetchone()
        if row is not None and row["date_of_birth"] is None:
            set_prisoner_date_of_birth(store, prisoner.id, DEMO_PRISONER_DOB)
        existing = db.execute("SELECT id FROM family_accounts WHERE email = ?", (DEMO_EMAIL,)).fetchone()
        if existing is not None:
            db.execute("UPDATE family_accounts SET password_hash = ? WHERE id = ?", (hashed, existing["id"]))
            db.execute(
                "UPDATE family_sessions SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL",
                (now, existing["id"]),
            )
        else:
            _make(store, booking, hashed, staff_username)
        _grant(store, booking, staff_username)
    return DEMO_EMAIL, password


def _make(store: Store, booking: Booking, hashed: str, staff_username: str) -> None:
    visitor = booking.participants[0]
    reg = register(
        store, DEMO_EMAIL, hashed, visitor.name, visitor.date_of_birth.isoformat(), DEMO_ADDRESS, _Unsent()
    )
    now = store.clock()
    db = store.db
    db.execute(
        "UPDATE family_accounts SET email_confirmed_at = ?, id_shows_address = 1 WHERE id = ?",
        (now, reg.account_id),
    )
    holder = db.execute(
        "SELECT id FROM family_people WHERE account_id = ? AND holder = 1", (reg.account_id,)
    ).fetchone()[0]
    photo = visitor.reference_photos[0].read_bytes()
    document = NewDocument(
        new_id("doc"), "id_document", hashlib.sha256(photo).hexdigest(), "image/jpeg", len(photo), None
    )
    DocumentVault(store).write(document.id, photo)
    add_document(store, reg.account_id, holder, document)
    db.execute(
        "UPDATE family_people SET visitor_id = ?, status = 'approved', decided_by = ?, decided_at = ?"
        " WHERE id = ?",
        (visitor.id, staff_username, now, holder),
    )
    db.execute(
        "INSERT INTO family_contacts (id, account_id, prisoner_id, status, decided_by, decided_at,"
        " created_at) VALUES (?, ?, ?, 'approved', ?, ?, ?)",
        (new_id("con"), reg.account_id, booking.prisoner.id, staff_username, now, now),
    )
    db.execute(
        "UPDATE family_accounts SET status = 'verified', submitted_at = ?, decided_by = ?, decided_at = ?"
        " WHERE id = ?",
        (now, staff_username, now, reg.account_id),
    )
    db.execute(
        "INSERT INTO visitor_list (prisoner_id, visitor_id, approved_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (booking.prisoner.id, visitor.id, now),
    )
    AuditLog(store).append(
        "account_verified",
        {"account": reg.account_id, "people": [holder], "demo": True},
        prison=booking.prison,
        actor=f"staff:{staff_username}",
    )


def _grant(store: Store, booking: Booking, staff_username: str) -> None:
    tz = prison(store, booking.prison).tz
    today = datetime.fromtimestamp(store.clock(), UTC).astimezone(tz)
    for moment in (today, (today.replace(day=1) + timedelta(days=32))):
        month = month_key(moment)
        had = store.db.execute(
            "SELECT 1 FROM allowance_grants WHERE prisoner_id = ? AND month = ? AND reason = 'demo'",
            (booking.prisoner.id, month),
        ).fetchone()
        if had is None:
            store.db.execute(
                "INSERT INTO allowance_grants (prisoner_id, month, extra_calls, reason, governor, at)"
                " VALUES (?, ?, ?, 'demo', ?, ?)",
                (booking.prisoner.id, month, DEMO_EXTRA_CALLS, staff_username, store.clock()),
            )
            AuditLog(store).append(
                "allowance_granted",
                {"prisoner": booking.prisoner.id, "month": month, "extra_calls": DEMO_EXTRA_CALLS},
                prison=booking.prison,
                actor=f"staff:{staff_username}",
            )
