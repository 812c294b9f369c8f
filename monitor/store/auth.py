"""Staff accounts, console sessions and login rate limits.

Theory of operation
-------------------
Passwords are hashed with scrypt (memory-hard, in the standard library) with a random 16-byte salt
per account; the stored form ``scrypt$N$r$p$salt$hash`` carries its parameters so they can be raised
later. Checking compares in constant time and runs scrypt even for an unknown user name, so the
answer time does not reveal which accounts exist.

A successful login creates a session: a random 256-bit token given to the browser as a cookie,
of which the store keeps only the SHA-256, with an expiry (one shift) and a revocation time
(logout). Every request re-reads the session row, so revoking it or disabling the account takes
effect at once, also on open WebSockets (they re-check before each action).

Throttling: every attempt is recorded. Failures are counted per (user name, client address): after
``FREE_FAILURES`` of them (since that pair's last success, within ``WINDOW_S``) the pair must wait
``BACKOFF_FIRST_S``, doubling with each further failure up to ``BACKOFF_MAX_S``, after its last
failure; an attempt during the wait is refused (even with the right password), recorded as
``limited`` and not counted, so waiting it out is enough. One address failing on any accounts
``PER_ADDRESS`` times inside ``ADDRESS_WINDOW_S`` backs off the same way (password spraying).
Nobody is locked out from elsewhere: guessing from one address slows that address only, so someone
who knows a user name cannot keep its owner out. Guessing one password from many addresses is
slowed by scrypt and the password rules, and every attempt is in ``login_attempts``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from monitor.store.database import Store, StoreError, token_digest

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB per hash
SESSION_S = 12 * 3600.0
WINDOW_S = 24 * 3600.0  # failures older than this are forgotten
FREE_FAILURES = 3  # failures of one (user name, address) pair before it must wait
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 15 * 60.0
PER_ADDRESS = 20  # failures from one address, any user names, before it must wait
ADDRESS_WINDOW_S = 15 * 60.0
MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(expected)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def _dummy_hash() -> str:
    """Checked instead when the user name is unknown, so both answers take as long."""
    return hash_password("not a real password", salt=b"\0" * 16)


@dataclass(frozen=True, slots=True)
class Staff:
    id: int
    username: str
    prison: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    staff: Staff | None = None
    token: str | None = None
    retry_after_s: float = 0.0  # > 0: refused by the back-off; try again after this long

    @property
    def limited(self) -> bool:
        return self.retry_after_s > 0


@dataclass(frozen=True, slots=True)
class Session:
    created_at: float
    expires_at: float
    revoked_at: float | None

    def live(self, now: float) -> bool:
        return self.revoked_at is None and self.expires_at > now


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise StoreError(
            f"username {username!r}: use 2-40 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return username


def add_staff(store: Store, username: str, prison: str, password: str) -> Staff:
    check_username(username)
    if not prison.strip():
        raise StoreError("--prison must not be empty")
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password must be at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM staff WHERE username = ?", (username,)).fetchone():
            raise StoreError(f"staff account {username} already exists")
        new_id = db.execute(
            "INSERT INTO staff (username, prison, password_hash, created_at) VALUES (?, ?, ?, ?)"
            " RETURNING id",
            (username, prison, hashed, store.clock()),
        ).fetchone()[0]
    return Staff(int(new_id), username, prison)


def set_password(store: Store, username: str, password: str) -> int:
    """Give an account a new password; its open sessions end (returns how many)."""
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password must be at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)
    with store.transaction() as db:
        staff_id = _account_id(db, username)
        db.execute("UPDATE staff SET password_hash = ? WHERE id = ?", (hashed, staff_id))
        return _revoke(store, db, staff_id)


def _account_id(db: Any, username: str) -> int:
    row = db.execute("SELECT id FROM staff WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise StoreError(f"staff account {username}: no such account")
    return int(row["id"])


def account_prison(store: Store, username: str) -> str:
    row = store.db.execute("SELECT prison FROM staff WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise StoreError(f"staff account {username}: no such account")
    return str(row["prison"])


def set_disabled(store: Store, username: str, disabled: bool) -> int:
    """Disable (every open session ends) or enable an account; returns the sessions ended."""
    with store.transaction() as db:
        staff_id = _account_id(db, username)
        db.execute("UPDATE staff SET disabled = ? WHERE id = ?", (int(disabled), staff_id))
        if not disabled:
            return 0
        return _revoke(store, db, staff_id)


def _revoke(store: Store, db: Any, staff_id: int) -> int:
    now = store.clock()
    cursor = db.execute(
        "UPDATE staff_sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL"
        " AND expires_at > ?",
        (now, staff_id, now),
    )
    return int(cursor.rowcount)


def revoke_sessions(store: Store, username: str) -> int:
    """End every open session of an account (a stolen cookie stops working); how many there were."""
    with store.transaction() as db:
        return _revoke(store, db, _account_id(db, username))


def sessions(store: Store, username: str) -> list[Session]:
    """The account's sessions, newest first (only times: the store keeps no token)."""
    staff_id = _account_id(store.db, username)
    rows = store.db.execute(
        "SELECT created_at, expires_at, revoked_at FROM staff_sessions WHERE staff_id = ?"
        " ORDER BY created_at DESC",
        (staff_id,),
    ).fetchall()
    return [Session(r["created_at"], r["expires_at"], r["revoked_at"]) for r in rows]


