"""Admin commands on the store: `monitor prisoner add`, `visitor add`, `book`, `staff add`, `audit verify`.

Each prints what it did (one line, or one JSON line per join link for `book`); bad input raises a
UserError that the CLI prints as one line with a non-zero exit. Reference photos are enrolled
(face found, embedding computed) before anything is written, and copied into the database's data
directory under their SHA-256 so the store does not depend on files it does not own.

``monitor book`` builds the booking document from the store (names, dates of birth, photos), runs
every rule of ``policies.booking.parse_booking`` on it, then the rules only the store can check:
each visitor on the prisoner's visitor list, no overlapping call for the prisoner, and the monthly
allowance (calls starting in the same calendar month, in the booking's timezone).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor import auth
from monitor.audit import AuditLog
from monitor.errors import UserError
from monitor.store import BookedVisitor, BookingRow, Photo, Prisoner, Store, Visitor, default_db_path
from policies.booking import Booking, BookingError, parse_booking
from policies.config import PolicyConfig, load_policy

if TYPE_CHECKING:
    import numpy as np

JOIN_EARLY_S = 15 * 60.0  # a join link works this long before the booked start
DB_HELP = "database file (default: $MONITOR_DB, else ./monitor.db)"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=None, help=DB_HELP)


def open_store(args: argparse.Namespace) -> Store:
    return Store(args.db if getattr(args, "db", None) else default_db_path())


# -- photos and enrolment --------------------------------------------------------------------------


def enrol(person_id: str, photos: list[str]) -> tuple[Photo, ...]:
    """Enrol ``photos`` of one person (raises a UserError naming a bad file); nothing is stored yet."""
    import numpy as np

    from monitor.analysis.enrol import enrol_photos  # loads the face models only when needed
    from monitor.bookings import check_photo

    paths = [Path(p) for p in photos]
    for path in paths:
        check_photo(f"--photo {path}", path)
    with native_logs_quiet():
        enrolment = enrol_photos({person_id: paths})
    person = next(p for p in enrolment.people if p.id == person_id)
    if len(person.embeddings) != len(paths):
        raise UserError(f"{person_id}: {len(paths)} photos gave {len(person.embeddings)} embeddings")
    return tuple(
        Photo(str(path), hashlib.sha256(path.read_bytes()).hexdigest(), np.asarray(emb, "<f8").tobytes())
        for path, emb in zip(paths, person.embeddings, strict=True)
    )


@contextlib.contextmanager
def native_logs_quiet() -> Iterator[None]:
    """Hold back what the face models' C++ code writes to stderr (TFLite/absl banners), so a
    command prints only its own line; replayed if something unexpected goes wrong."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except UserError:
            raise
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def keep_photos(store: Store, photos: tuple[Photo, ...]) -> tuple[Photo, ...]:
    """Copy photos into ``<data dir>/photos/<sha256><suffix>``; the returned photos point there,
    relative to the data directory (so the database and its data directory can move together)."""
    folder = store.data_dir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    kept = []
    for photo in photos:
        target = folder / f"{photo.sha256}{Path(photo.path).suffix.lower() or '.jpg'}"
        if not target.exists():
            shutil.copyfile(photo.path, target)
        kept.append(Photo(f"photos/{target.name}", photo.sha256, photo.embedding))
    return tuple(kept)


def embeddings(photos: tuple[Photo, ...]) -> tuple[np.ndarray, ...]:
    import numpy as np

    return tuple(np.frombuffer(p.embedding, "<f8").copy() for p in photos)


# -- prisoner / visitor / staff --------------------------------------------------------------------


def _nonempty(value: str, flag: str) -> str:
    if not value.strip():
        raise UserError(f"{flag} must not be empty")
    return value.strip()


