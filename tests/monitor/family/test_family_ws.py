"""The families' socket end to end: a real `monitor serve` server on a real port, its SQLite store,
the real enrolment models on real photos, the family's side spoken over a real WebSocket and the
login over real HTTP; staff decide through the store's staff API (the console's families desk calls
the same functions: tests/monitor/console/test_family_desk.py).

The store's clock is a Monday morning in London (2030-06-03 08:00 BST) so the slots of the week are
known; the prison's default timetable has calls on weekdays."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from support.family_site import (
    ASTRONAUT_PNG,
    BIDEN,
    CHILD,
    FIVE_FACES,
    GRACE,
    NO_FACE,
    OBAMA,
    PASSWORD,
    PRISON,
    PRISONER,
    Clock,
    FamilyClient,
    MemoryMailer,
    prison_with_staff,
)
from support.live_server import TracebackLog
from support.raw_ws import CLOSE, RawWebSocket

from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Prisoner, Store
from monitor.store.family_contacts import set_prisoner_date_of_birth
from monitor.store.family_staff import (
    approve_person,
    book_for_request,
    change_settings,
    grant_extra_calls,
    verify_account,
)
from policies.config import load_policy

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)
CONFIG = load_policy()
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Site:
    server: Server
    store: Store
    clock: Clock
    mailer: MemoryMailer
    officer: auth.Staff
    governor: auth.Staff
    errors: TracebackLog

    @property
    def port(self) -> int:
        return self.server.port

    def client(self) -> FamilyClient:
        return FamilyClient(self.port)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    import logging

    clock = Clock(MONDAY.timestamp())
    store = Store(tmp_path_factory.mktemp("family") / "monitor.db", clock=clock)
    officer, governor = prison_with_staff(store)
    store.add_prisoner(Prisoner("B7654CD", "Ann Lee", PRISON))
    set_prisoner_date_of_birth(store, "B7654CD", "1979-01-01")
    mailer = MemoryMailer()
    errors = TracebackLog()
    logging.getLogger().addHandler(errors)
    server = Server([], CONFIG, port=0, analysis_workers=0, store=store)
    server.mailer = mailer
    await server.start()
    try:
        yield Site(server, store, clock, mailer, officer, governor, errors)
    finally:
        await server.stop()
        store.close()
        logging.getLogger().removeHandler(errors)


def start_of_frame(jpeg: bytes) -> int:
    """Where a JPEG's SOF0 segment starts (walking the segments from the start)."""
    at = 2
    while jpeg[at + 1] != 0xC0:
        at += 2 + struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
    return at


def at(day: int, hour: int, minute: int = 0) -> str:
    return datetime(2030, 6, 3 + day, hour, minute, tzinfo=LONDON).isoformat()


async def registered(
    site: Site, email: str, name: str = "Jane Smith", dob: str = "1985-04-01"
) -> FamilyClient:
    """A family that registered, confirmed its address through the mailed link and signed in."""
    family = await site.client().connect()
    answer = await family.ask(
        "register", email=email, password=PASSWORD, name=name, date_of_birth=dob, address="1 High St, Leeds"
    )
    assert answer == {"type": "ok", "ref": answer["ref"], "sent_to": email}
    link = site.mailer.last("confirm_email", email)["link"]
    assert link.startswith(f"http://127.0.0.1:{site.port}/family/confirm/")
    status, headers, _ = await family.get(link.removeprefix(family.origin))
    assert (status, headers["location"]) == (303, "/family#confirmed")
    assert (await family.login(email))[0] == 200
    return await family.connect()


async def holder_of(family: FamilyClient) -> str:
    status = await family.ask("status")
    return str(next(p["id"] for p in status["people"] if p["holder"]))


@pytest.fixture(autouse=True)
def fresh_sign_in_limits(site: Site) -> None:
    """Every test signs in from the same loopback address, so earlier tests' failed sign-ins would
    make it wait (the per-address back-off itself is tested in tests/monitor/store/)."""
    with site.store.transaction() as db:
        db.execute("DELETE FROM login_attempts")


