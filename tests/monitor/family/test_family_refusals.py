"""Bad input on the family socket that the walk-through tests do not cover, each refused with one
plain message and nothing changed: files of the wrong kind for what they are announced as (a PDF
as a photo ID, a photo ID for a child, a proof of address for someone else), a 50 MB ID document,
another family's people, contacts and calls, a person in prison added with someone else's
details, a main caller who is 17 on the day. Real server, real store, real photos.

The store's clock is a Monday morning in London (2030-06-03 08:00 BST)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from support.family_site import (
    BIDEN,
    OBAMA,
    PASSWORD,
    PRISONER,
    Clock,
    FamilyClient,
    MemoryMailer,
    prison_with_staff,
    verified_family,
)
from support.live_server import TracebackLog

from monitor.server.serve import Server
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from policies.config import load_policy

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)
TUESDAY_2PM = datetime(2030, 6, 4, 14, 0, tzinfo=LONDON).isoformat()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Families:
    server: Server
    store: Store
    jane: FamilyClient  # verified, the prisoner as an approved contact
    jane_ids: tuple[str, str, str]  # (account, holder, contact)
    bob: FamilyClient  # another verified family, the same prisoner
    bob_ids: tuple[str, str, str]
    errors: TracebackLog

    def counts(self) -> tuple[int, ...]:
        """What a refusal must not change."""
        tables = ("family_documents", "family_people", "family_contacts", "bookings", "audit", "join_tokens")
        return tuple(self.store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def families(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Families]:
    import logging

    store = Store(tmp_path_factory.mktemp("refusals") / "monitor.db", clock=Clock(MONDAY.timestamp()))
    officer, _ = prison_with_staff(store)
    vault, mailer = DocumentVault(store), MemoryMailer()
    jane_ids = verified_family(store, vault, officer, mailer, "jane@example.org", OBAMA)
    bob_ids = verified_family(store, vault, officer, mailer, "bob@example.org", BIDEN)
    errors = TracebackLog()
    logging.getLogger().addHandler(errors)
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store)
    server.mailer = mailer
    await server.start()
    clients = []
    for email in ("jane@example.org", "bob@example.org"):
        client = FamilyClient(server.port)
        assert (await client.login(email, PASSWORD))[0] == 200
        clients.append(await client.connect())
    try:
        yield Families(server, store, clients[0], jane_ids, clients[1], bob_ids, errors)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
        store.close()
        logging.getLogger().removeHandler(errors)


async def test_files_of_the_wrong_kind_for_what_they_are_are_refused(
    families: Families, tmp_path: Path
) -> None:
    jane = families.jane
    child = (await jane.ask("add_person", name="Amy Smith", date_of_birth="2015-05-05", address="1 High St"))[
        "person"
    ]
    before = families.counts()
    not_a_photo = "this is not a photo: send a JPEG or PNG picture (we take a JPEG or PNG photo)"
    under_18 = "Amy Smith is under 18: children need a face photo, not an ID"
    cases = [
        (("id_document", child, OBAMA.read_bytes()), "bad_kind", under_18),
        (("proof_of_address", child, PDF), "bad_kind", "only the account holder gives a proof of address"),
        (("face_photo", child, PDF), "bad_file", not_a_photo),
        (("id_document", families.jane_ids[1], PDF), "already_approved", "your details are approved"),
    ]  # fmt: skip
    for (kind, person, data), code, words in cases:
        answer = await jane.upload(kind, person, data, "application/pdf")
        assert (answer["type"], answer["code"]) == ("error", code), answer
        assert answer["message"].startswith(words), answer
    big = await jane.ask(
        "upload", kind="id_document", person=child, bytes=50 * 1024 * 1024, content_type="image/jpeg"
    )
    assert big["code"] == "too_big"
    assert families.counts() == before
    families.errors.assert_clean()


async def test_another_familys_people_contacts_and_calls_are_not_yours(families: Families) -> None:
    jane, bob = families.jane, families.bob
    _, jane_holder_id, jane_contact = families.jane_ids
    _, bob_holder, bob_contact = families.bob_ids
    call = (
        await bob.ask(
            "book", contact=bob_contact, starts_at=TUESDAY_2PM, people=[bob_holder], main=bob_holder
        )
    )["call"]["call_id"]
    before = families.counts()
    wednesday = datetime(2030, 6, 5, 9, 0, tzinfo=LONDON).isoformat()

    def book(contact: str, person: str) -> dict[str, object]:
        return {"contact": contact, "starts_at": wednesday, "people": [person], "main": person}

    not_yours = "that person is not on your account"
    refusals = [
        (("upload", {"kind": "face_photo", "person": bob_holder, "bytes": 9}), not_yours),
        (("book", book(bob_contact, jane_holder_id)), "that person in prison is not one of your contacts"),
        (("book", book(jane_contact, bob_holder)), not_yours),
        (("cancel", {"call_id": call}), "no such call"),
        (("join_link", {"call_id": call, "person": jane_holder_id}), "no such call"),
        (("slots", {"contact": bob_contact}), "that person in prison is not one of your contacts"),
    ]  # fmt: skip
    for (message, fields), words in refusals:
        answer = await jane.ask(message, **fields)
        assert (answer["type"], answer["message"]) == ("error", words), (message, answer)
    assert families.counts() == before
    families.errors.assert_clean()


async def test_a_prisoner_is_added_only_with_all_three_details_right(families: Families) -> None:
    jane = families.jane
    before = families.counts()
    for number, name, born in [
        ("B0000XX", PRISONER[1], PRISONER[2]),  # a number nobody has
        (PRISONER[0], "Jon Smith", PRISONER[2]),
        (PRISONER[0], PRISONER[1], "1980-03-02"),  # day and month swapped
    ]:
        answer = await jane.ask("add_contact", name=name, prison_number=number, date_of_birth=born)
        assert (answer["code"], answer["message"]) == ("no_match", "we could not match these details")
    assert families.counts() == before
