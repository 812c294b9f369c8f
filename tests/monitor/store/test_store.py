"""Store rules and migrations on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.store.database import BookedVisitor, BookingRow, Photo, Prisoner, Store, StoreError, Visitor

PHOTO = Photo("jane.jpg", "ab" * 32, b"\0" * 512)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def booking(call_id: str, start: float, minutes: int = 30, prisoner: str = "A1234BC") -> BookingRow:
    return BookingRow(
        call_id,
        prisoner,
        "HMP Example",
        start,
        start + minutes * 60,
        "s",
        "e",
        "{}",
        (BookedVisitor("v1", True),),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "monitor.db", clock=Clock())
    s.add_prisoner(Prisoner("A1234BC", "John Smith", "HMP Example"))
    s.add_visitor(Visitor("v1", "Jane Smith", "1987-07-21", (PHOTO,)), "A1234BC")
    return s


#: the number of migrations the program has (each applied once)
LATEST = len(
    list((Path(__file__).parents[3] / "monitor" / "store" / "migrations").glob("[0-9][0-9][0-9]_*.sql"))
)


def test_fresh_database_is_wal_with_foreign_keys_and_current_schema(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.schema_version() == LATEST
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"prisoners", "visitors", "visitor_list", "bookings", "calls", "staff", "audit"} <= tables


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    Store(tmp_path / "m.db").close()
    with Store(tmp_path / "m.db") as again:
        assert again.db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST


def test_later_migrations_apply_in_order_and_a_failing_one_leaves_nothing(tmp_path: Path) -> None:
    src = Path(__file__).parents[3] / "monitor" / "store" / "migrations" / "001_initial.sql"
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_initial.sql").write_text(src.read_text())
    Store(tmp_path / "m.db", migrations=folder).close()
    (folder / "002_notes.sql").write_text("ALTER TABLE prisoners ADD COLUMN notes TEXT;")
    (folder / "003_broken.sql").write_text("CREATE TABLE half (x INTEGER);\nSELECT * FROM no_such_table;")
    with pytest.raises(StoreError, match=r"migration 003_broken\.sql failed"):
        Store(tmp_path / "m.db", migrations=folder)
    db = sqlite3.connect(tmp_path / "m.db")
    assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 2
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    assert "notes" in [r[1] for r in db.execute("PRAGMA table_info(prisoners)")]


def test_database_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "m.db").close()
    db = sqlite3.connect(tmp_path / "m.db")
    db.execute("INSERT INTO schema_version VALUES (99, '099_future.sql', 0)")
    db.commit()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(tmp_path / "m.db")


def test_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"m\.db"):
        Store(path)
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nowhere" / "m.db")


def test_prisoner_and_visitor_rules(store: Store) -> None:
    with pytest.raises(StoreError, match="prisoner A1234BC already exists"):
        store.add_prisoner(Prisoner("A1234BC", "Other", "HMP Example"))
    with pytest.raises(StoreError, match="no such prisoner"):
        store.add_visitor(Visitor("v2", "Tom", "2015-01-01", (PHOTO,)), "Z9999ZZ")
    with pytest.raises(StoreError, match="visitor v1 already exists"):
        store.add_visitor(Visitor("v1", "Jane", "1987-07-21", (PHOTO,)), "A1234BC")
    with pytest.raises(StoreError, match="at least one reference photo"):
        store.add_visitor(Visitor("v3", "No Photo", "1990-01-01"), "A1234BC")
    assert store.visitor("v3") is None  # the failed write left nothing behind
    visitor = store.visitor("v1")
    assert visitor is not None and visitor.photos == (PHOTO,)
    assert store.visitor_list("A1234BC") == ("v1",)
    store.add_prisoner(Prisoner("B2222CC", "Bob", "HMP Other"))
    store.approve_visitor("B2222CC", "v1")
    assert store.visitor_list("B2222CC") == ("v1",)


def test_bookings_overlap_count_and_calls(store: Store) -> None:
    start = 1_800_000_000.0
    store.add_booking(booking("c1", start))
    assert store.call("c1") is not None and store.call("c1").state == "waiting"  # type: ignore[union-attr]
    assert store.overlapping("A1234BC", start + 29 * 60, start + 59 * 60) == "c1"
    assert store.overlapping("A1234BC", start + 30 * 60, start + 60 * 60) is None  # touching is fine
    assert store.overlapping("A1234BC", start - 30 * 60, start) is None
    with pytest.raises(StoreError, match="c1 is already booked"):
        store.add_booking(booking("c1", start + 3600))
    store.add_booking(booking("c2", start + 3600))
    assert store.count_bookings("A1234BC", start, start + 86400) == 2
    assert [b.call_id for b in store.bookings_between(start, start + 7200, "HMP Example")] == ["c1", "c2"]
    assert store.bookings_between(start, start + 7200, "HMP Other") == []
    got = store.booking("c1")
    assert got is not None and got.visitors == (BookedVisitor("v1", True),)


def test_foreign_keys_refuse_a_booking_of_an_unknown_prisoner(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.add_booking(booking("c9", 1_800_000_000.0, prisoner="Z9999ZZ"))
    assert store.booking("c9") is None


def test_interrupted_calls_are_flagged_on_restart(store: Store) -> None:
    store.add_booking(booking("c1", 1_800_000_000.0))
    store.add_booking(booking("c2", 1_800_003_600.0))
    store.set_call_state("c1", "live")
    assert store.mark_interrupted() == ["c1"]
    call = store.call("c1")
    assert call is not None and call.interrupted
    assert store.mark_interrupted() == []


def test_join_tokens_are_bound_to_person_call_and_window_and_revocable(store: Store) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    store.add_booking(booking("c1", clock.t + 600))
    token = store.issue_join_token("c1", "v1", "visitor", clock.t + 300, clock.t + 2400)
    assert store.join_token(token) is None  # too early
    clock.t += 300
    grant = store.join_token(token)
    assert grant is not None and (grant.call_id, grant.participant, grant.role) == ("c1", "v1", "visitor")
    assert store.join_token(token + "x") is None
    newer = store.issue_join_token("c1", "v1", "visitor", clock.t, clock.t + 2100)
    assert store.join_token(token) is None  # re-issuing revokes the old one
    assert store.revoke_join_token(newer) and store.join_token(newer) is None
    assert not store.revoke_join_token(newer)
    last = store.issue_join_token("c1", "v1", "visitor", clock.t, clock.t + 2100)
    clock.t += 2100
    assert store.join_token(last) is None  # expired
    stored = store.db.execute("SELECT token_sha256 FROM join_tokens").fetchall()
    assert all(token not in row[0] for row in stored)