async def verified(
    site: Site, email: str, photo: Path = OBAMA, prisoner: tuple[str, str, str] = PRISONER
) -> tuple[FamilyClient, str, str]:
    """A verified family with the prisoner as an approved contact: (client, holder id, contact id)."""
    family = await registered(site, email)
    holder = await holder_of(family)
    data = await asyncio.to_thread(photo.read_bytes)
    assert (await family.upload("face_photo", holder, data))["type"] == "ok"
    assert (await family.upload("id_document", holder, data))["type"] == "ok"
    assert (await family.ask("id_shows_address", value=True))["type"] == "ok"
    added = await family.ask(
        "add_contact", name=prisoner[1], prison_number=prisoner[0], date_of_birth=prisoner[2]
    )
    account = site.store.db.execute("SELECT id FROM family_accounts WHERE email = ?", (email,)).fetchone()[0]
    verify_account(site.store, site.officer, account, CONFIG, site.mailer)
    return family, holder, added["contact"]["id"]


async def test_the_page_and_its_socket_are_served(site: Site) -> None:
    family = site.client()
    status, headers, body = await family.get("/family")
    assert status == 200 and b"<html" in body and "default-src 'self'" in headers["content-security-policy"]
    assert (await family.get("/family/static/../index.html"))[0] == 404
    with pytest.raises(Exception, match="403"):
        await family.connect(origin="https://evil.example")
    await family.connect()
    assert await family.ask("status") == {
        "type": "error",
        "ref": "m1",
        "code": "login_required",
        "message": "please sign in first",
    }
    await family.close()


