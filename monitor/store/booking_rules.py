"""What every way of booking a call shares (``monitor book``, the family pages, staff booking a
family's request): the stored row of a validated booking, and the monthly allowance.

The allowance counts the prisoner's calls starting in the calendar month of the call, in the
prison's time zone, against ``monthly_allowance`` plus the extra calls governors granted for that
month (``allowance_grants``); the decision itself is ``policies.family.Allowance``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from monitor.store.database import BookedVisitor, BookingRow, Store
from monitor.store.prisons import prison
from policies.booking import Booking
from policies.config import PolicyConfig
from policies.family import Allowance, month_bounds, month_key


def booking_row(booking: Booking, document: dict[str, Any]) -> BookingRow:
    """The store row of a validated booking; ``document`` is kept as its JSON (sorted keys)."""
    return BookingRow(
        booking.call_id,
        booking.prisoner.id,
        booking.prison,
        booking.starts_at.timestamp(),
        booking.ends_at.timestamp(),
        booking.starts_at.isoformat(),
        booking.ends_at.isoformat(),
        json.dumps(document, sort_keys=True),
        tuple(BookedVisitor(v.id, v.main_caller) for v in booking.participants),
    )


def extra_calls(store: Store, prisoner_id: str, month: str) -> int:
    row = store.db.execute(
        "SELECT COALESCE(SUM(extra_calls), 0) FROM allowance_grants WHERE prisoner_id = ? AND month = ?",
        (prisoner_id, month),
    ).fetchone()
    return int(row[0])


def month_allowance(
    store: Store, prisoner_id: str, prison_name: str, moment: datetime, config: PolicyConfig
) -> Allowance:
    """The prisoner's allowance in the month (prison time) that ``moment`` falls in."""
    local = moment.astimezone(prison(store, prison_name).tz)
    first, following = month_bounds(local)
    used = store.count_bookings(prisoner_id, first.timestamp(), following.timestamp())
    month = month_key(local)
    return Allowance(month, config.monthly_allowance, extra_calls(store, prisoner_id, month), used)
