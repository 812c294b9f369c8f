"""The staff side of families' calls, for the console: call requests, cancelling, the prisoner's
join link, prisoners' dates of birth, the prison's call settings, the monthly allowance and
governors' extra calls. Same rules as ``family_staff.py`` (which re-exports all of it): staff act
in their own prison only, governors alone change settings and grant calls, every decision audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.store.audit import AuditLog
from monitor.store.auth import Staff
from monitor.store.booking_rules import month_allowance
from monitor.store.database import Store, StoreError
from monitor.store.family_accounts import account, people
from monitor.store.family_calls import BookedCall, book_request, cancel
from monitor.store.family_common import Mailer, Refused
from monitor.store.family_contacts import contact_by_id
from monitor.store.family_contacts import set_prisoner_date_of_birth as store_date_of_birth
from monitor.store.family_requests import request_public
from monitor.store.family_roles import actor, reason_text, require_governor
from monitor.store.prisons import Prison, prison, save_prison, settings_from
from policies.config import PolicyConfig
from policies.family import Allowance

MAX_EXTRA_CALLS = 31


# -- call requests and calls -----------------------------------------------------------------------


def request_queue(store: Store, staff: Staff) -> list[dict[str, Any]]:
    """Open requests for calls with this prison's prisoners, oldest first, with the people's names."""
    rows = store.db.execute(
        "SELECT r.*, c.prisoner_id FROM call_requests r JOIN family_contacts c ON c.id = r.contact_id"
        " JOIN prisoners p ON p.id = c.prisoner_id WHERE r.status = 'open' AND p.prison = ?"
        " ORDER BY r.created_at, r.id",
        (staff.prison,),
    ).fetchall()
    queue = []
    for row in rows:
        names = {p.id: p.name for p in people(store, row["account_id"])}
        item = request_public(row)
        item["prisoner_id"] = row["prisoner_id"]
        item["account"] = row["account_id"]
        item["people"] = [{"id": p, "name": names.get(p, "")} for p in item["people"]]  # type: ignore[attr-defined]
        queue.append(item)
    return queue


def book_for_request(
    store: Store,
    staff: Staff,
    request_id: str,
    start: datetime,
    config: PolicyConfig,
    mailer: Mailer,
    base_url: str,
) -> BookedCall:
    """Book a time for an open request (the family is mailed the confirmation with join links)."""
    return book_request(store, request_id, start, staff.username, staff.prison, config, mailer, base_url)


def decline_request(store: Store, staff: Staff, request_id: str, reason: str, mailer: Mailer) -> None:
    reason = reason_text(reason)
    with store.transaction() as db:
        row = db.execute(
            "SELECT r.account_id, r.contact_id, r.status FROM call_requests r WHERE r.id = ?", (request_id,)
        ).fetchone()
        c = None if row is None else contact_by_id(store, row["contact_id"])
        if row is None or c is None or c.prison != staff.prison:
            raise Refused("not_found", "no such request")
        if row["status"] != "open":
            raise Refused("request_closed", f"this request is already {row['status']}")
        db.execute(
            "UPDATE call_requests SET status = 'declined', reason = ?, decided_by = ?, decided_at = ?"
            " WHERE id = ?",
            (reason, staff.username, store.clock(), request_id),
        )
        AuditLog(store).append(
            "request_declined",
            {"account": row["account_id"], "request": request_id},
            prison=staff.prison,
            actor=actor(staff),
        )
        acc = account(store, row["account_id"])
        mailer.send(
            "request_declined",
            acc.email,
            name=people(store, acc.id)[0].name,
            prisoner_name=c.prisoner_name,
            prison=c.prison,
            reason=reason,
        )


def cancel_call(store: Store, staff: Staff, call_id: str, mailer: Mailer) -> None:
    """Cancel a family's call of this prison before it starts (the family is mailed)."""
    cancel(store, "", call_id, mailer, staff=staff.username, prison_name=staff.prison)


def prisoner_link(store: Store, staff: Staff, call_id: str, config: PolicyConfig, base_url: str) -> str:
    """A new join link for the prisoner's side of a call of this prison (earlier ones stop working)."""
    booking = store.booking(call_id)
    if booking is None or booking.prison != staff.prison:
        raise Refused("not_found", "no such call")
    if booking.ends_at <= store.clock():
        raise Refused("call_over", "this call has ended")
    with store.transaction():
        opens = booking.starts_at - config.join_opens_minutes * 60.0
        token = store.issue_join_token(call_id, booking.prisoner_id, "prisoner", opens, booking.ends_at)
        AuditLog(store).append(
            "link_issued",
            {"participant": booking.prisoner_id, "role": "prisoner"},
            prison=staff.prison,
            call_id=call_id,
            actor=actor(staff),
        )
    return f"{base_url.rstrip('/')}/join/{token}"


# -- prisoners, settings and the allowance ---------------------------------------------------------