async def test_register_confirm_upload_add_the_prisoner_and_get_verified(site: Site) -> None:
    family = await site.client().connect()
    too_young = await family.ask(
        "register",
        email="kid@example.org",
        password=PASSWORD,
        name="Kid",
        date_of_birth="2015-01-01",
        address="x",
    )
    assert (too_young["code"], too_young["message"]) == (
        "too_young",
        "you must be 18 or over to open an account",
    )
    bad = await family.ask(
        "register", email="nope", password=PASSWORD, name="A", date_of_birth="1980-01-01", address="x"
    )
    assert bad["message"] == "e-mail address: this does not look like an e-mail address"
    await family.ask(
        "register",
        email="jane@example.org",
        password=PASSWORD,
        name="Jane Smith",
        date_of_birth="1985-04-01",
        address="1 High St",
    )
    # before the address is confirmed: no session, and a fresh link is sent
    assert await family.login("jane@example.org") == (
        403,
        {"error": "please confirm your e-mail address first: we have sent you a new link"},
    )
    link = site.mailer.last("confirm_email", "jane@example.org")["link"]
    assert (await family.get(link.removeprefix(family.origin)))[1]["location"] == "/family#confirmed"
    assert (await family.get(link.removeprefix(family.origin)))[1]["location"] == "/family#already"
    assert (await family.get("/family/confirm/made-up"))[1]["location"] == "/family#expired"
    assert (await family.login("jane@example.org", "wrong password"))[0] == 401
    assert (await family.login("jane@example.org"))[0] == 200
    await family.connect()
    status = await family.ask("status")
    assert status["account"]["status"] == "unverified"
    holder = next(p["id"] for p in status["people"] if p["holder"])
    assert status["missing"][0] == "a photo of your face"

    # a photo without a face, and one with five, are refused at once, saying why
    refused = await family.upload("face_photo", holder, NO_FACE.read_bytes())
    assert refused["code"] == "photo_refused"
    assert refused["message"] == (
        "we could not use this photo: no face found; take a new photo of just that person's face, "
        "looking at the camera, in good light"
    )
    crowd = await family.upload("face_photo", holder, FIVE_FACES.read_bytes())
    assert "5 faces found" in crowd["message"]
    assert (await family.ask("status"))["people"][0]["face_photo"] is False
    # a real ID photo and a real face photo (a PNG here) are enrolled
    assert (await family.upload("id_document", holder, OBAMA.read_bytes()))["type"] == "ok"
    assert (await family.upload("face_photo", holder, ASTRONAUT_PNG.read_bytes(), "image/png"))[
        "type"
    ] == "ok"
    assert (await family.upload("face_photo", holder, OBAMA.read_bytes()))["type"] == "ok"  # replaced
    assert (await family.upload("proof_of_address", holder, PDF, "application/pdf"))["type"] == "ok"
    # a child: a face photo, no ID
    child = (
        await family.ask("add_person", name="Amy Smith", date_of_birth="2020-05-05", address="1 High St")
    )["person"]
    no_id = await family.upload("id_document", child, CHILD.read_bytes())
    assert no_id["message"] == "Amy Smith is under 18: children need a face photo, not an ID"
    assert (await family.upload("face_photo", child, CHILD.read_bytes()))["type"] == "ok"
    # the prisoner: wrong details get one answer and nothing else
    for details in [
        {"name": "John Smith", "prison_number": PRISONER[0], "date_of_birth": "1980-02-04"},
        {"name": "John Smyth", "prison_number": PRISONER[0], "date_of_birth": PRISONER[2]},
        {
            "name": "Ann Lee",
            "prison_number": PRISONER[0],
            "date_of_birth": "1979-01-01",
        },  # someone else's number
        {"name": "John Smith", "prison_number": "ZZ999", "date_of_birth": PRISONER[2]},
    ]:
        answer = await family.ask("add_contact", **details)
        assert {k: answer[k] for k in ("type", "code", "message")} == {
            "type": "error",
            "code": "no_match",
            "message": "we could not match these details",
        }
    assert (await family.ask("status"))["contacts"] == []
    added = await family.ask(
        "add_contact", name="john smith", prison_number=PRISONER[0], date_of_birth=PRISONER[2]
    )
    assert added["contact"]["status"] == "pending" and added["contact"]["prisoner_name"] == "John Smith"
    status = await family.ask("status")
    assert status["account"]["status"] == "pending" and status["missing"] == []
    assert status["account"]["due_at"] == pytest.approx(MONDAY.timestamp() + 24 * 3600, abs=120)
    # staff of the prison check it (the console will call the same function)
    account = site.store.db.execute(
        "SELECT id FROM family_accounts WHERE email = 'jane@example.org'"
    ).fetchone()[0]
    verify_account(site.store, site.officer, account, CONFIG, site.mailer)
    status = await family.ask("status")
    assert status["account"]["status"] == "verified" and status["contacts"][0]["status"] == "approved"
    assert {p["name"]: p["status"] for p in status["people"]} == {
        "Jane Smith": "approved",
        "Amy Smith": "approved",
    }
    records = AuditLog(site.store).since(PRISON, 0) + AuditLog(site.store).since("(families)", 0)
    assert "Jane" not in json.dumps([r.data for r in records]) and "1985-04-01" not in json.dumps(
        [r.data for r in records]
    )
    await family.close()


