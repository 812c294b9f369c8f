"""Family accounts: registering, the e-mail confirmation, logging in, the people on an account,
their face photos and documents, and when an account is ready for staff to check.

Theory of operation
-------------------
An account is made by registering (an e-mail address, a password, and the holder's own name, date
of birth and address: the holder is the account's first person). A random confirmation token is
mailed as a link; only its SHA-256 is kept, as for sessions. Logging in and sessions are in
``family_sessions.py``.

Each person gets a face photo, enrolled as a ``visitors`` row with its reference photo (what the
live call checks faces against), and, if 18 or over, an ID document; the holder also gives a proof
of address unless the ID shows it. The account becomes *pending* (the 24 hour clock starts,
``submitted_at``) as soon as all of that is there and a prisoner has been added as a contact (staff
are per prison: the contact says which prison checks the account). A refused account goes back to
pending when something new is uploaded after the refusal.

Audit records name ids and hashes, never names, dates of birth or addresses.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from monitor.store.audit import AuditLog
from monitor.store.database import Photo, Store, token_digest
from monitor.store.family_common import NO_PRISON, Mailer, Refused, new_id
from monitor.store.sql import Row
from policies.family import age_on

CONFIRM_S = 48 * 3600.0
MAX_PEOPLE = 8  # the holder and up to 7 more (at most 4 on one call)
ADULT = 18
DOCUMENT_KINDS = ("id_document", "proof_of_address")


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    status: str  # unverified | pending | verified | refused
    refusal_reason: str | None
    id_shows_address: bool
    email_confirmed: bool
    submitted_at: float | None
    decided_at: float | None


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    account_id: str
    holder: bool
    name: str
    date_of_birth: str
    address: str
    visitor_id: str | None  # set once a face photo is enrolled
    status: str  # new | approved | refused
    reason: str | None
    documents: tuple[str, ...]  # kinds of the current (not replaced, not deleted) documents

    def adult(self, today: date) -> bool:
        return age_on(date.fromisoformat(self.date_of_birth), today) >= ADULT


@dataclass(frozen=True, slots=True)
class Registration:
    account_id: str
    token: str | None  # the confirmation token to mail; None when the address was already registered


def today(store: Store) -> date:
    return datetime.fromtimestamp(store.clock(), UTC).date()


# -- registering and confirming --------------------------------------------------------------------


def register(
    store: Store,
    email: str,
    password_hash: str,
    name: str,
    date_of_birth: str,
    address: str,
    mailer: Mailer,
    link: Callable[[str], str] | None = None,
) -> Registration:
    """A new account with its holder, and the confirmation link's token, mailed (``confirm_email``
    with ``link(token)``) when ``link`` is given. An address already registered gets an
    ``already_registered`` message instead, and the answer looks the same."""
    now = store.clock()
    with store.transaction() as db:
        row = db.execute("SELECT id FROM family_accounts WHERE email = ?", (email,)).fetchone()
        if row is not None:  # greeted by the holder's name, never one a stranger typed
            mailer.send("already_registered", email, name=people(store, row["id"])[0].name)
            return Registration(row["id"], None)
        account_id = new_id("fam")
        db.execute(
            "INSERT INTO family_accounts (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (account_id, email, password_hash, now),
        )
        db.execute(
            "INSERT INTO family_people (id, account_id, holder, name, date_of_birth, address, created_at)"
            " VALUES (?, ?, 1, ?, ?, ?, ?)",
            (new_id("per"), account_id, name, date_of_birth, address, now),
        )
        token = _confirmation(store, account_id)
        if link is not None:
            mailer.send("confirm_email", email, name=name, link=link(token))
        AuditLog(store).append("family_registered", {"account": account_id}, prison=NO_PRISON, actor="family")
    return Registration(account_id, token)


def _confirmation(store: Store, account_id: str) -> str:
    token = secrets.token_urlsafe(32)
    store.db.execute(
        "INSERT INTO family_confirmations (token_sha256, account_id, expires_at) VALUES (?, ?, ?)",
        (token_digest(token), account_id, store.clock() + CONFIRM_S),
    )
    return token


def new_confirmation(store: Store, account_id: str) -> str | None:
    """Another confirmation token for an unconfirmed account (None when already confirmed)."""
    with store.transaction():
        if account(store, account_id).email_confirmed:
            return None
        return _confirmation(store, account_id)


def confirm_email(store: Store, token: str) -> str:
    """``confirmed``, ``already`` (the link was used before) or ``invalid`` (unknown or expired)."""
    if not token or len(token) > 128:
        return "invalid"
    with store.transaction() as db:
        row = db.execute(
            "SELECT c.account_id, c.expires_at, c.used_at, a.email_confirmed_at FROM family_confirmations c"
            " JOIN family_accounts a ON a.id = c.account_id WHERE c.token_sha256 = ?",
            (token_digest(token),),
        ).fetchone()
        if row is None:
            return "invalid"
        if row["used_at"] is not None or row["email_confirmed_at"] is not None:
            return "already"
        if row["expires_at"] <= store.clock():
            return "invalid"
        now = store.clock()
        db.execute(
            "UPDATE family_confirmations SET used_at = ? WHERE token_sha256 = ?", (now, token_digest(token))
        )
        db.execute("UPDATE family_accounts SET email_confirmed_at = ? WHERE id = ?", (now, row["account_id"]))
        AuditLog(store).append(
            "email_confirmed", {"account": row["account_id"]}, prison=NO_PRISON, actor="family"
        )
    return "confirmed"


# -- reading ---------------------------------------------------------------------------------------


def account(store: Store, account_id: str) -> Account:
    row = store.db.execute("SELECT * FROM family_accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None:
        raise Refused("no_account", "this account no longer exists")
    return Account(
        row["id"],
        row["email"],
        row["status"],
        row["refusal_reason"],
        bool(row["id_shows_address"]),
        row["email_confirmed_at"] is not None,
        row["submitted_at"],
        row["decided_at"],
    )


def _person(store: Store, row: Row) -> Person:
    kinds = store.db.execute(
        "SELECT DISTINCT kind FROM family_documents WHERE person_id = ? AND replaced_at IS NULL"
        " AND deleted_at IS NULL ORDER BY kind",
        (row["id"],),
    ).fetchall()
    checked = store.db.execute(
        "SELECT DISTINCT kind FROM family_documents WHERE person_id = ? AND replaced_at IS NULL"
        " AND deleted_at IS NOT NULL ORDER BY kind",
        (row["id"],),
    ).fetchall()
    return Person(
        row["id"],
        row["account_id"],
        bool(row["holder"]),
        row["name"],
        row["date_of_birth"],
        row["address"],
        row["visitor_id"],
        row["status"],
        row["reason"],
        tuple(sorted({r[0] for r in kinds} | {r[0] for r in checked})),
    )


def people(store: Store, account_id: str) -> list[Person]:
    rows = store.db.execute(
        "SELECT * FROM family_people WHERE account_id = ? ORDER BY holder DESC, created_at, id", (account_id,)
    ).fetchall()
    return [_person(store, r) for r in rows]


def person(store: Store, account_id: str, person_id: str) -> Person:
    """One person of this account (any other id, another account's included, is the same refusal)."""
    row = store.db.execute(
        "SELECT * FROM family_people WHERE id = ? AND account_id = ?", (person_id, account_id)
    ).fetchone()
    if row is None:
        raise Refused("no_person", "that person is not on your account")
    return _person(store, row)


def _whose(p: Person) -> str:
    return "your" if p.holder else f"{p.name}'s"


def missing(store: Store, account_id: str) -> list[str]:
    """What the account still needs before staff can check it, in plain words (empty: complete)."""
    acc = account(store, account_id)
    day = today(store)
    needs = []
    for p in people(store, account_id):
        who = "you" if p.holder else p.name
        if p.visitor_id is None:
            needs.append(f"a photo of {_whose(p)} face")
        if p.adult(day) and "id_document" not in p.documents:
            needs.append(f"a photo ID for {who}")
        if p.holder and not acc.id_shows_address and "proof_of_address" not in p.documents:
            needs.append("a proof of address (or tell us your ID shows your address)")
    contacts = store.db.execute("SELECT COUNT(*) FROM family_contacts WHERE account_id = ?", (account_id,))
    if contacts.fetchone()[0] == 0:
        needs.append("the person in prison you want to call")
    return needs


def contact_prison(store: Store, account_id: str) -> str:
    """The prison of the account's first contact (who checks it), else :data:`NO_PRISON`."""
    row = store.db.execute(
        "SELECT p.prison FROM family_contacts c JOIN prisoners p ON p.id = c.prisoner_id"
        " WHERE c.account_id = ? ORDER BY c.created_at, c.id LIMIT 1",
        (account_id,),
    ).fetchone()
    return NO_PRISON if row is None else str(row[0])


def maybe_submit(store: Store, account_id: str) -> bool:
    """Make the account pending (the verification clock starts) when it is complete and waiting:
    unverified, or refused with something uploaded since. True when it was submitted now."""
    with store.transaction() as db:
        acc = account(store, account_id)
        if acc.status == "refused":
            newer = db.execute(
                "SELECT COUNT(*) FROM family_documents WHERE account_id = ? AND uploaded_at > ?",
                (account_id, acc.decided_at or 0.0),
            ).fetchone()[0]
            if not newer:
                return False
        elif acc.status != "unverified":
            return False
        if missing(store, account_id):
            return False
        db.execute(
            "UPDATE family_accounts SET status = 'pending', submitted_at = ?, refusal_reason = NULL"
            " WHERE id = ?",
            (store.clock(), account_id),
        )
        AuditLog(store).append(
            "account_submitted",
            {"account": account_id},
            prison=contact_prison(store, account_id),
            actor="family",
        )
    return True


# -- people, photos and documents ------------------------------------------------------------------


def add_person(store: Store, account_id: str, name: str, date_of_birth: str, address: str) -> Person:
    with store.transaction() as db:
        count = db.execute(
            "SELECT COUNT(*) FROM family_people WHERE account_id = ?", (account_id,)
        ).fetchone()
        if count[0] >= MAX_PEOPLE:
            raise Refused("too_many_people", f"an account can have at most {MAX_PEOPLE} people")
        person_id = new_id("per")
        db.execute(
            "INSERT INTO family_people (id, account_id, holder, name, date_of_birth, address, created_at)"
            " VALUES (?, ?, 0, ?, ?, ?, ?)",
            (person_id, account_id, name, date_of_birth, address, store.clock()),
        )
        AuditLog(store).append(
            "person_added",
            {"account": account_id, "person": person_id},
            prison=contact_prison(store, account_id),
            actor="family",
        )
    return person(store, account_id, person_id)


def _changeable(p: Person) -> None:
    if p.status == "approved":
        raise Refused(
            "already_approved",
            f"{_whose(p)} details are approved; ask the prison to change them",
        )


def _reopen(store: Store, p: Person) -> None:
    """A refused person who sends something new is waiting for staff again."""
    if p.status == "refused":
        store.db.execute(
            "UPDATE family_people SET status = 'new', reason = NULL, decided_by = NULL, decided_at = NULL"
            " WHERE id = ?",
            (p.id,),
        )


def set_face(store: Store, account_id: str, person_id: str, photo: Photo) -> Person:
    """Give a person their enrolled face photo (kept under the data directory): the first makes
    them a visitor; a new one replaces it until staff have approved the person."""
    with store.transaction() as db:
        p = person(store, account_id, person_id)
        _changeable(p)
        visitor_id = p.visitor_id
        if visitor_id is None:
            visitor_id = new_id("vis")
            db.execute(
                "INSERT INTO visitors (id, name, date_of_birth, created_at) VALUES (?, ?, ?, ?)",
                (visitor_id, p.name, p.date_of_birth, store.clock()),
            )
            db.execute("UPDATE family_people SET visitor_id = ? WHERE id = ?", (visitor_id, p.id))
        else:
            db.execute("DELETE FROM visitor_photos WHERE visitor_id = ?", (visitor_id,))
        _reopen(store, p)
        db.execute(
            "INSERT INTO visitor_photos (visitor_id, path, sha256, embedding) VALUES (?, ?, ?, ?)",
            (visitor_id, photo.path, photo.sha256, photo.embedding),
        )
        AuditLog(store).append(
            "face_photo_enrolled",
            {"account": account_id, "person": p.id, "visitor": visitor_id, "photo": photo.sha256},
            prison=contact_prison(store, account_id),
            actor="family",
        )
    maybe_submit(store, account_id)
    return person(store, account_id, person_id)


@dataclass(frozen=True, slots=True)
class NewDocument:
    id: str
    kind: str
    sha256: str
    content_type: str
    size: int
    face_embedding: bytes | None  # an ID document's face (float64 little-endian)


def check_document(store: Store, account_id: str, person_id: str, kind: str) -> Person:
    """Refuse a document before its bytes are read: an unknown kind, a proof of address for anyone
    but the holder, an ID for a child, or a person already approved."""
    if kind not in DOCUMENT_KINDS:
        raise Refused("bad_kind", "a document is an ID or a proof of address")
    p = person(store, account_id, person_id)
    _changeable(p)
    if kind == "proof_of_address" and not p.holder:
        raise Refused("bad_kind", "only the account holder gives a proof of address")
    if kind == "id_document" and not p.adult(today(store)):
        raise Refused("bad_kind", f"{p.name} is under {ADULT}: children need a face photo, not an ID")
    return p


def add_document(store: Store, account_id: str, person_id: str, document: NewDocument) -> list[str]:
    """Record a document whose encrypted file is already written; earlier documents of the same
    kind for that person are marked replaced. Returns the ids replaced (their files can go)."""
    with store.transaction() as db:
        check_document(store, account_id, person_id, document.kind)
        now = store.clock()
        replaced = [
            r[0]
            for r in db.execute(
                "SELECT id FROM family_documents WHERE person_id = ? AND kind = ? AND replaced_at IS NULL",
                (person_id, document.kind),
            ).fetchall()
        ]
        db.executemany(
            "UPDATE family_documents SET replaced_at = ? WHERE id = ?", [(now, r) for r in replaced]
        )
        _reopen(store, person(store, account_id, person_id))
        db.execute(
            "INSERT INTO family_documents (id, account_id, person_id, kind, sha256, content_type, size,"
            " face_embedding, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                document.id,
                account_id,
                person_id,
                document.kind,
                document.sha256,
                document.content_type,
                document.size,
                document.face_embedding,
                now,
            ),
        )
        AuditLog(store).append(
            "document_uploaded",
            {"account": account_id, "person": person_id, "kind": document.kind, "sha256": document.sha256},
            prison=contact_prison(store, account_id),
            actor="family",
        )
    maybe_submit(store, account_id)
    return replaced


def set_id_shows_address(store: Store, account_id: str, shows: bool) -> None:
    with store.transaction() as db:
        if account(store, account_id).status == "verified":
            raise Refused(
                "already_verified", "your account is verified; ask the prison to change your details"
            )
        db.execute("UPDATE family_accounts SET id_shows_address = ? WHERE id = ?", (int(shows), account_id))
    maybe_submit(store, account_id)
