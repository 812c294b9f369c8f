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

Rate limit: failed logins are recorded; more than ``PER_ACCOUNT`` failures for one user name, or
``PER_ADDRESS`` from one client address, inside ``WINDOW_S`` refuse further attempts (even with
the right password) until the window has passed.
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
WINDOW_S = 15 * 60.0
PER_ACCOUNT = 5
PER_ADDRESS = 20
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
    limited: bool = False  # refused by the rate limit (retry after the window)


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
        cursor = db.execute(
            "INSERT INTO staff (username, prison, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, prison, hashed, store.clock()),
        )
    return Staff(int(cursor.lastrowid or 0), username, prison)


def set_password(store: Store, username: str, password: str) -> None:
    """Give an account a new password; its open sessions end."""
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"password must be at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)
    with store.transaction() as db:
        row = db.execute("SELECT id FROM staff WHERE username = ?", (username,)).fetchone()
        if row is None:
            raise StoreError(f"staff account {username}: no such account")
        db.execute("UPDATE staff SET password_hash = ? WHERE id = ?", (hashed, row["id"]))
        db.execute(
            "UPDATE staff_sessions SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL",
            (store.clock(), row["id"]),
        )


def set_disabled(store: Store, username: str, disabled: bool) -> None:
    with store.transaction() as db:
        db.execute("UPDATE staff SET disabled = ? WHERE username = ?", (int(disabled), username))
        if disabled:
            db.execute(
                "UPDATE staff_sessions SET revoked_at = ? WHERE revoked_at IS NULL AND staff_id = "
                "(SELECT id FROM staff WHERE username = ?)",
                (store.clock(), username),
            )


def _limited(store: Store, username: str, address: str) -> bool:
    since = store.clock() - WINDOW_S
    per_account = store.db.execute(
        "SELECT COUNT(*) FROM login_attempts WHERE username = ? AND ok = 0 AND at > ?", (username, since)
    ).fetchone()[0]
    per_address = store.db.execute(
        "SELECT COUNT(*) FROM login_attempts WHERE address = ? AND ok = 0 AND at > ?", (address, since)
    ).fetchone()[0]
    return bool(per_account >= PER_ACCOUNT or per_address >= PER_ADDRESS)


def _attempt(store: Store, username: str, address: str) -> tuple[bool, Any]:
    """(rate-limited?, the account row or None); a limited attempt is recorded as failed."""
    if _limited(store, username, address):
        _record(store, username, address, None, None)
        return True, None
    row = store.db.execute(
        "SELECT id, username, prison, password_hash, disabled FROM staff WHERE username = ?", (username,)
    ).fetchone()
    return False, row


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
    """Check a password under the rate limit; on success open a session."""
    username = username[:64]
    limited, row = _attempt(store, username, address)
    if limited:
        return LoginResult(limited=True)
    ok = check_password(password, row["password_hash"] if row else _dummy_hash())
    return _record(store, username, address, row, _verdict(row, ok))


async def login_async(store: Store, username: str, password: str, address: str) -> LoginResult:
    """:func:`login` for the event loop: scrypt runs in a thread, the database stays on the loop."""
    username = username[:64]
    limited, row = _attempt(store, username, address)
    if limited:
        return LoginResult(limited=True)
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
