"""Passwords, sessions and login rate limits against a real store."""

from __future__ import annotations

import time

import pytest

from monitor.store import auth
from monitor.store.database import Store, StoreError


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(store_at: str) -> Store:
    s = Store(store_at, clock=Clock())
    auth.add_staff(s, "alice", "HMP Example", "correct horse battery")
    return s


def test_password_hash_is_salted_scrypt_and_checks() -> None:
    one, two = auth.hash_password("s3cret-pass"), auth.hash_password("s3cret-pass")
    assert one != two and one.startswith("scrypt$16384$8$1$")
    assert auth.check_password("s3cret-pass", one)
    assert not auth.check_password("s3cret-pasS", one)
    assert not auth.check_password("s3cret-pass", "md5$abc")
    assert not auth.check_password("s3cret-pass", "garbage")


def test_scrypt_costs_real_work() -> None:
    started = time.perf_counter()
    auth.hash_password("x" * 12)
    assert time.perf_counter() - started > 0.005  # memory-hard KDF, not a bare hash


def test_staff_account_rules(store: Store) -> None:
    with pytest.raises(StoreError, match="already exists"):
        auth.add_staff(store, "alice", "HMP Example", "another long password")
    with pytest.raises(StoreError, match="at least 10 characters"):
        auth.add_staff(store, "bob", "HMP Example", "short")
    with pytest.raises(StoreError, match="username 'Bob Smith'"):
        auth.add_staff(store, "Bob Smith", "HMP Example", "long enough password")
    row = store.db.execute("SELECT password_hash FROM staff WHERE username = 'alice'").fetchone()
    assert "correct horse" not in row[0]


def test_login_opens_a_session_that_expires_and_can_be_revoked(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    result = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    assert result.staff is not None and result.token
    staff = auth.session_staff(store, result.token)
    assert staff is not None and staff.prison == "HMP Example"
    assert auth.session_staff(store, result.token[:-1]) is None
    assert auth.session_staff(store, None) is None
    clock.t += auth.SESSION_S
    assert auth.session_staff(store, result.token) is None  # expired
    again = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    assert again.token
    auth.logout(store, again.token)
    assert auth.session_staff(store, again.token) is None  # revoked: reusing it fails
    third = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    auth.set_disabled(store, "alice", True)
    assert auth.session_staff(store, third.token) is None
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is None


def test_wrong_password_and_unknown_user_look_the_same(store: Store) -> None:
    assert auth.login(store, "alice", "wrong password!", "10.0.0.1") == auth.LoginResult()
    assert auth.login(store, "mallory", "wrong password!", "10.0.0.1") == auth.LoginResult()


def test_failures_back_off_one_address_exponentially_and_keep_nobody_else_out(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    for _ in range(auth.FREE_FAILURES):
        assert not auth.login(store, "alice", "guess", "10.6.6.6").limited
    # the guessing address must wait now, even with the right password ...
    refused = auth.login(store, "alice", "correct horse battery", "10.6.6.6")
    assert refused.limited and refused.staff is None and refused.retry_after_s == auth.BACKOFF_FIRST_S
    # ... and nobody else is kept out: alice signs in from her own desk
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is not None
    waits = []
    for _ in range(5):  # each further failure doubles the wait
        clock.t += auth.retry_after_s(store, "alice", "10.6.6.6")
        assert not auth.login(store, "alice", "guess", "10.6.6.6").limited
        waits.append(auth.retry_after_s(store, "alice", "10.6.6.6"))
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0]
    # trying during the wait is refused and recorded, but does not make the wait longer
    clock.t += 10
    assert auth.login(store, "alice", "guess", "10.6.6.6").retry_after_s == 22.0
    assert auth.retry_after_s(store, "alice", "10.6.6.6") == 22.0
    limited = store.db.execute("SELECT COUNT(*) FROM login_attempts WHERE limited = 1").fetchone()[0]
    assert limited == 2
    clock.t += 22
    assert auth.login(store, "alice", "correct horse battery", "10.6.6.6").staff is not None
    assert auth.retry_after_s(store, "alice", "10.6.6.6") == 0  # a success starts the count again


def test_the_wait_is_capped_and_old_failures_are_forgotten(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    for _ in range(auth.FREE_FAILURES + 40):
        clock.t += auth.retry_after_s(store, "alice", "10.6.6.6")
        auth.login(store, "alice", "guess", "10.6.6.6")
    assert auth.retry_after_s(store, "alice", "10.6.6.6") == auth.BACKOFF_MAX_S
    clock.t += auth.WINDOW_S + 1
    assert auth.login(store, "alice", "correct horse battery", "10.6.6.6").staff is not None


def test_one_address_trying_many_accounts_backs_off(store: Store) -> None:
    for i in range(auth.PER_ADDRESS):
        auth.login(store, f"user{i}", "guess", "10.6.6.6")
    assert auth.login(store, "alice", "correct horse battery", "10.6.6.6").limited
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.2").staff is not None


def test_disabling_enabling_and_revoking_sessions(store: Store) -> None:
    first = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    second = auth.login(store, "alice", "correct horse battery", "10.0.0.2")
    assert [s.live(store.clock()) for s in auth.sessions(store, "alice")] == [True, True]
    assert auth.revoke_sessions(store, "alice") == 2
    assert auth.session_staff(store, first.token) is None and auth.session_staff(store, second.token) is None
    assert auth.revoke_sessions(store, "alice") == 0
    assert all(s.revoked_at is not None for s in auth.sessions(store, "alice"))
    third = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    assert auth.set_disabled(store, "alice", True) == 1
    assert auth.session_staff(store, third.token) is None
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is None
    assert auth.set_disabled(store, "alice", False) == 0
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is not None
    for change in (
        lambda: auth.set_disabled(store, "nobody", True),
        lambda: auth.revoke_sessions(store, "nobody"),
        lambda: auth.sessions(store, "nobody"),
    ):
        with pytest.raises(StoreError, match="staff account nobody: no such account"):
            change()


def test_new_password_ends_open_sessions(store: Store) -> None:
    old = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    auth.set_password(store, "alice", "a brand new password")
    assert auth.session_staff(store, old.token) is None
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is None
    assert auth.login(store, "alice", "a brand new password", "10.0.0.1").staff is not None
    with pytest.raises(StoreError, match="no such account"):
        auth.set_password(store, "nobody", "long enough password")
