"""The family socket's ``add_contact``: a prisoner added by name, prison number and date of birth.

All three must match the store; a mismatch of any of them, and a number nobody has, get the same
answer, "we could not match these details", and nothing else
(``monitor.store.family_contacts``)."""

from __future__ import annotations

from typing import Any

from monitor.family import api
from monitor.family.context import FamilyParts
from monitor.store.family_contacts import add_contact as store_add_contact


def add_contact(parts: FamilyParts, account_id: str, message: api.AddContact) -> dict[str, Any]:
    found = store_add_contact(
        parts.store, account_id, message.name, message.prison_number, message.date_of_birth.isoformat()
    )
    return {"contact": found.public()}
