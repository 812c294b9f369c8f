"""Families' calls: free slots, booking, cancelling, the calls to come and their join links, and
requests to prisons where staff book.

Theory of operation
-------------------
A call booked here is an ordinary ``bookings`` row: the same booking document, validated by the
same ``policies.booking.parse_booking`` (1-4 visitors, one main caller 18 or over, an allowed slot
length), the same join tokens (one per visitor, mailed as links), so the server loads and runs it
exactly like a call made with ``monitor book``. ``family_bookings`` records which account booked it.

Everything a booking depends on is checked inside the one write transaction that inserts it
(``BEGIN IMMEDIATE``: SQLite lets one writer in at a time, whichever process it is in): the free
slots are computed again there from the bookings as they are then, so two families asking for the
last place of a slot at the same moment get one booking and one "no longer free", never two.

Cancelling is allowed until the prison's cut-off (at least an hour, so before the server loads the
call); the ``bookings`` row and its tokens are deleted, which frees the slot and the month's call,
and ``family_bookings`` keeps that it was cancelled. A family's join link is issued when asked for
once the call opens (``join_opens_minutes`` before the start): only token hashes are stored, so the
page cannot show the mailed link again, and a fresh token does not void the mailed one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.store.audit import AuditLog
from monitor.store.booking_rules import booking_row, month_allowance
from monitor.store.database import Store
from monitor.store.family_accounts import Person, account, people
from monitor.store.family_common import Mailer, Refused, new_id
from monitor.store.family_contacts import Contact, callers, contact
from monitor.store.prisons import Prison, prison
from policies.booking import BookingError, parse_booking
from policies.config import PolicyConfig
from policies.family import Allowance, cancel_deadline, join_opens, may_cancel, may_join
from policies.slots import SLOT_MINUTES, Slot, free_slots

MAX_PREFERRED = 3
MAX_NOTE = 500


def _when(moment: datetime) -> str:
    """Plain words for a time, e.g. ``Tue 3 Nov 14:00``."""
    return f"{moment:%a} {moment.day} {moment:%b %H:%M}"


def usable_contact(store: Store, account_id: str, contact_id: str) -> tuple[Contact, Prison]:
    if account(store, account_id).status != "verified":
        raise Refused("not_verified", "your account has not been verified yet")
    c = contact(store, account_id, contact_id)
    if c.status != "approved":
        raise Refused(
            "contact_not_approved", f"the prison has not approved your calls with {c.prisoner_name} yet"
        )
    return c, prison(store, c.prison)


# -- free slots ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slots:
    prison: Prison
    slots: list[Slot]
    allowances: dict[str, Allowance]  # YYYY-MM -> the prisoner's calls that month

    def public(self) -> dict[str, object]:
        return {
            "prison": self.prison.name,
            "time_zone": self.prison.time_zone,
            "slots": [
                {
                    "starts_at": s.starts_at.isoformat(),
                    "ends_at": s.ends_at.isoformat(),
                    "calls_left": self.allowances[f"{s.starts_at:%Y-%m}"].left,
                }
                for s in self.slots
            ],
            "months": {
                m: {"left": a.left, "free": a.free, "extra": a.extra} for m, a in self.allowances.items()
            },
        }


def _free(store: Store, c: Contact, p: Prison, config: PolicyConfig) -> list[Slot]:
    now = datetime.fromtimestamp(store.clock(), UTC)
    end = now + timedelta(days=config.booking_window_days)
    rows = store.bookings_between(now.timestamp(), end.timestamp() + SLOT_MINUTES * 60, p.name)
    utc = [
        (datetime.fromtimestamp(r.starts_at, UTC), datetime.fromtimestamp(r.ends_at, UTC), r) for r in rows
    ]
    booked = [(a, b) for a, b, _ in utc]
    own = [(a, b) for a, b, r in utc if r.prisoner_id == c.prisoner_id]
    return free_slots(p.timetable, p.tz, now, config.booking_window_days, booked, p.concurrent_calls, own)


def slots(store: Store, account_id: str, contact_id: str, config: PolicyConfig) -> Slots:
    """The free slots of the next ``booking_window_days`` for a call with this contact."""
    c, p = usable_contact(store, account_id, contact_id)
    if p.mode != "self_select":
        raise Refused(
            "staff_booked", f"{p.name} books calls itself: send a request with the times that suit you"
        )
    found = _free(store, c, p, config)
    months = {f"{s.starts_at:%Y-%m}": s.starts_at for s in found}
    now = datetime.fromtimestamp(store.clock(), UTC).astimezone(p.tz)
    months.setdefault(f"{now:%Y-%m}", now)
    allowances = {m: month_allowance(store, c.prisoner_id, p.name, t, config) for m, t in months.items()}
    return Slots(p, found, allowances)


# -- booking ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookedCall:
    call_id: str
    starts_at: datetime  # prison time
    ends_at: datetime
    links: list[dict[str, str]]  # [{"person", "name", "url"}]


def _document(
    store: Store, c: Contact, call_id: str, start: datetime, chosen: list[Person]
) -> dict[str, object]:
    prisoner = store.prisoner(c.prisoner_id)
    assert prisoner is not None  # a contact's prisoner exists (foreign key)
    participants = []
    for n, p in enumerate(chosen):
        visitor = store.visitor(p.visitor_id or "")
        assert visitor is not None
        participants.append(
            {
                "id": visitor.id,
                "name": visitor.name,
                "date_of_birth": visitor.date_of_birth,
                "main_caller": n == 0,
                "reference_photos": [ph.path for ph in visitor.photos],
            }
        )
    return {
        "call_id": call_id,
        "prison": prisoner.prison,
        "prisoner": {
            "id": prisoner.id,
            "name": prisoner.name,
            "reference_photos": [ph.path for ph in store.prisoner_photos(prisoner.id)],
        },
        "starts_at": start.isoformat(),
        "ends_at": (start.astimezone(UTC) + timedelta(minutes=SLOT_MINUTES))
        .astimezone(start.tzinfo)
        .isoformat(),
        "participants": participants,
    }


def _slot_refusal(store: Store, c: Contact, p: Prison, start: datetime, config: PolicyConfig) -> Refused:
    """Why ``start`` is not a free slot, in plain words."""
    now = datetime.fromtimestamp(store.clock(), UTC)
    if start <= now:
        return Refused("slot_passed", "that time has passed; choose another")
    if start >= now + timedelta(days=config.booking_window_days):
        return Refused(
            "outside_window",
            f"calls can be booked up to {config.booking_window_days} days ahead; choose an earlier time",
        )
    local = start.astimezone(p.tz)
    if local.time() not in p.timetable.starts[local.weekday()]:
        return Refused("not_a_slot", f"{p.name} has no call at {_when(local)}; choose a time from the list")
    return Refused("slot_taken", "that time is no longer free; choose another")


def _insert(
    store: Store,
    account_id: str,
    c: Contact,
    start: datetime,
    chosen: list[Person],
    config: PolicyConfig,
    mailer: Mailer,
    base_url: str,
    actor: str,
    request_id: str | None = None,
) -> BookedCall:
    """Allowance, booking rules, the row, tokens, audit and mail (inside the caller's transaction)."""
    allowance = month_allowance(store, c.prisoner_id, c.prison, start, config)
    if allowance.left == 0:
        raise Refused(
            "allowance_used",
            f"{c.prisoner_name} has no calls left in {start:%B %Y}; a governor at the prison can allow more",
        )
    call_id = new_id("call")
    document = _document(store, c, call_id, start, chosen)
    try:
        booking = parse_booking(document, store.data_dir, config)
    except BookingError as exc:  # the checks above cover the rules; this names any other plainly
        raise Refused("booking_rule", f"this call cannot be booked: {exc}") from None
    store.add_booking(booking_row(booking, document))
    now = store.clock()
    store.db.execute(
        "INSERT INTO family_bookings (call_id, account_id, contact_id, starts_at, ends_at, request_id,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            call_id,
            account_id,
            c.id,
            booking.starts_at.timestamp(),
            booking.ends_at.timestamp(),
            request_id,
            now,
        ),
    )
    opens = join_opens(booking.starts_at, config.join_opens_minutes).timestamp()
    links = []
    for p in chosen:
        token = store.issue_join_token(
            call_id, p.visitor_id or "", "visitor", opens, booking.ends_at.timestamp()
        )
        links.append({"person": p.id, "name": p.name, "url": f"{base_url.rstrip('/')}/join/{token}"})
    AuditLog(store).append(
        "call_booked",
        {
            "account": account_id,
            "contact": c.id,
            "visitors": list(booking.visitor_ids),
            "request": request_id,
        },
        prison=c.prison,
        call_id=call_id,
        actor=actor,
    )
    here = prison(store, c.prison)
    local = booking.starts_at.astimezone(here.tz)
    mailer.send(
        "call_booked",
        account(store, account_id).email,
        name=people(store, account_id)[0].name,  # the holder's address, so the holder's name
        prisoner_name=c.prisoner_name,
        prison=c.prison,
        time_zone=here.time_zone,
        starts_at=local.isoformat(),
        ends_at=booking.ends_at.astimezone(here.tz).isoformat(),
        cancel_until=cancel_deadline(local, here.cancel_cutoff_hours).isoformat(),
        people=[x.name for x in chosen],
        links=[{"name": x["name"], "url": x["url"]} for x in links],
        call_id=call_id,
    )
    return BookedCall(call_id, local, booking.ends_at.astimezone(here.tz), links)


