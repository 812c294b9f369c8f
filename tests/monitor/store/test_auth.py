"""Passwords, sessions and login rate limits against a real store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.store import auth
from monitor.store.database import Store, StoreError


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "monitor.db", clock=Clock())
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


def test_rate_limit_per_account(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    for i in range(auth.PER_ACCOUNT):
        assert not auth.login(store, "alice", "guess", f"10.0.0.{i}").limited
    # even the right password is refused now, from any address
    assert auth.login(store, "alice", "correct horse battery", "10.9.9.9").limited
    clock.t += auth.WINDOW_S + 1
    assert auth.login(store, "alice", "correct horse battery", "10.9.9.9").staff is not None


def test_rate_limit_per_address(store: Store) -> None:
    for i in range(auth.PER_ADDRESS):
        auth.login(store, f"user{i}", "guess", "10.6.6.6")
    assert auth.login(store, "alice", "correct horse battery", "10.6.6.6").limited
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.2").staff is not None


def test_new_password_ends_open_sessions(store: Store) -> None:
    old = auth.login(store, "alice", "correct horse battery", "10.0.0.1")
    auth.set_password(store, "alice", "a brand new password")
    assert auth.session_staff(store, old.token) is None
    assert auth.login(store, "alice", "correct horse battery", "10.0.0.1").staff is None
    assert auth.login(store, "alice", "a brand new password", "10.0.0.1").staff is not None
    with pytest.raises(StoreError, match="no such account"):
        auth.set_password(store, "nobody", "long enough password")