async def test_uploads_are_capped_before_reading_and_typed_by_their_bytes(site: Site) -> None:
    family = await registered(site, "files@example.org")
    holder = await holder_of(family)
    big = await family.ask(
        "upload", kind="face_photo", person=holder, bytes=50 * 1024 * 1024, content_type="image/jpeg"
    )
    assert (big["code"], big["message"]) == (
        "too_big",
        "this file is 50 MB; the most we take is 10 MB: send a smaller photo or scan",
    )
    for data, claimed in [
        (b"GIF89a" + b"\0" * 200, "image/jpeg"),
        (b"just some text", "image/png"),
        (PDF, "application/pdf"),
    ]:
        answer = await family.upload("face_photo", holder, data, claimed)
        assert answer["code"] == "bad_file", answer
        assert (
            answer["message"]
            == "this is not a photo: send a JPEG or PNG picture (we take a JPEG or PNG photo)"
        )
    # a JPEG header announcing 20000 x 20000 pixels is refused without decoding
    bomb = bytearray(OBAMA.read_bytes())
    sof = start_of_frame(bytes(bomb))
    bomb[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    answer = await family.upload("face_photo", holder, bytes(bomb))
    assert answer["message"].startswith("this photo is too large (20000 x 20000 pixels)")
    # the file must be what was announced
    ready = await family.ask("upload", kind="face_photo", person=holder, bytes=10, content_type="image/jpeg")
    assert ready["ready"] is True
    await family.ws.send(b"\xff\xd8\xff" + b"\0" * 20)
    wrong = json.loads(await family.ws.recv())
    assert (wrong["code"], wrong["ref"]) == ("wrong_size", ready["ref"])
    assert (await family.ask("status"))["people"][0]["face_photo"] is False
    # a client that sends 50 MB without announcing it: refused by the frame's header, unread
    raw = await RawWebSocket.open(
        "127.0.0.1",
        site.port,
        "/family/ws",
        {"Origin": family.origin, "Cookie": f"family_session={family.cookie}"},
    )
    raw.writer.write(struct.pack("!BBQ", 0x82, 0x80 | 127, 50 * 1024 * 1024) + b"mask" + b"\0" * 1000)
    await raw.writer.drain()
    frame = await raw.recv()
    assert frame.opcode == CLOSE and frame.close_code == 1009
    raw.abort()
    site.errors.assert_clean()
    await family.close()


async def test_booking_the_week_the_allowance_and_a_grant(site: Site) -> None:
    family, holder, contact = await verified(site, "book@example.org", BIDEN)
    slots = await family.ask("slots", contact=contact)
    starts = [s["starts_at"] for s in slots["slots"]]
    assert (
        starts[0] == at(0, 9)
        and starts[-1] == at(4, 16)
        and all(s["calls_left"] == 1 for s in slots["slots"])
    )
    beyond = await family.ask("book", contact=contact, starts_at=at(7, 9), people=[holder], main=holder)
    assert beyond["message"] == "calls can be booked up to 7 days ahead; choose an earlier time"
    booked = await family.ask("book", contact=contact, starts_at=at(1, 14), people=[holder], main=holder)
    assert booked["call"]["starts_at"] == at(1, 14)
    mail = site.mailer.last("call_booked", "book@example.org")
    assert mail["links"][0]["url"].startswith(f"http://127.0.0.1:{site.port}/join/")
    second = await family.ask("book", contact=contact, starts_at=at(2, 9), people=[holder], main=holder)
    assert second["code"] == "allowance_used"
    assert (
        second["message"]
        == "John Smith has no calls left in June 2030; a governor at the prison can allow more"
    )
    grant_extra_calls(site.store, site.governor, PRISONER[0], "2030-06", 1, "a family emergency")
    assert (await family.ask("book", contact=contact, starts_at=at(2, 9), people=[holder], main=holder))[
        "type"
    ] == "ok"
    calls = (await family.ask("status"))["calls"]
    assert [c["starts_at"] for c in calls] == [at(1, 14), at(2, 9)]
    assert calls[0]["join_opens_at"] == at(1, 13, 45) and calls[0]["can_join"] is False
    not_yet = await family.ask("join_link", call_id=calls[0]["call_id"], person=holder)
    assert not_yet["message"] == "the link opens at Tue 4 Jun 13:45 (Europe/London time)"
    # cancelling: refused after the cut-off, allowed before it
    site.clock.set(datetime(2030, 6, 4, 12, 30, tzinfo=LONDON).timestamp())
    try:
        late = await family.ask("cancel", call_id=calls[0]["call_id"])
        assert (
            late["message"]
            == "calls can be cancelled up to 2 hours before they start; this one starts at Tue 4 Jun 14:00"
        )
    finally:
        site.clock.set(MONDAY.timestamp())
    assert (await family.ask("cancel", call_id=calls[1]["call_id"]))["type"] == "ok"
    assert [c["call_id"] for c in (await family.ask("status"))["calls"]] == [calls[0]["call_id"]]
    assert site.mailer.last("call_cancelled", "book@example.org")["by"] == "family"
    # another family's call is not this family's to cancel
    other, _, _ = await verified(site, "other@example.org", GRACE)
    assert (await other.ask("cancel", call_id=calls[0]["call_id"]))["message"] == "no such call"
    await family.close()
    await other.close()


async def test_a_17_year_old_cannot_be_the_main_caller(site: Site) -> None:
    family, holder, contact = await verified(
        site, "teen@example.org", GRACE, ("B7654CD", "Ann Lee", "1979-01-01")
    )
    teen = (await family.ask("add_person", name="Sam Lee", date_of_birth="2012-06-05", address="2 Low St"))[
        "person"
    ]
    assert (await family.upload("face_photo", teen, CHILD.read_bytes()))["type"] == "ok"
    approve_person(site.store, site.officer, teen, CONFIG, site.mailer)
    answer = await family.ask("book", contact=contact, starts_at=at(1, 9), people=[holder, teen], main=teen)
    assert (answer["code"], answer["message"]) == (
        "main_caller_age",
        "Sam Lee is 17: the main caller must be 18 or over",
    )
    assert [b for b in site.store.bookings_between(0, 3e9, PRISON) if b.prisoner_id == "B7654CD"] == []
    ok = await family.ask("book", contact=contact, starts_at=at(1, 9), people=[teen, holder], main=holder)
    assert ok["type"] == "ok"
    await family.close()


async def test_two_families_racing_for_the_last_place(site: Site) -> None:
    change_settings(site.store, site.governor, concurrent_calls=1)
    try:
        site.store.add_prisoner(Prisoner("C1111EE", "Carl Ray", PRISON))
        set_prisoner_date_of_birth(site.store, "C1111EE", "1970-07-07")
        site.store.add_prisoner(Prisoner("D2222FF", "Dan Roe", PRISON))
        set_prisoner_date_of_birth(site.store, "D2222FF", "1971-08-08")
        first = await verified(site, "race1@example.org", OBAMA, ("C1111EE", "Carl Ray", "1970-07-07"))
        second = await verified(site, "race2@example.org", BIDEN, ("D2222FF", "Dan Roe", "1971-08-08"))
        slot = at(3, 16)  # Thursday 16:00: nobody has it; one place
        answers = await asyncio.gather(
            *(
                f.ask("book", contact=contact, starts_at=slot, people=[holder], main=holder)
                for f, holder, contact in (first, second)
            )
        )
        assert sorted(a["type"] for a in answers) == ["error", "ok"], answers
        refused = next(a for a in answers if a["type"] == "error")
        assert (refused["code"], refused["message"]) == (
            "slot_taken",
            "that time is no longer free; choose another",
        )
        starts = [b for b in site.store.bookings_between(0, 3e9, PRISON) if b.starts_iso == slot]
        assert len(starts) == 1
        for family, _, contact in (first, second):
            assert slot not in [s["starts_at"] for s in (await family.ask("slots", contact=contact))["slots"]]
            await family.close()
    finally:
        change_settings(site.store, site.governor, concurrent_calls=2)


async def test_a_staff_booked_prison_takes_requests(site: Site) -> None:
    site.store.add_prisoner(Prisoner("E3333GG", "Eve Kay", PRISON))
    set_prisoner_date_of_birth(site.store, "E3333GG", "1982-09-09")
    family, holder, contact = await verified(
        site, "ask@example.org", GRACE, ("E3333GG", "Eve Kay", "1982-09-09")
    )
    change_settings(site.store, site.governor, mode="staff_booked")
    try:
        slots = await family.ask("slots", contact=contact)
        assert (
            slots["message"] == "HMP Example books calls itself: send a request with the times that suit you"
        )
        asked = await family.ask(
            "request_call",
            contact=contact,
            people=[holder],
            main=holder,
            preferred=["2030-06-06T10:00", "2030-06-07T15:00"],
            note="after school",
        )
        request_id = asked["request"]
        [request] = (await family.ask("status"))["requests"]
        assert (request["status"], request["preferred"]) == (
            "open",
            ["2030-06-06T10:00:00+01:00", "2030-06-07T15:00:00+01:00"],
        )
        booked = book_for_request(
            site.store,
            site.officer,
            request_id,
            datetime(2030, 6, 6, 10, 30, tzinfo=LONDON),
            CONFIG,
            site.mailer,
            site.server.base_url,
        )
        status = await family.ask("status")
        assert status["requests"][0]["status"] == "booked"
        assert booked.call_id in [c["call_id"] for c in status["calls"]]
        assert site.mailer.last("call_booked", "ask@example.org")["starts_at"] == "2030-06-06T10:30:00+01:00"
    finally:
        change_settings(site.store, site.governor, mode="self_select")
    await family.close()


async def test_bad_messages_get_one_plain_error_and_change_nothing(site: Site) -> None:
    family = await registered(site, "odd@example.org")
    cases: list[tuple[Any, str]] = [
        ("not json", "not valid JSON"),
        ([1, 2], "a message must be a JSON object"),
        ({"type": "dance"}, "type: must be one of register, status,"),
        ({"type": "status", "extra": 1}, "extra: unknown field for status"),
        ({"type": "add_person", "name": "A"}, "date of birth: missing"),
        (
            {"type": "add_person", "name": "\u0007", "date_of_birth": "2000-01-01", "address": "x"},
            "name: contains characters that are not text",
        ),
        (
            {"type": "add_person", "name": "A\ud800", "date_of_birth": "2000-01-01", "address": "x"},
            "name: contains characters that are not text",
        ),
        (
            {"type": "add_person", "name": "A", "date_of_birth": "2000-01-01", "address": "x\u2028y"},
            "address: contains characters that are not text",
        ),
        (
            {"type": "add_person", "name": "A", "date_of_birth": "3000-01-01", "address": "x"},
            "date of birth: this date is in the future",
        ),
        (
            {
                "type": "book",
                "contact": "con-000000000000",
                "starts_at": "tomorrow",
                "people": [],
                "main": "x",
            },
            "time: choose a time from the list",
        ),
        ({"type": "slots", "contact": "con-000000000000"}, "your account has not been verified yet"),
        ({"type": "cancel", "call_id": "../../etc"}, "call: not one of yours (choose from the list)"),
    ]
    for message, expected in cases:
        await family.ws.send(message if isinstance(message, str) else json.dumps(message))
        answer = json.loads(await family.ws.recv())
        assert answer["type"] == "error" and answer["message"].startswith(expected), (message, answer)
    assert [p["name"] for p in (await family.ask("status"))["people"]] == ["Jane Smith"]
    await family.ws.send(b"\x00" * 10)
    assert json.loads(await family.ws.recv())["code"] == "unexpected_file"
    site.errors.assert_clean()
    await family.close()


async def test_logout_ends_the_session_at_once(site: Site) -> None:
    family = await registered(site, "bye@example.org")
    assert (await family.ask("status"))["type"] == "ok"
    status, headers, _ = await asyncio.to_thread(
        family._http,
        "POST",
        "/family/logout",
        {"Origin": family.origin, "Cookie": f"family_session={family.cookie}"},
    )
    assert status == 200 and re.search(r"family_session=;.*Max-Age=0", headers["set-cookie"])
    assert (await family.ask("status"))["code"] == "login_required"
    await family.close()