def book(
    store: Store,
    account_id: str,
    contact_id: str,
    start: datetime,
    person_ids: list[str],
    main_id: str,
    config: PolicyConfig,
    mailer: Mailer,
    base_url: str,
) -> BookedCall:
    """A family books a free slot (self-select prisons), all checked in one write transaction."""
    with store.transaction():
        c, p = usable_contact(store, account_id, contact_id)
        if p.mode != "self_select":
            raise Refused(
                "staff_booked", f"{p.name} books calls itself: send a request with the times that suit you"
            )
        if not any(s.starts_at == start for s in _free(store, c, p, config)):
            raise _slot_refusal(store, c, p, start, config)
        chosen = callers(
            store, account_id, c.prisoner_id, person_ids, main_id, start.astimezone(p.tz).date(), config
        )
        return _insert(
            store, account_id, c, start.astimezone(p.tz), chosen, config, mailer, base_url, "family"
        )


def book_request(
    store: Store,
    request_id: str,
    start: datetime,
    staff: str,
    prison_name: str,
    config: PolicyConfig,
    mailer: Mailer,
    base_url: str,
) -> BookedCall:
    """Staff book a time for a family's request: any future time the prison has room for (its
    concurrent calls, the prisoner free), within the allowance; the request is then ``booked``."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT r.*, p.prison FROM call_requests r JOIN family_contacts c ON c.id = r.contact_id"
            " JOIN prisoners p ON p.id = c.prisoner_id WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        if row is None or row["prison"] != prison_name:
            raise Refused("no_request", "no such request")
        if row["status"] != "open":
            raise Refused("request_closed", f"this request is already {row['status']}")
        c = contact(store, row["account_id"], row["contact_id"])
        p = prison(store, c.prison)
        now = datetime.fromtimestamp(store.clock(), UTC)
        if start <= now:
            raise Refused("slot_passed", "that time has passed; choose another")
        end = start + timedelta(minutes=SLOT_MINUTES)
        running = store.bookings_between(start.timestamp(), end.timestamp(), p.name)
        if len(running) >= p.concurrent_calls:
            raise Refused("slot_taken", f"{p.name} already has {len(running)} calls at that time")
        if store.overlapping(c.prisoner_id, start.timestamp(), end.timestamp()) is not None:
            raise Refused("slot_taken", f"{c.prisoner_name} already has a call at that time")
        chosen_ids = json.loads(row["people"])
        chosen = callers(
            store,
            row["account_id"],
            c.prisoner_id,
            chosen_ids,
            chosen_ids[0],
            start.astimezone(p.tz).date(),
            config,
        )
        local = start.astimezone(p.tz)
        booked = _insert(
            store, row["account_id"], c, local, chosen, config, mailer, base_url, f"staff:{staff}", request_id
        )
        db.execute(
            "UPDATE call_requests SET status = 'booked', call_id = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ?",
            (booked.call_id, staff, store.clock(), request_id),
        )
    return booked


# -- cancelling, the calls to come, join links -----------------------------------------------------


def cancel(
    store: Store,
    account_id: str,
    call_id: str,
    mailer: Mailer,
    *,
    staff: str | None = None,
    prison_name: str = "",
) -> None:
    """Cancel a booked call: the family until the prison's cut-off; staff of its prison any time
    before it starts."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT * FROM family_bookings WHERE call_id = ? AND cancelled_at IS NULL", (call_id,)
        ).fetchone()
        if row is None or (staff is None and row["account_id"] != account_id):
            raise Refused("no_call", "no such call")
        c = contact(store, row["account_id"], row["contact_id"])
        if staff is not None and c.prison != prison_name:
            raise Refused("no_call", "no such call")
        p = prison(store, c.prison)
        start = datetime.fromtimestamp(row["starts_at"], UTC).astimezone(p.tz)
        now = datetime.fromtimestamp(store.clock(), UTC)
        if staff is None and not may_cancel(start, now, p.cancel_cutoff_hours):
            raise Refused(
                "too_late",
                f"calls can be cancelled up to {p.cancel_cutoff_hours:g} hours before they start; "
                f"this one starts at {_when(start)}",
            )
        if staff is not None and start <= now:
            raise Refused("too_late", "this call has already started")
        for table in ("join_tokens", "calls", "booking_visitors", "bookings"):
            db.execute(f"DELETE FROM {table} WHERE call_id = ?", (call_id,))
        by = "family" if staff is None else f"staff:{staff}"
        db.execute(
            "UPDATE family_bookings SET cancelled_at = ?, cancelled_by = ? WHERE call_id = ?",
            (store.clock(), by, call_id),
        )
        AuditLog(store).append(
            "call_cancelled", {"account": row["account_id"]}, prison=c.prison, call_id=call_id, actor=by
        )
        holder = people(store, row["account_id"])[0]
        mailer.send(
            "call_cancelled",
            account(store, row["account_id"]).email,
            name=holder.name,
            prisoner_name=c.prisoner_name,
            prison=c.prison,
            time_zone=p.time_zone,
            starts_at=start.isoformat(),
            call_id=call_id,
            by="family" if staff is None else "staff",
        )


