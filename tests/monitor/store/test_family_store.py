"""The families' tables on a real SQLite file and a real PostgreSQL database: accounts, documents
at rest, contacts, staff decisions, booking inside one write transaction, the allowance and grants,
cancelling, requests.

The clock is a Monday morning in London (2030-06-03 08:00 BST); the prison's default timetable has
calls on weekdays. Face photos are real photos enrolled with the real models."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.family_site import (
    BIDEN,
    CHILD,
    CONFIG,
    GRACE,
    OTHER_PRISON,
    PASSWORD,
    PRISON,
    PRISONER,
    Clock,
    MemoryMailer,
    id_document,
    kept_photo,
    prison_with_staff,
    proof_of_address,
    verified_family,
)

import monitor.store
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Prisoner, Store, StoreError
from monitor.store.documents import KEY_ENV, DocumentVault, key_path, load_key, purge_expired
from monitor.store.family_accounts import (
    account,
    add_person,
    confirm_email,
    missing,
    people,
    register,
    set_face,
)
from monitor.store.family_calls import book, cancel, join_link, slots, upcoming
from monitor.store.family_common import Refused
from monitor.store.family_contacts import NO_MATCH, add_contact, set_prisoner_date_of_birth
from monitor.store.family_requests import request_call, requests
from monitor.store.family_sessions import login_async, session_account
from monitor.store.family_staff import (
    allowance,
    approve_contact,
    approve_person,
    book_for_request,
    change_settings,
    contact_queue,
    decline_request,
    grant_extra_calls,
    people_queue,
    read_document,
    refuse_account,
    request_queue,
    verification_queue,
)
from monitor.store.prisons import DEFAULTS, prison

LONDON = ZoneInfo("Europe/London")


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


def starts(text: str) -> str:
    return f"^{re.escape(text)}"


MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY.timestamp())


@pytest.fixture
def store(store_at: str, clock: Clock) -> Iterator[Store]:
    with Store(store_at, clock=clock) as opened:
        yield opened


@pytest.fixture
def vault(store: Store) -> DocumentVault:
    return DocumentVault(store)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in the week of MONDAY (day 0), London."""
    return datetime(2030, 6, 3 + day, hour, minute, tzinfo=LONDON)