def run_prisoner_add(args: argparse.Namespace) -> int:
    prisoner = Prisoner(
        _nonempty(args.id, "ID"), _nonempty(args.name, "--name"), _nonempty(args.prison, "--prison")
    )
    photos = enrol(prisoner.id, args.photo) if args.photo else ()
    with open_store(args) as store:
        store.add_prisoner(prisoner, keep_photos(store, photos))
    print(
        f"added prisoner {prisoner.id} ({prisoner.name}) at {prisoner.prison}, "
        f"{len(photos)} reference photo(s)"
    )
    return 0


def _date(text: str, flag: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise UserError(f"{flag}: must be a date YYYY-MM-DD, got {text!r}") from None


def run_visitor_add(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        prisoner = store.prisoner(args.prisoner)
        if prisoner is None:
            raise UserError(
                f"--prisoner {args.prisoner}: no such prisoner (add it with `monitor prisoner add`)"
            )
        if args.id and store.visitor(args.id) is not None and not args.photo:
            store.approve_visitor(prisoner.id, args.id)
            print(f"approved existing visitor {args.id} for prisoner {prisoner.id}")
            return 0
        if not args.photo:
            raise UserError("--photo: at least one reference photo is required")
        if args.name is None or args.dob is None:
            raise UserError("--name and --dob are required for a new visitor")
        dob = _date(args.dob, "--dob")
        if date.fromisoformat(dob) > date.today():
            raise UserError(f"--dob: {dob} is in the future")
        visitor_id = args.id or f"v-{secrets.token_hex(4)}"
        if store.visitor(visitor_id) is not None:
            raise UserError(f"--id {visitor_id}: visitor already exists (omit --photo to approve them)")
        photos = keep_photos(store, enrol(visitor_id, args.photo))
        store.add_visitor(Visitor(visitor_id, _nonempty(args.name, "--name"), dob, photos), prisoner.id)
    print(
        f"added visitor {visitor_id} ({args.name}) for prisoner {prisoner.id}, "
        f"{len(photos)} reference photo(s)"
    )
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def run_staff_add(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        staff = auth.add_staff(store, args.username, _nonempty(args.prison, "--prison"), _password(args))
        AuditLog(store).append(
            "staff_added", {"username": staff.username}, prison=staff.prison, actor="admin"
        )
    print(f"added staff account {staff.username} at {staff.prison}")
    return 0


def run_audit_verify(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        result = AuditLog(store).verify()
    if not result.ok:
        print(f"monitor: audit chain broken: {result.problem}", file=sys.stderr)
        return 2
    print(f"ok: {result.records} audit records, chain intact, head {result.head}")
    return 0


# -- booking -------------------------------------------------------------------------------------


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


def _month(moment: datetime) -> tuple[float, float]:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.timestamp(), following.timestamp()


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
    month_start, month_end = _month(booking.starts_at)
    used = store.count_bookings(booking.prisoner.id, month_start, month_end)
    if used >= config.monthly_allowance:
        raise BookingError(
            f"--start: prisoner {booking.prisoner.id} has used the monthly allowance of "
            f"{config.monthly_allowance} calls in {booking.starts_at:%Y-%m}"
        )


def save_booking(store: Store, booking: Booking, document: dict[str, Any], config: PolicyConfig) -> None:
    """Check the store rules and insert, in one transaction (two admins cannot double-book)."""
    with store.transaction():
        store_rules(store, booking, config)
        store.add_booking(
            BookingRow(
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
        )


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
    with open_store(args) as store:
        document = booking_document(store, args, starts_at)
        if args.main is not None and args.main not in args.visitor:
            raise UserError(f"--main {args.main}: must be one of the --visitor ids")
        try:
            booking = parse_booking(document, store.data_dir, config)
        except BookingError as exc:  # name the flag, not the generated document's field
            ids = [p["id"] for p in document["participants"]]
            text = re.sub(r"participants\[(\d+)\]", lambda m: f"--visitor {ids[int(m.group(1))]}", str(exc))
            raise BookingError(text.replace("ends_at:", "--minutes:")) from None
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
        for link in join_links(store, booking, args.base_url):
            print(json.dumps(link))
    return 0


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
        store.add_booking(
            BookingRow(
                booking.call_id,
                booking.prisoner.id,
                booking.prison,
                booking.starts_at.timestamp(),
                booking.ends_at.timestamp(),
                booking.starts_at.isoformat(),
                booking.ends_at.isoformat(),
                json.dumps(document_of(booking), sort_keys=True),
                tuple(BookedVisitor(v.id, v.main_caller) for v in booking.participants),
            )
        )
    return True


DEMO_STAFF = "demo"


def demo_staff(store: Store, prison: str) -> tuple[str, str]:
    """The demo staff account for `make run`: created (or given a fresh random password) for
    ``prison``; returns (username, password) to print. Earlier demo sessions end."""
    password = secrets.token_urlsafe(12)
    row = store.db.execute("SELECT prison FROM staff WHERE username = ?", (DEMO_STAFF,)).fetchone()
    if row is None:
        auth.add_staff(store, DEMO_STAFF, prison, password)
    elif row["prison"] != prison:
        raise UserError(f"staff account {DEMO_STAFF} exists for {row['prison']}, not {prison}")
    else:
        auth.set_password(store, DEMO_STAFF, password)
    return DEMO_STAFF, password


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


# -- argument declarations (used by monitor/cli.py) ------------------------------------------------

Lazy = Callable[[str, str], Callable[[argparse.Namespace], int]]


def add_commands(commands: Any, lazy: Lazy) -> None:
    """Declare the admin subcommands on the CLI's subparsers (handlers imported when run)."""
    nouns = {
        "prisoner": (
            "prisoners",
            [("add", "add a prisoner", add_prisoner_add_arguments, "run_prisoner_add")],
        ),
        "visitor": (
            "visitors",
            [
                (
                    "add",
                    "add a visitor to a prisoner's visitor list, enrolling their photos",
                    add_visitor_add_arguments,
                    "run_visitor_add",
                )
            ],
        ),
        "staff": (
            "staff accounts",
            [("add", "add a staff account", add_staff_add_arguments, "run_staff_add")],
        ),
        "audit": (
            "the audit log",
            [("verify", "verify the audit hash chain", add_audit_verify_arguments, "run_audit_verify")],
        ),
    }
    for noun, (what, actions) in nouns.items():
        parser = commands.add_parser(noun, help=f"manage {what}")
        sub = parser.add_subparsers(dest=f"{noun}_command", metavar="ACTION", required=True)
        for action, help_text, declare, handler in actions:
            action_parser = sub.add_parser(action, help=help_text)
            declare(action_parser)
            action_parser.set_defaults(handler=lazy("monitor.admin", handler))
    book = commands.add_parser("book", help="book a call from the store and print its join links")
    add_book_arguments(book)
    book.set_defaults(handler=lazy("monitor.admin", "run_book"))


def add_prisoner_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="prison number, e.g. A1234BC")
    parser.add_argument("--name", required=True)
    parser.add_argument("--prison", required=True, help="the prison, e.g. 'HMP Example'")
    parser.add_argument("--photo", action="append", default=[], help="reference photo (optional, repeatable)")
    add_db_argument(parser)


def add_visitor_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prisoner", required=True, help="put the visitor on this prisoner's visitor list")
    parser.add_argument(
        "--id", help="visitor id (default: generated); an existing id is approved for --prisoner"
    )
    parser.add_argument("--name")
    parser.add_argument("--dob", help="date of birth YYYY-MM-DD")
    parser.add_argument("--photo", action="append", default=[], help="reference photo (repeatable)")
    add_db_argument(parser)


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
        "--base-url", default="http://127.0.0.1:8080", help="server address for the join links"
    )
    add_db_argument(parser)


def add_staff_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username")
    parser.add_argument("--prison", required=True, help="the prison whose calls this account may see")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_db_argument(parser)


def add_audit_verify_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