def upcoming(store: Store, account_id: str, config: PolicyConfig) -> list[dict[str, object]]:
    """The account's calls that have not ended, soonest first, with what the page needs."""
    now_ts = store.clock()
    now = datetime.fromtimestamp(now_ts, UTC)
    rows = store.db.execute(
        "SELECT * FROM family_bookings WHERE account_id = ? AND cancelled_at IS NULL AND ends_at > ?"
        " ORDER BY starts_at, call_id",
        (account_id, now_ts),
    ).fetchall()
    found = []
    everyone = {p.visitor_id: p for p in people(store, account_id) if p.visitor_id}
    for row in rows:
        booking = store.booking(row["call_id"])
        if booking is None:
            continue
        c = contact(store, account_id, row["contact_id"])
        p = prison(store, c.prison)
        start = datetime.fromtimestamp(booking.starts_at, UTC).astimezone(p.tz)
        end = datetime.fromtimestamp(booking.ends_at, UTC).astimezone(p.tz)
        found.append(
            {
                "call_id": booking.call_id,
                "prisoner_name": c.prisoner_name,
                "prison": c.prison,
                "time_zone": p.time_zone,
                "starts_at": start.isoformat(),
                "ends_at": end.isoformat(),
                "people": [
                    {
                        "id": everyone[v.visitor_id].id,
                        "name": everyone[v.visitor_id].name,
                        "main": v.main_caller,
                    }
                    for v in booking.visitors
                    if v.visitor_id in everyone
                ],
                "cancel_until": cancel_deadline(start, p.cancel_cutoff_hours).isoformat(),
                "can_cancel": may_cancel(start, now, p.cancel_cutoff_hours),
                "join_opens_at": join_opens(start, config.join_opens_minutes).isoformat(),
                "can_join": may_join(start, end, now, config.join_opens_minutes),
            }
        )
    return found


