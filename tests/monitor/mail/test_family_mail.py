"""The families' side's mailer (monitor/mail/family_mail.py) on a real store: every kind the family
modules send becomes a real message in the mail queue, inside the transaction that decides it;
a booked call queues its reminder, and cancelling it withdraws the reminder.

The clock is a Monday morning in London (2030-06-03 08:00 BST); face photos are real photos
enrolled with the real models (support/family_site.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.family_site import (
    BIDEN,
    CONFIG,
    PASSWORD,
    PRISON,
    Clock,
    MemoryMailer,
    prison_with_staff,
    verified_family,
)

from monitor.mail.family_mail import (
    LATE_REMINDER_BEFORE_S,
    MIN_GAP_S,
    REMINDER_BEFORE_S,
    FamilyMail,
    reminder_at,
)
from monitor.mail.messages import MailError
from monitor.store import auth, mail_queue
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_accounts import register
from monitor.store.family_calls import book, cancel
from monitor.store.family_common import NO_PRISON
from monitor.store.family_requests import request_call
from monitor.store.family_staff import change_settings, decline_request, refuse_account

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)
BASE = "https://calls.example.org"


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY.timestamp())


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s = Store(tmp_path / "monitor.db", clock=clock)
    yield s
    s.close()


@pytest.fixture
def mail(store: Store) -> FamilyMail:
    return FamilyMail(store, lambda: BASE, join_opens_minutes=CONFIG.join_opens_minutes)


def queued(store: Store) -> list[mail_queue.QueuedMail]:
    rows = store.db.execute("SELECT id FROM mail_queue ORDER BY id").fetchall()
    found = [mail_queue.get(store, r[0]) for r in rows]
    return [m for m in found if m is not None]


def at(day: int, hour: int) -> datetime:
    return datetime(2030, 6, 3 + day, hour, 0, tzinfo=LONDON)


LINK = {"name": "Jane Smith", "url": f"{BASE}/join/t0ken"}
KINDS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "confirm_email",
        {"name": "Jane", "link": f"{BASE}/family/confirm/abc"},
        "Confirm your email address",
        "/confirm/abc",
    ),
    ("already_registered", {"name": "Jane"}, "You already have an account", f"{BASE}/family"),
    ("account_verified", {"name": "Jane", "prison": PRISON}, "Your account is verified", f"{BASE}/family"),
    (
        "account_refused",
        {"name": "Jane", "reason": "the ID photo is blurred", "prison": PRISON},
        "We could not verify your account",
        "The reason: the ID photo is blurred",
    ),
    (
        "contact_approved",
        {"name": "Jane", "prisoner_name": "John Smith", "prison": PRISON},
        "You can now book calls with John Smith",
        "HMP Example has approved your calls with John Smith",
    ),
    (
        "contact_refused",
        {"name": "Jane", "prisoner_name": "John Smith", "prison": PRISON, "reason": "a court order"},
        "HMP Example did not approve your calls with John Smith",
        "The reason: a court order",
    ),
    (
        "person_approved",
        {"name": "Jane", "person_name": "Amy Smith", "prison": PRISON},
        "Amy Smith can now join your calls",
        "documents of Amy Smith",
    ),
    (
        "person_refused",
        {"name": "Jane", "person_name": "Amy Smith", "reason": "no photo ID", "prison": PRISON},
        "We could not approve Amy Smith",
        "The reason: no photo ID",
    ),
    (
        "request_declined",
        {"name": "Jane", "prisoner_name": "John Smith", "prison": PRISON, "reason": "no calls on Fridays"},
        "Your request for a call was declined",
        "The reason: no calls on Fridays",
    ),
    (
        "call_booked",
        {
            "name": "Jane",
            "prisoner_name": "John Smith",
            "prison": PRISON,
            "time_zone": "Europe/London",
            "starts_at": "2030-06-04T14:00:00+01:00",
            "ends_at": "2030-06-04T14:30:00+01:00",
            "cancel_until": "2030-06-04T12:00:00+01:00",
            "people": ["Jane Smith"],
            "links": [LINK],
            "call_id": "call-1",
        },
        "Your video call is booked",
        "When: Tuesday 4 June 2030, 14:00 to 14:30 (Europe/London time, BST).",
    ),
    (
        "call_cancelled",
        {
            "name": "Jane",
            "prisoner_name": "John Smith",
            "prison": PRISON,
            "time_zone": "Europe/London",
            "starts_at": "2030-06-04T14:00:00+01:00",
            "call_id": "call-1",
            "by": "staff",
        },
        "Your video call is cancelled",
        "The reason: the prison cancelled it",
    ),
]


@pytest.mark.parametrize(("kind", "fields", "subject", "words"), KINDS, ids=[k[0] for k in KINDS])
def test_every_kind_the_family_side_sends_is_queued_as_a_real_message(
    store: Store, mail: FamilyMail, kind: str, fields: dict[str, Any], subject: str, words: str
) -> None:
    mail.send(kind, "jane@example.org", **fields)
    first = queued(store)[0]
    assert (first.recipient, first.status, first.subject) == ("jane@example.org", "queued", subject)
    assert first.text.startswith("Dear Jane,") and words in first.text
    assert first.prison == fields.get("prison", NO_PRISON)


def test_a_booked_call_names_every_persons_link_and_the_cut_off(store: Store, mail: FamilyMail) -> None:
    fields = dict(KINDS[9][1])
    fields["links"] = [LINK, {"name": "Amy Smith", "url": f"{BASE}/join/amy"}]
    mail.send("call_booked", "jane@example.org", **fields)
    booked, reminder = queued(store)
    assert f"Join as Jane Smith:\n{BASE}/join/t0ken" in booked.text
    assert f"Join as Amy Smith:\n{BASE}/join/amy" in booked.text
    assert f'href="{BASE}/join/amy"' in booked.html
    assert "cancel the call on your account until Tuesday 4 June 2030, 12:00" in booked.text
    # the reminder, a day before, carries the same links; it is not sent once the call has started
    assert reminder.kind == "call_reminder" and reminder.subject.startswith("Reminder")
    assert reminder.next_attempt_at == at(1, 14).timestamp() - REMINDER_BEFORE_S
    assert reminder.not_after == at(1, 14).timestamp() and f"{BASE}/join/amy" in reminder.text


def test_when_the_reminder_goes() -> None:
    start = at(3, 14).timestamp()
    assert reminder_at(start, MONDAY.timestamp()) == start - REMINDER_BEFORE_S
    soon = MONDAY.timestamp() + 5 * 3600  # less than a day ahead: an hour before
    assert reminder_at(soon, MONDAY.timestamp()) == soon - LATE_REMINDER_BEFORE_S
    # so soon that a reminder would follow the confirmation within the hour: none
    assert (
        reminder_at(MONDAY.timestamp() + LATE_REMINDER_BEFORE_S + MIN_GAP_S - 1, MONDAY.timestamp()) is None
    )


@pytest.mark.parametrize(
    ("kind", "fields", "words"),
    [
        ("call_postponed", {"name": "Jane"}, "'call_postponed': not a kind of message this server sends"),
        (
            "account_refused",
            {"name": "Jane", "prison": PRISON},
            "account_refused: the field reason is missing",
        ),
        ("call_booked", {**KINDS[9][1], "links": []}, "call_booked: no join links"),
        ("call_booked", {**KINDS[9][1], "starts_at": "4 June"}, "starts_at '4 June': not an ISO time"),
        ("confirm_email", {"name": "Jane", "link": "javascript:alert(1)"}, "is not an http(s) link"),
    ],
)
def test_what_cannot_be_a_message_is_refused_and_nothing_is_queued(
    store: Store, mail: FamilyMail, kind: str, fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(MailError) as caught:
        mail.send(kind, "jane@example.org", **fields)
    assert words in str(caught.value)
    assert queued(store) == []


def test_messages_commit_with_their_decision_or_not_at_all(
    store: Store, mail: FamilyMail, clock: Clock
) -> None:
    officer, _ = prison_with_staff(store)
    vault = DocumentVault(store)
    account_id, holder, contact = verified_family(store, vault, officer, MemoryMailer())
    woken: list[str] = []
    mail.wake = lambda: woken.append("wake")
    call = book(store, account_id, contact, at(2, 14), [holder], holder, CONFIG, mail, BASE)
    booked, reminder = queued(store)
    assert booked.kind == "call_booked" and booked.call_id == call.call_id
    assert booked.text.startswith("Dear Jane Smith,") and booked.recipient == "jane@example.org"
    assert call.links[0]["url"] in booked.text and call.links[0]["url"].startswith(f"{BASE}/join/")
    assert reminder.kind == "call_reminder" and reminder.next_attempt_at == at(1, 14).timestamp()
    assert woken == ["wake"]  # once, after the commit
    cancel(store, account_id, call.call_id, mail)
    statuses = {m.kind: m.status for m in queued(store)}
    assert statuses == {"call_booked": "queued", "call_reminder": "withdrawn", "call_cancelled": "queued"}

    # a decision that is refused queues nothing: the request's decline fails (no such request)
    before = len(queued(store))
    with pytest.raises(Exception, match="no such request"):
        decline_request(store, officer, "req-000000000000", "no", mail)
    with pytest.raises(RuntimeError), store.transaction():
        mail.send("account_verified", "jane@example.org", name="Jane", prison=PRISON)
        raise RuntimeError("the deciding transaction fails after queueing")
    assert len(queued(store)) == before

    # registering an address again greets its holder, never the name a stranger typed
    register(
        store, "jane@example.org", auth.hash_password(PASSWORD), "Mallory http://x", "1990-01-01", "x", mail
    )
    again = queued(store)[-1]
    assert again.kind == "already_registered" and again.text.startswith("Dear Jane Smith,")
    assert "Mallory" not in again.text


def test_staff_decisions_queue_mail_for_their_prison(store: Store, mail: FamilyMail) -> None:
    officer, governor = prison_with_staff(store)
    vault = DocumentVault(store)
    account_id, holder, contact = verified_family(store, vault, officer, MemoryMailer(), photo=BIDEN)
    change_settings(store, governor, mode="staff_booked")
    request = request_call(store, account_id, contact, [holder], holder, [at(3, 10)], "", CONFIG)
    decline_request(store, officer, request, "no calls that week", mail)
    [declined] = queued(store)
    assert (declined.kind, declined.prison) == ("request_declined", PRISON)
    assert "The reason: no calls that week" in declined.text
    with pytest.raises(Exception, match="verified, not waiting"):
        refuse_account(store, officer, account_id, "x", CONFIG, mail)
    assert len(queued(store)) == 1