def set_prisoner_date_of_birth(store: Store, staff: Staff, prisoner_id: str, date_of_birth: str) -> None:
    """What families must give, with the name and number, to add this prisoner as a contact."""
    prisoner = store.prisoner(prisoner_id)
    if prisoner is None or prisoner.prison != staff.prison:
        raise Refused("not_found", "no such prisoner")
    with store.transaction():
        store_date_of_birth(store, prisoner_id, date_of_birth)
        AuditLog(store).append(
            "prisoner_updated",
            {"prisoner": prisoner_id, "field": "date_of_birth"},
            prison=staff.prison,
            actor=actor(staff),
        )


def prison_settings(store: Store, staff: Staff) -> Prison:
    return prison(store, staff.prison)


def change_settings(store: Store, staff: Staff, **changes: object) -> Prison:
    """Governors only: ``time_zone``, ``mode``, ``concurrent_calls``, ``timetable`` (JSON value),
    ``cancel_cutoff_hours``; each validated (Refused ``settings`` naming the problem)."""
    require_governor(store, staff)
    try:
        updated = settings_from(prison(store, staff.prison), **changes)
    except StoreError as exc:
        raise Refused("settings", str(exc)) from None
    except TypeError:
        known = "time_zone, mode, concurrent_calls, timetable, cancel_cutoff_hours"
        raise Refused("settings", f"unknown setting; known: {known}") from None
    with store.transaction():
        save_prison(store, updated)
        AuditLog(store).append(
            "prison_settings_changed", {"settings": sorted(changes)}, prison=staff.prison, actor=actor(staff)
        )
    return updated


def _month(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise Refused("month", "a month is YYYY-MM, e.g. 2026-06") from None
    return text


def allowance(store: Store, staff: Staff, prisoner_id: str, month: str, config: PolicyConfig) -> Allowance:
    """A prisoner of this prison's calls in a month (YYYY-MM, prison time)."""
    prisoner = store.prisoner(prisoner_id)
    if prisoner is None or prisoner.prison != staff.prison:
        raise Refused("not_found", "no such prisoner")
    first = datetime.strptime(_month(month), "%Y-%m").replace(tzinfo=prison(store, staff.prison).tz)
    return month_allowance(store, prisoner_id, staff.prison, first, config)


def prisoners(store: Store, staff: Staff, month: str, config: PolicyConfig) -> list[dict[str, Any]]:
    """This prison's prisoners with their calls in ``month`` (YYYY-MM, prison time), by name."""
    first = datetime.strptime(_month(month), "%Y-%m").replace(tzinfo=prison(store, staff.prison).tz)
    rows = store.db.execute(
        "SELECT id, name, date_of_birth FROM prisoners WHERE prison = ? ORDER BY name, id", (staff.prison,)
    ).fetchall()
    found = []
    for row in rows:
        a = month_allowance(store, row["id"], staff.prison, first, config)
        found.append(
            {
                "id": row["id"],
                "name": row["name"],
                "date_of_birth": row["date_of_birth"],
                "month": a.month,
                "free": a.free,
                "extra": a.extra,
                "used": a.used,
                "left": a.left,
            }
        )
    return found


def grant_extra_calls(
    store: Store, staff: Staff, prisoner_id: str, month: str, extra_calls: int, reason: str
) -> int:
    """Governors only: allow a prisoner ``extra_calls`` more calls in ``month``, for ``reason``
    (welfare, exceptional circumstances); returns the grant's id."""
    require_governor(store, staff)
    prisoner = store.prisoner(prisoner_id)
    if prisoner is None or prisoner.prison != staff.prison:
        raise Refused("not_found", "no such prisoner")
    if (
        not isinstance(extra_calls, int)
        or isinstance(extra_calls, bool)
        or not 1 <= extra_calls <= MAX_EXTRA_CALLS
    ):
        raise Refused("extra_calls", f"extra calls: a whole number from 1 to {MAX_EXTRA_CALLS}")
    reason = reason_text(reason)
    with store.transaction() as db:
        cursor = db.execute(
            "INSERT INTO allowance_grants (prisoner_id, month, extra_calls, reason, governor, at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (prisoner_id, _month(month), extra_calls, reason, staff.username, store.clock()),
        )
        grant_id = int(cursor.fetchone()[0])
        AuditLog(store).append(
            "allowance_granted",
            {"prisoner": prisoner_id, "month": month, "extra_calls": extra_calls},
            prison=staff.prison,
            actor=actor(staff),
        )
    return grant_id


def grants(store: Store, staff: Staff, month: str | None = None) -> list[dict[str, Any]]:
    """Extra calls granted to this prison's prisoners (of one month, or all), newest first."""
    sql = "SELECT g.* FROM allowance_grants g JOIN prisoners p ON p.id = g.prisoner_id WHERE p.prison = ?"
    params: tuple[object, ...] = (staff.prison,)
    if month is not None:
        sql += " AND g.month = ?"
        params += (_month(month),)
    rows = store.db.execute(sql + " ORDER BY g.at DESC, g.id DESC", params).fetchall()
    return [
        {
            "id": r["id"],
            "prisoner_id": r["prisoner_id"],
            "month": r["month"],
            "extra_calls": r["extra_calls"],
            "reason": r["reason"],
            "governor": r["governor"],
            "at": r["at"],
        }
        for r in rows
    ]
