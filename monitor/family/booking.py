"""The family socket's call messages: free slots, booking, requests to staff-booked prisons,
withdrawing a request, cancelling, and a join link once the call opens.

The rules live in the store modules (``monitor.store.family_calls``, ``family_requests``), which
check them inside the write transaction; this module turns messages into their calls.
"""

from __future__ import annotations

from typing import Any

from monitor.family import api
from monitor.family.context import FamilyParts
from monitor.store import family_calls as calls
from monitor.store import family_requests
from monitor.store.family_contacts import contact
from monitor.store.prisons import prison


def slots(parts: FamilyParts, account_id: str, message: api.Slots) -> dict[str, Any]:
    return calls.slots(parts.store, account_id, message.contact, parts.config).public()


def book(parts: FamilyParts, account_id: str, message: api.Book) -> dict[str, Any]:
    booked = calls.book(
        parts.store,
        account_id,
        message.contact,
        message.starts_at,
        list(message.people),
        message.main,
        parts.config,
        parts.mailer,
        parts.base_url,
    )
    return {
        "call": {
            "call_id": booked.call_id,
            "starts_at": booked.starts_at.isoformat(),
            "ends_at": booked.ends_at.isoformat(),
        }
    }


def request_call(parts: FamilyParts, account_id: str, message: api.RequestCall) -> dict[str, Any]:
    tz = prison(parts.store, contact(parts.store, account_id, message.contact).prison).tz
    request_id = family_requests.request_call(
        parts.store,
        account_id,
        message.contact,
        list(message.people),
        message.main,
        [t.replace(tzinfo=tz) for t in message.preferred],
        message.note,
        parts.config,
    )
    return {"request": request_id}


def withdraw_request(parts: FamilyParts, account_id: str, message: api.WithdrawRequest) -> dict[str, Any]:
    family_requests.withdraw_request(parts.store, account_id, message.request)
    return {}


def cancel(parts: FamilyParts, account_id: str, message: api.Cancel) -> dict[str, Any]:
    calls.cancel(parts.store, account_id, message.call_id, parts.mailer)
    return {}


def join_link(parts: FamilyParts, account_id: str, message: api.JoinLink) -> dict[str, Any]:
    url = calls.join_link(
        parts.store, account_id, message.call_id, message.person, parts.config, parts.base_url
    )
    return {"url": url}
