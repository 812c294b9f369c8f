"""`monitor book`: book a call from the store and print its join links.

The booking document is built from the store (names, dates of birth, photos) and checked by every
rule of ``policies.booking.parse_booking``, then by the rules only the store can check: each
visitor on the prisoner's visitor list, no overlapping call for the prisoner, and the monthly
allowance (calls starting in the same calendar month, in the booking's timezone). One join token per
person is issued (only its hash is stored) and printed as a link, one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
from datetime import datetime, timedelta
from typing import Any

from monitor.admin.common import add_db_argument, booking_row, checked_id, join_base_url, open_store
from monitor.errors import UserError
from monitor.store.audit import AuditLog
from monitor.store.booking_rules import month_allowance
from monitor.store.database import Store
from policies.booking import Booking, BookingError, parse_booking
from policies.config import PolicyConfig, load_policy

JOIN_EARLY_S = 15 * 60.0  # a join link works this long before the booked start


def _start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--start: must be an ISO 8601 time with a timezone, got {text!r}") from None
    if moment.utcoffset() is None:
        raise UserError(f"--start: {text!r} has no timezone (e.g. 2026-12-01T14:00:00+00:00)")
    return moment


def booking_document(store: Store, args: argparse.Namespace, starts_at: datetime) -> dict[str, Any]:
    prisoner = store.prisoner(args.prisoner)
    if prisoner is None:
        raise UserError(f"--prisoner {args.prisoner}: no such prisoner")
    twice = sorted({v for v in args.visitor if args.visitor.count(v) > 1})
    if twice:
        raise UserError(f"--visitor {twice[0]}: given more than once")
    participants = []
    for n, visitor_id in enumerate(args.visitor):
        visitor = store.visitor(visitor_id)
        if visitor is None:
            raise UserError(f"--visitor {visitor_id}: no such visitor")
        participants.append(
            {
                "id": visitor.id,
                "name": visitor.name,
                "date_of_birth": visitor.date_of_birth,
                "main_caller": visitor.id == args.main or (args.main is None and n == 0),
                "reference_photos": [p.path for p in visitor.photos],
            }
        )
    return {
        "call_id": args.call_id or f"call-{secrets.token_hex(4)}",
        "prison": prisoner.prison,
        "prisoner": {
            "id": prisoner.id,
            "name": prisoner.name,
            "reference_photos": [p.path for p in store.prisoner_photos(prisoner.id)],
        },
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + timedelta(minutes=args.minutes)).isoformat(),
        "participants": participants,
    }


def store_rules(store: Store, booking: Booking, config: PolicyConfig) -> None:
    """The booking rules that need the store (raise BookingError naming the flag and the rule)."""
    approved = set(store.visitor_list(booking.prisoner.id))
    for visitor in booking.participants:
        if visitor.id not in approved:
            raise BookingError(
                f"--visitor {visitor.id}: not on prisoner {booking.prisoner.id}'s visitor list"
            )
    start, end = booking.starts_at.timestamp(), booking.ends_at.timestamp()
    clash = store.overlapping(booking.prisoner.id, start, end)
    if clash is not None:
        raise BookingError(f"--start: prisoner {booking.prisoner.id} already has call {clash} at that time")
    allowance = month_allowance(store, booking.prisoner.id, booking.prison, booking.starts_at, config)
    if allowance.left == 0:
        calls = allowance.free + allowance.extra
        raise BookingError(
            f"--start: prisoner {booking.prisoner.id} has used the monthly allowance of "
            f"{calls} call{'' if calls == 1 else 's'} in {allowance.month} (a governor may grant more)"
        )


def save_booking(store: Store, booking: Booking, document: dict[str, Any], config: PolicyConfig) -> None:
    """Check the store rules and insert, in one transaction (two admins cannot double-book)."""
    with store.transaction():
        store_rules(store, booking, config)
        store.add_booking(booking_row(booking, document))


def join_links(
    store: Store, booking: Booking, base_url: str, *, revoke_earlier: bool = True
) -> list[dict[str, str]]:
    """Issue one join token per person (revoking earlier ones unless told not to) and return the
    link lines."""
    opens = booking.starts_at.timestamp() - JOIN_EARLY_S
    closes = booking.ends_at.timestamp()
    people = [("prisoner", booking.prisoner.id)] + [("visitor", v.id) for v in booking.participants]
    links = []
    for role, person in people:
        token = store.issue_join_token(
            booking.call_id, person, role, opens, closes, revoke_earlier=revoke_earlier
        )
        url = f"{base_url.rstrip('/')}/join/{token}"
        links.append({"call_id": booking.call_id, "role": role, "participant": person, "url": url})
    return links


def run_book(args: argparse.Namespace) -> int:
    config = load_policy(args.policy)
    starts_at = _start(args.start)
    if args.minutes < 1:
        raise UserError(f"--minutes {args.minutes}: the slot length must be a positive number of minutes")
    links_base = join_base_url(args.base_url)
    if args.call_id is not None:
        checked_id(args.call_id, "--call-id")
    with open_store(args, must_exist=True) as store:
        document = booking_document(store, args, starts_at)
        if args.main is not None and args.main not in args.visitor:
            raise UserError(f"--main {args.main}: must be one of the --visitor ids")
        try:
            booking = parse_booking(document, store.data_dir, config)
        except BookingError as exc:  # name the flag, not the generated document's field
            ids = [p["id"] for p in document["participants"]]
            text = re.sub(r"participants\[(\d+)\]", lambda m: f"--visitor {ids[int(m.group(1))]}", str(exc))
            raise BookingError(text.replace("ends_at:", "--minutes:")) from None
        if booking.ends_at.timestamp() <= store.clock():
            raise UserError(
                f"--start: the slot {document['starts_at']} to {document['ends_at']} has already ended; "
                "book a time in the future"
            )
        with store.transaction():  # the booking and its audit record, or neither
            save_booking(store, booking, document, config)
            AuditLog(store).append(
                "booked",
                {"visitors": list(booking.visitor_ids), "starts_at": document["starts_at"]},
                prison=booking.prison,
                call_id=booking.call_id,
                actor="admin",
            )
        print(
            f"booked {booking.call_id}: prisoner {booking.prisoner.id} with {', '.join(booking.visitor_ids)} "
            f"from {document['starts_at']} to {document['ends_at']}",
            file=sys.stderr,
        )
        for link in join_links(store, booking, links_base):
            print(json.dumps(link))
    return 0


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prisoner", required=True)
    parser.add_argument("--visitor", action="append", required=True, help="visitor id (repeat for up to 4)")
    parser.add_argument("--main", help="the main caller's visitor id (default: the first --visitor)")
    parser.add_argument(
        "--start", required=True, help="ISO time with timezone, e.g. 2026-12-01T14:00:00+00:00"
    )
    parser.add_argument("--minutes", type=int, default=30, help="slot length (default 30)")
    parser.add_argument("--call-id", help="call id (default: generated)")
    parser.add_argument("--policy", help="policy TOML file overriding policies/default.toml")
    parser.add_argument(
        "--base-url",
        default="http://127.0.0.1:8080",
        help="server address for the join links (default http://127.0.0.1:8080)",
    )
    add_db_argument(parser)