def backoff_s(failures: int, free: int) -> float:
    """How long to wait after the last of ``failures`` failures when ``free`` are allowed."""
    if failures < free:
        return 0.0
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(failures - free, 30)))


def retry_after_s(store: Store, username: str, address: str) -> float:
    """How long this (user name, address) must still wait before its next attempt (0: it may try)."""
    now = store.clock()
    last_ok = store.db.execute(
        "SELECT MAX(at) FROM login_attempts WHERE username = ? AND address = ? AND ok = 1",
        (username, address),
    ).fetchone()[0]
    pair = store.db.execute(
        "SELECT COUNT(*), MAX(at) FROM login_attempts WHERE username = ? AND address = ? AND ok = 0"
        " AND limited = 0 AND at > ?",
        (username, address, max(now - WINDOW_S, last_ok or 0.0)),
    ).fetchone()
    by_address = store.db.execute(
        "SELECT COUNT(*), MAX(at) FROM login_attempts WHERE address = ? AND ok = 0 AND limited = 0"
        " AND at > ?",
        (address, now - ADDRESS_WINDOW_S),
    ).fetchone()
    wait = 0.0
    for (failures, last), free in ((pair, FREE_FAILURES), (by_address, PER_ADDRESS)):
        if failures:
            wait = max(wait, last + backoff_s(failures, free) - now)
    return wait


def _attempt(store: Store, username: str, address: str) -> tuple[float, Any]:
    """(seconds still to wait, the account row or None); a refused attempt is recorded as limited."""
    wait = retry_after_s(store, username, address)
    if wait > 0:
        with store.transaction() as db:
            db.execute(
                "INSERT INTO login_attempts (username, address, at, ok, limited) VALUES (?, ?, ?, 0, 1)",
                (username, address, store.clock()),
            )
        return wait, None
    row = store.db.execute(
        "SELECT id, username, prison, password_hash, disabled FROM staff WHERE username = ?", (username,)
    ).fetchone()
    return 0.0, row


def _record(store: Store, username: str, address: str, row: Any, token: str | None) -> LoginResult:
    now = store.clock()
    with store.transaction() as db:
        db.execute(
            "INSERT INTO login_attempts (username, address, at, ok) VALUES (?, ?, ?, ?)",
            (username, address, now, int(token is not None)),
        )
        if token is not None:
            db.execute(
                "INSERT INTO staff_sessions (token_sha256, staff_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_digest(token), row["id"], now, now + SESSION_S),
            )
    if token is None:
        return LoginResult()
    return LoginResult(Staff(row["id"], row["username"], row["prison"]), token)


def _verdict(row: Any, password_ok: bool) -> str | None:
    """A new session token when the password is right and the account is usable."""
    return secrets.token_urlsafe(32) if password_ok and row is not None and not row["disabled"] else None


def login(store: Store, username: str, password: str, address: str) -> LoginResult:
    """Check a password under the back-off; on success open a session."""
    username = username[:64]
    wait, row = _attempt(store, username, address)
    if wait > 0:
        return LoginResult(retry_after_s=wait)
    ok = check_password(password, row["password_hash"] if row else _dummy_hash())
    return _record(store, username, address, row, _verdict(row, ok))


async def login_async(store: Store, username: str, password: str, address: str) -> LoginResult:
    """:func:`login` for the event loop: scrypt runs in a thread, the database stays on the loop."""
    username = username[:64]
    wait, row = _attempt(store, username, address)
    if wait > 0:
        return LoginResult(retry_after_s=wait)
    stored = row["password_hash"] if row else _dummy_hash()
    ok = await asyncio.to_thread(check_password, password, stored)
    return _record(store, username, address, row, _verdict(row, ok))


def session_staff(store: Store, token: str | None) -> Staff | None:
    """The member of staff behind a live session token, or None (unknown, expired, revoked, disabled)."""
    if not token or len(token) > 128:
        return None
    row = store.db.execute(
        "SELECT s.id, s.username, s.prison FROM staff_sessions AS x JOIN staff AS s ON s.id = x.staff_id "
        "WHERE x.token_sha256 = ? AND x.revoked_at IS NULL AND x.expires_at > ? AND s.disabled = 0",
        (token_digest(token), store.clock()),
    ).fetchone()
    return None if row is None else Staff(row["id"], row["username"], row["prison"])


def logout(store: Store, token: str) -> None:
    with store.transaction() as db:
        db.execute(
            "UPDATE staff_sessions SET revoked_at = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
            (store.clock(), token_digest(token)),
        )