def test_the_migration_adds_the_tables_and_columns(store: Store) -> None:
    assert store.schema_version() == len(
        list((Path(monitor.store.__file__).parent / "migrations").glob("*.sql"))
    )
    tables = {
        r[0]
        for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            if store.engine == "sqlite"
            else "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert {"prisons", "family_accounts", "family_documents", "family_contacts", "allowance_grants"} <= tables
    prison_with_staff(store)
    roles = dict(store.db.execute("SELECT username, role FROM staff").fetchall())
    assert roles == {"officer": "staff", "governor": "governor"}
    assert store.db.execute("SELECT date_of_birth FROM prisoners").fetchone()[0] == PRISONER[2]


def test_a_prison_gets_the_default_settings_and_governors_change_them(store: Store) -> None:
    officer, governor = prison_with_staff(store)
    defaults = prison(store, PRISON)
    assert (defaults.mode, defaults.concurrent_calls, defaults.time_zone) == (
        "self_select",
        2,
        "Europe/London",
    )
    assert defaults.timetable == DEFAULTS.timetable and defaults.timetable.starts[5] == ()
    with pytest.raises(Refused, match="only a governor can do this"):
        change_settings(store, officer, mode="staff_booked")
    cases: list[tuple[dict[str, object], str]] = [
        ({"mode": "first_come"}, "mode 'first_come': must be self_select or staff_booked"),
        ({"concurrent_calls": 0}, "concurrent calls: must be a whole number from 1 to 50"),
        ({"time_zone": "Mars/Olympus"}, "time zone 'Mars/Olympus': not a known time zone"),
        ({"timetable": {"mon": ["9"]}}, "timetable: mon: '9' is not a time"),
        ({"cancel_cutoff_hours": 0.5}, "cancel cut-off: must be a number of hours from 1 to 336"),
        ({"colour": "red"}, "unknown setting; known: time_zone, mode"),
    ]
    for bad, message in cases:
        with pytest.raises(Refused, match=starts(message)):
            change_settings(store, governor, **bad)
    assert prison(store, PRISON) == defaults  # nothing changed
    changed = change_settings(store, governor, concurrent_calls=1, timetable={"tue": ["10:00"]})
    assert prison(store, PRISON) == changed and changed.concurrent_calls == 1
    assert AuditLog(store).since(PRISON, 0)[-1].kind == "prison_settings_changed"


async def test_register_confirm_and_log_in(store: Store) -> None:
    mailer = MemoryMailer()
    reg = register(
        store, "jane@example.org", auth.hash_password(PASSWORD), "Jane", "1985-04-01", "1 High St", mailer
    )
    assert reg.token is not None and mailer.messages == []  # the caller mails the link
    # the same address again: the owner is told, the answer has the same shape
    again = register(
        store, "jane@example.org", auth.hash_password("x" * 12), "Eve", "1990-01-01", "Elsewhere", mailer
    )
    assert again.token is None and mailer.kinds() == ["already_registered"]
    unconfirmed = await login_async(store, "jane@example.org", PASSWORD, "10.0.0.1")
    assert unconfirmed.unconfirmed and unconfirmed.token is None
    assert confirm_email(store, "not-a-token") == "invalid"
    assert confirm_email(store, reg.token) == "confirmed"
    assert confirm_email(store, reg.token) == "already"
    wrong = await login_async(store, "jane@example.org", "wrong password", "10.0.0.1")
    assert wrong.token is None and not wrong.unconfirmed
    ok = await login_async(store, "jane@example.org", PASSWORD, "10.0.0.1")
    assert ok.token is not None and session_account(store, ok.token) == reg.account_id
    for _ in range(auth.FREE_FAILURES + 1):
        await login_async(store, "jane@example.org", "wrong password", "10.0.0.2")
    limited = await login_async(store, "jane@example.org", PASSWORD, "10.0.0.2")
    assert limited.limited and limited.token is None  # that address must wait
    elsewhere = await login_async(store, "jane@example.org", PASSWORD, "10.0.0.3")
    assert elsewhere.token is not None  # nobody is locked out from elsewhere
    kinds = [r.kind for r in AuditLog(store).since("(families)", 0)]
    assert kinds == ["family_registered", "email_confirmed"]
    assert "Jane" not in json.dumps([r.data for r in AuditLog(store).since("(families)", 0)])


def test_documents_are_encrypted_at_rest_with_a_key_outside_the_database(
    store: Store, vault: DocumentVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = GRACE.read_bytes()
    vault.write("doc-0123456789ab", photo)
    sealed = (store.data_dir / "documents" / "doc-0123456789ab.bin").read_bytes()
    assert photo[100:132] not in sealed and len(sealed) == len(photo) + 12 + 16
    assert vault.read("doc-0123456789ab") == photo
    key_file = key_path(store)
    assert key_file.parent == store.path.parent and key_file.name == f"{store.path.stem}-documents.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # another key, or the file under another document's name, does not decrypt
    other = DocumentVault(store, os.urandom(32))
    with pytest.raises(StoreError, match="cannot be decrypted"):
        other.read("doc-0123456789ab")
    os.replace(vault.path("doc-0123456789ab"), vault.path("doc-ba9876543210"))
    with pytest.raises(StoreError, match="cannot be decrypted"):
        vault.read("doc-ba9876543210")
    with pytest.raises(StoreError, match="is not a document id"):
        vault.read("../monitor")
    key_file.chmod(0o644)
    with pytest.raises(StoreError, match="readable by its owner only"):
        load_key(store)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(b"k" * 32).decode())
    assert load_key(store) == b"k" * 32
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(StoreError, match="must be 32 random bytes in base64"):
        load_key(store)


def test_an_account_waits_for_everything_then_staff_of_its_prison_check_it(
    store: Store, vault: DocumentVault, clock: Clock
) -> None:
    officer, _ = prison_with_staff(store)
    stranger = auth.add_staff(store, "stranger", OTHER_PRISON, PASSWORD)
    mailer = MemoryMailer()
    reg = register(
        store, "jane@example.org", auth.hash_password(PASSWORD), "Jane", "1985-04-01", "1 High St", mailer
    )
    holder = people(store, reg.account_id)[0]
    child = add_person(store, reg.account_id, "Amy Smith", "2020-05-05", "1 High St")
    assert missing(store, reg.account_id) == [
        "a photo of your face",
        "a photo ID for you",
        "a proof of address (or tell us your ID shows your address)",
        "a photo of Amy Smith's face",
        "the person in prison you want to call",
    ]
    set_face(store, reg.account_id, holder.id, kept_photo(store, BIDEN))
    set_face(store, reg.account_id, child.id, kept_photo(store, CHILD))
    doc = id_document(store, vault, reg.account_id, holder.id, BIDEN)
    proof_of_address(store, vault, reg.account_id, holder.id)
    with pytest.raises(
        Refused, match=exactly("Amy Smith is under 18: children need a face photo, not an ID")
    ):
        id_document(store, vault, reg.account_id, child.id, GRACE)
    # wrong details of a real prisoner, or a made-up number: one answer, nothing added
    for name, number, dob in [
        ("John Smith", PRISONER[0], "1980-02-04"),
        ("Joe Smith", PRISONER[0], PRISONER[2]),
        ("John Smith", "Z9999ZZ", PRISONER[2]),
    ]:
        with pytest.raises(Refused, match=exactly(NO_MATCH)):
            add_contact(store, reg.account_id, name, number, dob)
    assert account(store, reg.account_id).status == "unverified"
    add_contact(store, reg.account_id, "  john   SMITH ", PRISONER[0].lower(), PRISONER[2])
    acc = account(store, reg.account_id)
    assert acc.status == "pending" and acc.submitted_at == pytest.approx(clock())
    assert verification_queue(store, stranger, CONFIG) == []
    with pytest.raises(Refused, match="no such document"):
        read_document(store, vault, stranger, doc)
    [item] = verification_queue(store, officer, CONFIG)
    assert item["seconds_left"] == pytest.approx(24 * 3600, abs=5)
    [me, amy] = item["people"]
    assert me["documents"][0]["face_distance"] == pytest.approx(0.0, abs=0.01)  # the same photo
    assert amy["adult"] is False and amy["face_photo"]
    head = AuditLog(store).head_id()
    assert read_document(store, vault, officer, doc) == ("image/jpeg", BIDEN.read_bytes())
    viewed = AuditLog(store).get(head + 1)
    assert viewed is not None and (viewed.kind, viewed.actor) == ("document_viewed", "staff:officer")
    assert viewed.data["sha256"] == me["documents"][0]["sha256"] and "Jane" not in json.dumps(viewed.data)
    refuse_account(store, officer, reg.account_id, "the ID photo is blurred", CONFIG, mailer)
    assert mailer.last("account_refused")["reason"] == "the ID photo is blurred"
    assert account(store, reg.account_id).refusal_reason == "the ID photo is blurred"
    # documents are deleted after the retention period from the decision
    clock.set(clock() + CONFIG.document_retention_days * 86400 - 60)
    assert purge_expired(store, vault) == 0
    clock.set(clock() + 120)
    assert purge_expired(store, vault) == 2
    assert not list((store.data_dir / "documents").glob("*.bin"))
    with pytest.raises(Refused, match="deleted after the retention period"):
        read_document(store, vault, officer, doc)


def test_a_person_added_after_verification_is_approved_on_their_own(
    store: Store, vault: DocumentVault
) -> None:
    officer, _ = prison_with_staff(store)
    mailer = MemoryMailer()
    account_id, _holder, _contact = verified_family(store, vault, officer, mailer)
    assert store.visitor_list(PRISONER[0]) == (people(store, account_id)[0].visitor_id,)
    assert contact_queue(store, officer) == []
    child = add_person(store, account_id, "Amy Smith", "2020-05-05", "1 High St")
    assert people_queue(store, officer) == []  # no face photo yet
    set_face(store, account_id, child.id, kept_photo(store, CHILD))
    [waiting] = people_queue(store, officer)
    assert [p["name"] for p in waiting["people"]] == ["Amy Smith"]
    approve_person(store, officer, child.id, CONFIG, mailer)
    assert len(store.visitor_list(PRISONER[0])) == 2
    assert mailer.last("person_approved")["person_name"] == "Amy Smith"


def test_booking_a_free_slot_the_allowance_and_a_governors_grant(
    store: Store, vault: DocumentVault, clock: Clock
) -> None:
    officer, governor = prison_with_staff(store)
    mailer = MemoryMailer()
    account_id, holder, contact = verified_family(store, vault, officer, mailer)
    found = slots(store, account_id, contact, CONFIG)
    begins = [s.starts_at for s in found.slots]
    assert begins[0] == at(0, 9) and begins[-1] < MONDAY + timedelta(days=7)
    assert all(s > MONDAY for s in begins)
    beyond = at(7, 9)  # next Monday 09:00 is 7 days and an hour away
    with pytest.raises(
        Refused, match=exactly("calls can be booked up to 7 days ahead; choose an earlier time")
    ):
        book(store, account_id, contact, beyond, [holder], holder, CONFIG, mailer, "http://x")
    with pytest.raises(Refused, match="has no call at Mon 3 Jun 09:15"):
        book(store, account_id, contact, at(0, 9, 15), [holder], holder, CONFIG, mailer, "http://x")
    call = book(
        store, account_id, contact, at(1, 14), [holder], holder, CONFIG, mailer, "http://calls.example"
    )
    booking = store.booking(call.call_id)
    assert booking is not None and booking.starts_iso == "2030-06-04T14:00:00+01:00"
    assert [v.main_caller for v in booking.visitors] == [True]
    sent = mailer.last("call_booked")
    assert sent["starts_at"] == "2030-06-04T14:00:00+01:00" and sent["time_zone"] == "Europe/London"
    assert sent["links"][0]["url"].startswith("http://calls.example/join/")
    token = sent["links"][0]["url"].rsplit("/", 1)[1]
    clock.set(at(1, 13, 50).timestamp())
    grant = store.join_token(token)
    assert grant is not None and grant.call_id == call.call_id
    clock.set(MONDAY.timestamp())
    # one free call a month: the second is refused until a governor grants one more
    with pytest.raises(
        Refused, match=starts("John Smith has no calls left in June 2030; a governor at the prison")
    ):
        book(store, account_id, contact, at(2, 9), [holder], holder, CONFIG, mailer, "http://x")
    assert allowance(store, officer, PRISONER[0], "2030-06", CONFIG).left == 0
    with pytest.raises(Refused, match="only a governor"):
        grant_extra_calls(store, officer, PRISONER[0], "2030-06", 1, "family bereavement")
    with pytest.raises(Refused, match="give a reason"):
        grant_extra_calls(store, governor, PRISONER[0], "2030-06", 1, "   ")
    grant_extra_calls(store, governor, PRISONER[0], "2030-06", 1, "family bereavement")
    assert allowance(store, officer, PRISONER[0], "2030-06", CONFIG).left == 1
    second = book(store, account_id, contact, at(2, 9), [holder], holder, CONFIG, mailer, "http://x")
    assert [c["call_id"] for c in upcoming(store, account_id, CONFIG)] == [call.call_id, second.call_id]
    # the same slot cannot be booked twice by the prisoner, whatever the places
    with pytest.raises(Refused, match="no longer free"):
        book(store, account_id, contact, at(2, 9), [holder], holder, CONFIG, mailer, "http://x")
    kinds = [r.kind for r in AuditLog(store).since(PRISON, 0)]
    assert kinds.count("call_booked") == 2 and "allowance_granted" in kinds


def test_a_main_caller_under_18_is_refused(store: Store, vault: DocumentVault) -> None:
    officer, _ = prison_with_staff(store)
    mailer = MemoryMailer()
    account_id, holder, contact = verified_family(store, vault, officer, mailer)
    teen = add_person(store, account_id, "Sam Smith", "2012-06-05", "1 High St")  # 17 on 4 June 2030
    set_face(store, account_id, teen.id, kept_photo(store, CHILD))
    approve_person(store, officer, teen.id, CONFIG, mailer)
    with pytest.raises(Refused, match=exactly("Sam Smith is 17: the main caller must be 18 or over")):
        book(store, account_id, contact, at(1, 14), [holder, teen.id], teen.id, CONFIG, mailer, "http://x")
    assert store.bookings_between(0, 3e9) == []
    call = book(store, account_id, contact, at(1, 14), [teen.id, holder], holder, CONFIG, mailer, "http://x")
    booking = store.booking(call.call_id)
    assert booking is not None and [v.main_caller for v in booking.visitors] == [True, False]


def test_two_families_racing_for_the_last_place_get_one_booking(
    tmp_path: Path, store: Store, vault: DocumentVault, clock: Clock
) -> None:
    officer, governor = prison_with_staff(store)
    mailer = MemoryMailer()
    change_settings(store, governor, concurrent_calls=1)
    store.add_prisoner(Prisoner("B7654CD", "Ann Lee", PRISON))
    set_prisoner_date_of_birth(store, "B7654CD", "1979-01-01")
    first = verified_family(store, vault, officer, mailer, "a@example.org")
    second_account = verified_family(store, vault, officer, mailer, "b@example.org", GRACE)
    # the second family calls the other prisoner: the prison's one place is what they race for
    contact_b = add_contact(store, second_account[0], "Ann Lee", "B7654CD", "1979-01-01")
    approve_contact(store, officer, contact_b.id, mailer)
    families = [(first[0], first[1], first[2]), (second_account[0], second_account[1], contact_b.id)]
    results: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def attempt(n: int) -> None:
        with Store(store.location, clock=clock) as own:  # its own connection, as another process has
            barrier.wait()
            account_id, holder, contact = families[n]
            try:
                results[n] = book(
                    own, account_id, contact, at(1, 14), [holder], holder, CONFIG, mailer, "http://x"
                )
            except Refused as exc:
                results[n] = exc

    threads = [threading.Thread(target=attempt, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(refused) == 1 and refused[0].code == "slot_taken", results
    assert len(store.bookings_between(0, 3e9, PRISON)) == 1


def test_cancel_up_to_the_cutoff_gives_the_call_back(
    store: Store, vault: DocumentVault, clock: Clock
) -> None:
    officer, _ = prison_with_staff(store)
    mailer = MemoryMailer()
    account_id, holder, contact = verified_family(store, vault, officer, mailer)
    call = book(store, account_id, contact, at(1, 14), [holder], holder, CONFIG, mailer, "http://x")
    clock.set(at(1, 12, 1).timestamp())  # the cut-off (2 hours) has passed
    with pytest.raises(
        Refused,
        match=exactly(
            "calls can be cancelled up to 2 hours before they start; this one starts at Tue 4 Jun 14:00"
        ),
    ):
        cancel(store, account_id, call.call_id, mailer)
    with pytest.raises(Refused, match="the link opens at Tue 4 Jun 13:45"):
        join_link(store, account_id, call.call_id, holder, CONFIG, "http://x")
    clock.set(at(1, 13, 45).timestamp())
    url = join_link(store, account_id, call.call_id, holder, CONFIG, "http://x")
    assert store.join_token(url.rsplit("/", 1)[1]) is not None
    clock.set(at(1, 11).timestamp())
    cancel(store, account_id, call.call_id, mailer)
    assert store.booking(call.call_id) is None and upcoming(store, account_id, CONFIG) == []
    assert mailer.last("call_cancelled")["by"] == "family"
    # the month's call is free again
    book(store, account_id, contact, at(2, 9), [holder], holder, CONFIG, mailer, "http://x")


def test_staff_booked_prison_request_flow(store: Store, vault: DocumentVault) -> None:
    officer, governor = prison_with_staff(store)
    mailer = MemoryMailer()
    account_id, holder, contact = verified_family(store, vault, officer, mailer)
    with pytest.raises(Refused, match=starts("HMP Example lets you choose a time")):
        request_call(store, account_id, contact, [holder], holder, [at(2, 10)], "", CONFIG)
    change_settings(store, governor, mode="staff_booked")
    with pytest.raises(Refused, match=starts("HMP Example books calls itself")):
        slots(store, account_id, contact, CONFIG)
    with pytest.raises(Refused, match="must be in the future"):
        request_call(store, account_id, contact, [holder], holder, [MONDAY - timedelta(hours=1)], "", CONFIG)
    request_id = request_call(
        store, account_id, contact, [holder], holder, [at(2, 10), at(3, 15)], "mornings", CONFIG
    )
    with pytest.raises(Refused, match="already have a request waiting"):
        request_call(store, account_id, contact, [holder], holder, [at(2, 10)], "", CONFIG)
    [item] = request_queue(store, officer)
    assert item["preferred"] == ["2030-06-05T10:00:00+01:00", "2030-06-06T15:00:00+01:00"]
    assert item["people"] == [{"id": holder, "name": "Jane Smith"}]
    booked = book_for_request(store, officer, request_id, at(2, 10, 15), CONFIG, mailer, "http://x")
    assert requests(store, account_id)[0]["status"] == "booked" and request_queue(store, officer) == []
    assert mailer.last("call_booked")["call_id"] == booked.call_id
    second = request_call(store, account_id, contact, [holder], holder, [at(4, 10)], "", CONFIG)
    decline_request(store, officer, second, "no calls on Fridays this month", mailer)
    assert mailer.last("request_declined")["reason"] == "no calls on Fridays this month"
    assert requests(store, account_id)[0]["status"] == "declined"


def test_now_is_monday_morning(clock: Clock) -> None:
    assert datetime.fromtimestamp(clock(), UTC).astimezone(LONDON).strftime("%a %H:%M") == "Mon 08:00"
