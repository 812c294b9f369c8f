"""Staff roles on the families' side, and what every staff decision shares: a governor check, a
reason in plain words (the family is told it), the audit actor."""

from __future__ import annotations

from monitor.store.auth import Staff
from monitor.store.database import Store, StoreError
from monitor.store.family_common import Refused

ROLES = ("staff", "governor")
MAX_REASON = 500


def role(store: Store, staff: Staff) -> str:
    row = store.db.execute("SELECT role FROM staff WHERE id = ?", (staff.id,)).fetchone()
    return "staff" if row is None else str(row[0])


def set_role(store: Store, username: str, new_role: str) -> None:
    if new_role not in ROLES:
        raise StoreError(f"role {new_role!r}: must be staff or governor")
    with store.transaction() as db:
        if db.execute("UPDATE staff SET role = ? WHERE username = ?", (new_role, username)).rowcount != 1:
            raise StoreError(f"staff account {username}: no such account")


def require_governor(store: Store, staff: Staff) -> None:
    if role(store, staff) != "governor":
        raise Refused("governor_only", "only a governor can do this")


def reason_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise Refused("reason", "give a reason: the family is told it")
    if len(text) > MAX_REASON:
        raise Refused("reason", f"the reason can be at most {MAX_REASON} characters")
    return text


def actor(staff: Staff) -> str:
    return f"staff:{staff.username}"
