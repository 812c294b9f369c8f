"""Bookings that reach the store without `monitor book`, and reading booked calls back for `monitor serve`.

``import_booking`` puts a booking validated elsewhere (a ``--booking`` file, the demo call) into the
store; ``stored_booking`` turns a stored booking back into the policy core's ``Booking``;
``current_demo_call`` finds the demo call that `make run` started earlier and may reuse.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from monitor.admin.common import booking_row
from monitor.errors import UserError
from monitor.store.database import Photo, Prisoner, Store, Visitor
from policies.booking import Booking, parse_booking
from policies.config import PolicyConfig


def document_of(booking: Booking) -> dict[str, Any]:
    """The booking JSON (policies.booking format) of a validated booking. Photo paths are relative
    to the data directory when the photos were copied there, else absolute."""
    return {
        "call_id": booking.call_id,
        "prison": booking.prison,
        "prisoner": {
            "id": booking.prisoner.id,
            "name": booking.prisoner.name,
            "reference_photos": [str(p.resolve()) for p in booking.prisoner.reference_photos],
        },
        "starts_at": booking.starts_at.isoformat(),
        "ends_at": booking.ends_at.isoformat(),
        "participants": [
            {
                "id": v.id,
                "name": v.name,
                "date_of_birth": v.date_of_birth.isoformat(),
                "main_caller": v.main_caller,
                "reference_photos": [str(p.resolve()) for p in v.reference_photos],
            }
            for v in booking.participants
        ],
    }


def _unenrolled(paths: tuple[Path, ...]) -> tuple[Photo, ...]:
    # empty embedding: the photo was not enrolled through the store (the live analysis enrols it)
    return tuple(Photo(str(p.resolve()), hashlib.sha256(p.read_bytes()).hexdigest(), b"") for p in paths)


def import_booking(store: Store, booking: Booking) -> bool:
    """Put a booking validated elsewhere (a booking file, the demo call) into the store, with its
    prisoner and visitors if they are new, so the console shows it. False when it is already there.
    The store-only rules of `monitor book` (visitor list, overlap, allowance) are not applied."""
    if store.booking(booking.call_id) is not None:
        return False
    where = f"booking {booking.call_id}"
    with store.transaction():
        prisoner = Prisoner(booking.prisoner.id, booking.prisoner.name, booking.prison)
        known = store.prisoner(prisoner.id)
        if known is None:
            store.add_prisoner(prisoner, _unenrolled(booking.prisoner.reference_photos))
        elif known != prisoner:
            raise UserError(f"{where}: prisoner {prisoner.id} is {known.name} at {known.prison} in the store")
        for v in booking.participants:
            visitor = store.visitor(v.id)
            if visitor is None:
                visitor = Visitor(v.id, v.name, v.date_of_birth.isoformat(), _unenrolled(v.reference_photos))
                store.add_visitor(visitor, booking.prisoner.id)
            elif (visitor.name, visitor.date_of_birth) != (v.name, v.date_of_birth.isoformat()):
                raise UserError(f"{where}: visitor {v.id} is {visitor.name} in the store, not {v.name}")
            else:
                store.approve_visitor(booking.prisoner.id, v.id)
        store.add_booking(booking_row(booking, document_of(booking)))
    return True


def current_demo_call(store: Store, now: float, min_left_s: float = 600.0) -> str | None:
    """The demo call (``demo-...``) booked earlier that is on now, not ended and has at least
    ``min_left_s`` left: `make run` run again reuses it instead of booking an overlapping one."""
    rows = store.db.execute(
        "SELECT b.call_id FROM bookings b JOIN calls c ON c.call_id = b.call_id"
        " WHERE b.call_id LIKE 'demo-%' AND b.starts_at <= ? AND b.ends_at >= ? AND c.state != 'ended'"
        " ORDER BY b.starts_at DESC LIMIT 1",
        (now, now + min_left_s),
    ).fetchall()
    return str(rows[0][0]) if rows else None


def stored_booking(store: Store, call_id: str, config: PolicyConfig) -> Booking:
    """A booked call as the policy core's Booking (for `monitor serve`)."""
    row = store.booking(call_id)
    if row is None:
        raise UserError(f"call {call_id}: not booked")
    return parse_booking(json.loads(row.document), store.data_dir, config)
