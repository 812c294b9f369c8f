"""Prisoners added as contacts by families, and who of a family may be on a call with them.

A family adds a prisoner by name, prison number and date of birth; all three must match the
``prisoners`` row (the name compared without case or extra spaces). Any mismatch, and an unknown
number, get the same one answer, "we could not match these details", so the page reveals nothing
about who is in prison; after ``MAX_MISSES`` misses in a day an account is told to try tomorrow
(also revealing nothing). A new contact is *pending* until staff approve it; approving puts the
account's approved people on the prisoner's visitor list (``family_staff.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from monitor.store.audit import AuditLog
from monitor.store.database import Store
from monitor.store.family_accounts import Person, account, maybe_submit, person
from monitor.store.family_common import Refused, new_id
from monitor.store.prisons import prison
from monitor.store.sql import Row
from policies.config import PolicyConfig
from policies.family import age_on

NO_MATCH = "we could not match these details"
MAX_MISSES = 10
MISS_WINDOW_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    account_id: str
    prisoner_id: str
    prisoner_name: str
    prison: str
    status: str  # pending | approved | refused
    reason: str | None
    mode: str  # the prison's booking mode

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "prisoner_name": self.prisoner_name,
            "prisoner_number": self.prisoner_id,
            "prison": self.prison,
            "status": self.status,
            "reason": self.reason,
            "mode": self.mode,
        }


def _plain(name: str) -> str:
    return " ".join(name.split()).casefold()


def _contact(store: Store, row: Row) -> Contact:
    return Contact(
        row["id"],
        row["account_id"],
        row["prisoner_id"],
        row["prisoner_name"],
        row["prison"],
        row["status"],
        row["reason"],
        prison(store, row["prison"]).mode,
    )


_SELECT = (
    "SELECT c.*, p.name AS prisoner_name, p.prison AS prison FROM family_contacts c"
    " JOIN prisoners p ON p.id = c.prisoner_id"
)


def contacts(store: Store, account_id: str) -> list[Contact]:
    rows = store.db.execute(f"{_SELECT} WHERE c.account_id = ? ORDER BY c.created_at, c.id", (account_id,))
    return [_contact(store, r) for r in rows.fetchall()]


def contact(store: Store, account_id: str, contact_id: str) -> Contact:
    row = store.db.execute(
        f"{_SELECT} WHERE c.id = ? AND c.account_id = ?", (contact_id, account_id)
    ).fetchone()
    if row is None:
        raise Refused("no_contact", "that person in prison is not one of your contacts")
    return _contact(store, row)


def contact_by_id(store: Store, contact_id: str) -> Contact | None:
    row = store.db.execute(f"{_SELECT} WHERE c.id = ?", (contact_id,)).fetchone()
    return None if row is None else _contact(store, row)


def add_contact(store: Store, account_id: str, name: str, number: str, date_of_birth: str) -> Contact:
    """The account's contact with the prisoner these details match (new ones are pending), or
    Refused("no_match", :data:`NO_MATCH`)."""
    misses = f"family-contact:{account_id}"
    recent = store.db.execute(
        "SELECT COUNT(*) FROM login_attempts WHERE username = ? AND ok = 0 AND at > ?",
        (misses, store.clock() - MISS_WINDOW_S),
    ).fetchone()[0]
    if recent >= MAX_MISSES:
        raise Refused("too_many_tries", "too many tries today; please try again tomorrow")
    row = store.db.execute(
        # the prison number in any case (ASCII letters, as SQLite's NOCASE and PostgreSQL's "C" fold)
        "SELECT id, name FROM prisoners WHERE UPPER(id) = UPPER(?) AND date_of_birth = ?",
        (number.strip(), date_of_birth),
    ).fetchone()
    if row is None or _plain(row["name"]) != _plain(name):
        with store.transaction() as db:
            db.execute(
                "INSERT INTO login_attempts (username, address, at, ok) VALUES (?, '', ?, 0)",
                (misses, store.clock()),
            )
        raise Refused("no_match", NO_MATCH)
    prisoner_id = str(row["id"])
    with store.transaction() as db:
        account(store, account_id)
        existing = db.execute(
            "SELECT id FROM family_contacts WHERE account_id = ? AND prisoner_id = ?",
            (account_id, prisoner_id),
        ).fetchone()
        if existing is not None:
            return contact(store, account_id, existing["id"])
        contact_id = new_id("con")
        db.execute(
            "INSERT INTO family_contacts (id, account_id, prisoner_id, created_at) VALUES (?, ?, ?, ?)",
            (contact_id, account_id, prisoner_id, store.clock()),
        )
        added = contact(store, account_id, contact_id)
        AuditLog(store).append(
            "contact_added",
            {"account": account_id, "contact": contact_id, "prisoner": prisoner_id},
            prison=added.prison,
            actor="family",
        )
    maybe_submit(store, account_id)
    return added


def callers(
    store: Store,
    account_id: str,
    prisoner_id: str,
    person_ids: list[str],
    main_id: str,
    call_day: date,
    config: PolicyConfig,
) -> list[Person]:
    """The people chosen for a call, the main caller first, checked: 1 to ``max_visitors`` of
    them, each once, each approved and on the prisoner's visitor list, the main caller one of them
    and old enough on the day of the call."""
    if not 1 <= len(person_ids) <= config.max_visitors:
        raise Refused("people", f"choose 1 to {config.max_visitors} people for the call")
    if len(set(person_ids)) != len(person_ids):
        raise Refused("people", "choose each person once")
    if main_id not in person_ids:
        raise Refused("main_caller", "the main caller must be one of the people on the call")
    listed = set(store.visitor_list(prisoner_id))
    chosen = []
    for person_id in [main_id, *(p for p in person_ids if p != main_id)]:
        p = person(store, account_id, person_id)
        if p.status != "approved" or p.visitor_id is None:
            raise Refused("not_approved", f"{p.name} has not been approved by the prison yet")
        if p.visitor_id not in listed:
            raise Refused("not_on_list", f"{p.name} is not on the visitor list for this prisoner yet")
        chosen.append(p)
    age = age_on(date.fromisoformat(chosen[0].date_of_birth), call_day)
    if age < config.main_caller_min_age:
        raise Refused(
            "main_caller_age",
            f"{chosen[0].name} is {age}: the main caller must be {config.main_caller_min_age} or over",
        )
    return chosen


def set_prisoner_date_of_birth(store: Store, prisoner_id: str, date_of_birth: str) -> None:
    """Families must give it, with the name and the prison number, to add this prisoner."""
    try:
        born = date.fromisoformat(date_of_birth)
    except ValueError:
        raise Refused(
            "date_of_birth", f"date of birth {date_of_birth!r}: must be a date YYYY-MM-DD"
        ) from None
    with store.transaction() as db:
        if (
            db.execute(
                "UPDATE prisoners SET date_of_birth = ? WHERE id = ?", (born.isoformat(), prisoner_id)
            ).rowcount
            != 1
        ):
            raise Refused("not_found", f"prisoner {prisoner_id}: no such prisoner")
