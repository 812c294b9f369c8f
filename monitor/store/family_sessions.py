"""Families signing in: passwords, sessions, and the rate limits on signing in and registering.

It works like the staff login (``monitor.store.auth``): scrypt runs off the event loop and also
for an unknown address (the answer time does not tell which accounts exist), the same rate limit
on the shared ``login_attempts`` table (user names ``family:<e-mail>``), a random session token of
which only the SHA-256 is kept, re-read on every use so signing out takes effect at once. Signing
in is refused until the e-mail address is confirmed (the caller then mails a new link).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from monitor.store import auth
from monitor.store.database import Store, token_digest

SESSION_S = 14 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class FamilyLogin:
    account_id: str | None = None
    token: str | None = None
    limited: bool = False
    unconfirmed: bool = False  # right password, address not confirmed yet


def _limited(store: Store, name: str, address: str) -> bool:
    """Whether this (account, address) must still wait (the staff login's back-off); a refused
    attempt is recorded as limited, so waiting it out is enough."""
    if auth.retry_after_s(store, name, address) <= 0:
        return False
    with store.transaction() as db:
        db.execute(
            "INSERT INTO login_attempts (username, address, at, ok, limited) VALUES (?, ?, ?, 0, 1)",
            (name, address, store.clock()),
        )
    return True


async def login_async(store: Store, email: str, password: str, address: str) -> FamilyLogin:
    """Check a password under the staff login's rate limit (scrypt in a thread); on success and
    with a confirmed address, open a session."""
    name = f"family:{email[:200]}"
    if _limited(store, name, address):
        return FamilyLogin(limited=True)
    row = store.db.execute(
        "SELECT id, password_hash, email_confirmed_at FROM family_accounts WHERE email = ?", (email,)
    ).fetchone()
    stored = row["password_hash"] if row is not None else auth._dummy_hash()
    ok = await asyncio.to_thread(auth.check_password, password, stored)
    ok = ok and row is not None
    _attempt(store, name, address, ok)
    if not ok:
        return FamilyLogin()
    if row["email_confirmed_at"] is None:
        return FamilyLogin(account_id=row["id"], unconfirmed=True)
    token = secrets.token_urlsafe(32)
    now = store.clock()
    with store.transaction() as db:
        db.execute(
            "INSERT INTO family_sessions (token_sha256, account_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (token_digest(token), row["id"], now, now + SESSION_S),
        )
    return FamilyLogin(account_id=row["id"], token=token)


def _attempt(store: Store, name: str, address: str, ok: bool) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO login_attempts (username, address, at, ok) VALUES (?, ?, ?, ?)",
            (name, address, store.clock(), int(ok)),
        )


def registrations_limited(store: Store, address: str, per_hour: int = 10) -> bool:
    """Whether one client address has registered ``per_hour`` accounts in the last hour (each
    registration is recorded as a login attempt named ``family-register``)."""
    row = store.db.execute(
        "SELECT COUNT(*) FROM login_attempts WHERE username = 'family-register' AND address = ? AND at > ?",
        (address, store.clock() - 3600.0),
    ).fetchone()
    return bool(row[0] >= per_hour)


def count_registration(store: Store, address: str) -> None:
    _attempt(store, "family-register", address, True)


def session_account(store: Store, token: str | None) -> str | None:
    if not token or len(token) > 128:
        return None
    row = store.db.execute(
        "SELECT account_id FROM family_sessions WHERE token_sha256 = ? AND revoked_at IS NULL"
        " AND expires_at > ?",
        (token_digest(token), store.clock()),
    ).fetchone()
    return None if row is None else str(row[0])


def logout(store: Store, token: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE family_sessions SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
            (store.clock(), token_digest(token)),
        )