def join_link(
    store: Store, account_id: str, call_id: str, person_id: str, config: PolicyConfig, base_url: str
) -> str:
    """A join link for one person of the account on one of its calls, once the call opens."""
    with store.transaction():
        row = store.db.execute(
            "SELECT * FROM family_bookings WHERE call_id = ? AND account_id = ? AND cancelled_at IS NULL",
            (call_id, account_id),
        ).fetchone()
        booking = store.booking(call_id) if row is not None else None
        if row is None or booking is None:
            raise Refused("no_call", "no such call")
        visitor = next((p.visitor_id for p in people(store, account_id) if p.id == person_id), None)
        if visitor is None or visitor not in {v.visitor_id for v in booking.visitors}:
            raise Refused("not_on_call", "that person is not on this call")
        p = prison(store, booking.prison)
        start = datetime.fromtimestamp(booking.starts_at, UTC).astimezone(p.tz)
        end = datetime.fromtimestamp(booking.ends_at, UTC)
        now = datetime.fromtimestamp(store.clock(), UTC)
        if now >= end:
            raise Refused("call_over", "this call has ended")
        if not may_join(start, end, now, config.join_opens_minutes):
            opens = join_opens(start, config.join_opens_minutes)
            raise Refused("not_yet", f"the link opens at {_when(opens)} ({p.time_zone} time)")
        token = store.issue_join_token(
            call_id,
            visitor,
            "visitor",
            start.timestamp() - config.join_opens_minutes * 60,
            end.timestamp(),
            revoke_earlier=False,
        )
        AuditLog(store).append(
            "link_issued",
            {"participant": visitor, "role": "visitor"},
            prison=p.name,
            call_id=call_id,
            actor="family",
        )
    return f"{base_url.rstrip('/')}/join/{token}"
