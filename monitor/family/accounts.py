"""The family socket's account messages: registering, the status the pages show, adding people,
and "my ID shows my address". Each returns the fields of its ``ok`` answer or raises ``Refused``
(or ``MessageError``) with the plain words the page shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from monitor.family import api
from monitor.family.context import FamilyParts
from monitor.store import auth
from monitor.store import family_accounts as accounts
from monitor.store import family_sessions as sessions
from monitor.store.family_calls import upcoming
from monitor.store.family_common import Refused
from monitor.store.family_contacts import contacts
from monitor.store.family_requests import requests
from policies.family import age_on


def _born(day: date, today: date) -> str:
    if day > today:
        raise api.MessageError("date of birth: this date is in the future")
    return day.isoformat()


async def register(parts: FamilyParts, message: api.Register, address: str) -> dict[str, Any]:
    store = parts.store
    today = accounts.today(store)
    born = _born(message.date_of_birth, today)
    adult = parts.config.main_caller_min_age
    if age_on(message.date_of_birth, today) < adult:
        raise Refused("too_young", f"you must be {adult} or over to open an account")
    if sessions.registrations_limited(store, address):
        raise Refused("too_many", "too many accounts were opened from here in the last hour; try again later")
    hashed = await asyncio.to_thread(auth.hash_password, message.password)
    accounts.register(
        store,
        message.email,
        hashed,
        message.name,
        born,
        message.address,
        parts.mailer,
        lambda token: parts.link(f"/family/confirm/{token}"),
    )
    sessions.count_registration(store, address)
    # the same answer whether or not the address was registered before (the owner is told by mail)
    return {"sent_to": message.email}


def status(parts: FamilyParts, account_id: str) -> dict[str, Any]:
    store, config = parts.store, parts.config
    acc = accounts.account(store, account_id)
    today = accounts.today(store)
    due = None if acc.submitted_at is None else acc.submitted_at + config.verification_hours * 3600.0
    return {
        "account": {
            "email": acc.email,
            "status": acc.status,
            "refusal_reason": acc.refusal_reason,
            "id_shows_address": acc.id_shows_address,
            "submitted_at": acc.submitted_at,
            "due_at": due,
            "verification_hours": config.verification_hours,
        },
        "missing": accounts.missing(store, account_id),
        "people": [
            {
                "id": p.id,
                "name": p.name,
                "date_of_birth": p.date_of_birth,
                "address": p.address,
                "holder": p.holder,
                "adult": p.adult(today),
                "status": p.status,
                "reason": p.reason,
                "face_photo": p.visitor_id is not None,
                "documents": list(p.documents),
            }
            for p in accounts.people(store, account_id)
        ],
        "contacts": [c.public() for c in contacts(store, account_id)],
        "calls": upcoming(store, account_id, config),
        "requests": requests(store, account_id),
        "max_visitors": config.max_visitors,
        "main_caller_min_age": config.main_caller_min_age,
        "now": datetime.fromtimestamp(store.clock(), UTC).isoformat(),
    }


def add_person(parts: FamilyParts, account_id: str, message: api.AddPerson) -> dict[str, Any]:
    born = _born(message.date_of_birth, accounts.today(parts.store))
    person = accounts.add_person(parts.store, account_id, message.name, born, message.address)
    return {"person": person.id}


def id_shows_address(parts: FamilyParts, account_id: str, message: api.IdShowsAddress) -> dict[str, Any]:
    accounts.set_id_shows_address(parts.store, account_id, message.value)
    return {}
