"""The durable queue (monitor/store/mail_queue.py through queue_mail) on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from mail_parts import Clock, open_store

from monitor.mail import AccountVerified, CallReminder, MailError, queue_mail, withdraw_mail
from monitor.store import mail_queue
from monitor.store.database import Store

LINK = "https://calls.example.org/family"


def reminder(call_id: str = "c1") -> CallReminder:
    start = 1_800_100_000.0
    return CallReminder(
        "Ann",
        "John Smith",
        "HMP Example",
        "Europe/London",
        start,
        start + 1800,
        f"{LINK}/j/{call_id}",
        call_id,
    )


def test_a_queued_message_is_in_the_store_after_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    with open_store(tmp_path, clock) as store:
        first = queue_mail(store, "ann@example.org", AccountVerified("Ann", LINK), prison="HMP Example")
        second = queue_mail(store, "bob@example.org", reminder(), send_at=clock.t + 3600)
    with open_store(tmp_path, clock) as store:
        row = mail_queue.get(store, first)
        assert row is not None and row.status == "queued" and row.recipient == "ann@example.org"
        assert row.subject == "Your account is verified" and LINK in row.text and LINK in row.html
        assert row.prison == "HMP Example" and row.call_id is None and row.attempts == 0
        later = mail_queue.get(store, second)
        assert later is not None and later.prison == "HMP Example" and later.call_id == "c1"
        assert later.message_token != row.message_token
        # the reminder waits for its time
        assert [m.id for m in mail_queue.due(store, clock.t, 10)] == [first]
        assert [m.id for m in mail_queue.due(store, clock.t + 3600, 10)] == [first, second]
        assert mail_queue.next_due_at(store) == clock.t


def test_queueing_commits_with_the_callers_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        queue_mail(store, "ann@example.org", AccountVerified("Ann", LINK), prison="HMP Example")
        raise RuntimeError("the booking failed")
    assert mail_queue.counts(store)["queued"] == 0
    with store.transaction():
        queue_mail(store, "ann@example.org", AccountVerified("Ann", LINK), prison="HMP Example")
    assert mail_queue.counts(store)["queued"] == 1


def test_bad_input_queues_nothing(store: Store) -> None:
    with pytest.raises(MailError, match="not an email address"):
        queue_mail(
            store, "ann@example.org\nBcc: eve@example.org", AccountVerified("Ann", LINK), prison="HMP X"
        )
    with pytest.raises(MailError, match=r"account_verified: say which prison"):
        queue_mail(store, "ann@example.org", AccountVerified("Ann", LINK))
    assert mail_queue.counts(store) == {"queued": 0, "sent": 0, "failed": 0, "withdrawn": 0}


def test_outcomes_and_what_is_kept(store: Store) -> None:
    sent = queue_mail(store, "ann@example.org", reminder("c1"))
    retried = queue_mail(store, "bob@example.org", reminder("c2"))
    failed = queue_mail(store, "cat@example.org", reminder("c3"))
    mail_queue.mark_sent(store, sent)
    mail_queue.mark_retry(store, retried, "451 try later", store.clock() + 60)
    mail_queue.mark_failed(store, failed, "550 no")
    row = mail_queue.get(store, sent)
    assert row is not None and row.status == "sent" and row.text == "" and row.html == ""  # links gone
    assert row.done_at is not None and row.attempts == 1
    row = mail_queue.get(store, retried)
    assert (
        row is not None and row.status == "queued" and row.attempts == 1 and row.last_error == "451 try later"
    )
    assert row.text  # still to be sent
    row = mail_queue.get(store, failed)
    assert row is not None and row.status == "failed" and row.text and row.last_error == "550 no"
    assert mail_queue.counts(store) == {"queued": 1, "sent": 1, "failed": 1, "withdrawn": 0}
    # a failed message keeps its body, so it can be queued again once the mail server is fixed
    assert mail_queue.requeue_failed(store) == 1
    row = mail_queue.get(store, failed)
    assert row is not None and row.status == "queued" and row.attempts == 0


def test_a_cancelled_calls_reminder_is_withdrawn(store: Store) -> None:
    kept = queue_mail(store, "ann@example.org", reminder("c1"))
    taken = queue_mail(store, "ann@example.org", reminder("c2"), send_at=store.clock() + 86400)
    assert withdraw_mail(store, "c2") == 1
    assert withdraw_mail(store, "c2") == 0
    assert withdraw_mail(store, "c1", kinds=()) == 0
    row = mail_queue.get(store, taken)
    assert row is not None and row.status == "withdrawn" and row.text == ""
    assert [m.id for m in mail_queue.due(store, store.clock() + 90000, 10)] == [kept]
