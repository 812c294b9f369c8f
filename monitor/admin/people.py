"""`monitor prisoner add` and `monitor visitor add`: people and their enrolled reference photos.

Reference photos are enrolled (face found, embedding computed) before anything is written, and
copied into the database's data directory under their SHA-256 so the store does not depend on files
it does not own. Each change is written to the audit log in the same transaction as the change
itself (actor ``admin``, like the other admin commands): ``prisoner_added``, ``visitor_added``
(a new visitor put on a prisoner's list) and ``visitor_approved`` (an existing visitor put on
another prisoner's list), with the ids and the SHA-256 of each enrolled photo; names and dates of
birth stay in their tables, out of a log that can never be edited.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from monitor.admin.common import add_db_argument, checked_id, nonempty, open_store
from monitor.errors import UserError
from monitor.store.audit import AuditLog
from monitor.store.database import Photo, Prisoner, Store, Visitor
from monitor.store.family_contacts import set_prisoner_date_of_birth

# -- photos and enrolment --------------------------------------------------------------------------


def enrol(person_id: str, photos: list[str]) -> tuple[Photo, ...]:
    """Enrol ``photos`` of one person (raises a UserError naming a bad file); nothing is stored yet."""
    import numpy as np

    from monitor.analysis.enrol import enrol_photos  # loads the face models only when needed
    from monitor.inputs import check_photo

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


# -- commands --------------------------------------------------------------------------------------


def run_prisoner_add(args: argparse.Namespace) -> int:
    prisoner = Prisoner(
        checked_id(args.id, "ID"), nonempty(args.name, "--name"), nonempty(args.prison, "--prison")
    )
    photos = enrol(prisoner.id, args.photo) if args.photo else ()
    dob = _date(args.dob, "--dob") if args.dob else None
    with open_store(args) as store, store.transaction():  # the change and its audit record, or neither
        store.add_prisoner(prisoner, keep_photos(store, photos))
        if dob is not None:  # families add a prisoner by name, number and date of birth
            set_prisoner_date_of_birth(store, prisoner.id, dob)
        AuditLog(store).append(
            "prisoner_added",
            {"prisoner": prisoner.id, "photos": [p.sha256 for p in photos]},
            prison=prisoner.prison,
            actor="admin",
        )
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
    if args.id is not None:
        checked_id(args.id, "--id")
    with open_store(args) as store:
        prisoner = store.prisoner(args.prisoner)
        if prisoner is None:
            raise UserError(
                f"--prisoner {args.prisoner}: no such prisoner (add it with `monitor prisoner add`)"
            )
        existing = store.visitor(args.id) if args.id else None
        if existing is not None and not args.photo:
            # approving an existing visitor must not look as if it changed who they are
            if args.name is not None and args.name.strip() != existing.name:
                raise UserError(
                    f"--name {args.name!r}: visitor {existing.id} is {existing.name!r}; "
                    "omit --name to approve them, or use a new --id for a different person"
                )
            if args.dob is not None and _date(args.dob, "--dob") != existing.date_of_birth:
                raise UserError(
                    f"--dob {args.dob}: visitor {existing.id} was born on {existing.date_of_birth}; "
                    "omit --dob to approve them, or use a new --id for a different person"
                )
            if existing.id in store.visitor_list(prisoner.id):
                print(f"visitor {existing.id} is already on the visitor list of prisoner {prisoner.id}")
                return 0
            with store.transaction():
                store.approve_visitor(prisoner.id, existing.id)
                AuditLog(store).append(
                    "visitor_approved",
                    {"visitor": existing.id, "prisoner": prisoner.id},
                    prison=prisoner.prison,
                    actor="admin",
                )
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
        if (known := store.visitor(visitor_id)) is not None:  # whose face is accepted never changes here
            raise UserError(
                f"--id {visitor_id}: visitor already exists ({known.name}); to approve them for prisoner "
                f"{prisoner.id} give the same command without --photo, --name and --dob; for someone "
                "else choose a new --id"
            )
        photos = keep_photos(store, enrol(visitor_id, args.photo))
        with store.transaction():
            store.add_visitor(Visitor(visitor_id, nonempty(args.name, "--name"), dob, photos), prisoner.id)
            AuditLog(store).append(
                "visitor_added",
                {"visitor": visitor_id, "prisoner": prisoner.id, "photos": [p.sha256 for p in photos]},
                prison=prisoner.prison,
                actor="admin",
            )
    print(
        f"added visitor {visitor_id} ({args.name}) for prisoner {prisoner.id}, "
        f"{len(photos)} reference photo(s)"
    )
    return 0


def add_prisoner_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="prison number, e.g. A1234BC")
    parser.add_argument("--name", required=True)
    parser.add_argument("--prison", required=True, help="the prison, e.g. 'HMP Example'")
    parser.add_argument(
        "--dob", help="date of birth YYYY-MM-DD (families need it, with the name and number, to add them)"
    )
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
