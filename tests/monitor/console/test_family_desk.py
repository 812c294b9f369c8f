"""The console's families desk end to end: a real server on a real port, its SQLite store, staff
signed in over real HTTP, the desk's real WebSocket and the audited document reads.

Staff of the prison check an account with its ID document beside the face photo (every read in
the audit log first), verify or refuse it; governors alone change settings and grant extra calls
(whatever a page sends); staff of another prison see nothing; bad messages get one clear error and
change nothing. The store's clock is a Monday morning in London (2030-06-03 08:00 BST)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from support.family_site import (
    BIDEN,
    GRACE,
    OBAMA,
    OTHER_PRISON,
    PASSWORD,
    PRISONER,
    Clock,
    MemoryMailer,
    StaffClient,
    pending_family,
    prison_with_staff,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

from monitor.server.serve import Server
from monitor.store import auth
from monitor.store.database import Prisoner, Store
from monitor.store.documents import DocumentVault
from monitor.store.family_accounts import account
from monitor.store.family_contacts import set_prisoner_date_of_birth
from monitor.store.family_requests import request_call
from monitor.store.family_staff import set_role
from monitor.store.prisons import prison
from policies.config import load_policy

pytestmark = pytest.mark.asyncio(loop_scope="module")

LONDON = ZoneInfo("Europe/London")
MONDAY = datetime(2030, 6, 3, 8, 0, tzinfo=LONDON)
CONFIG = load_policy()


@dataclass
class Desk:
    server: Server
    store: Store
    mailer: MemoryMailer
    vault: DocumentVault
    officer: auth.Staff
    governor: auth.Staff

    def staff(self) -> StaffClient:
        return StaffClient(self.server.port)

    async def signed_in(self, username: str) -> StaffClient:
        client = self.staff()
        assert await client.login(username) == 200
        return await client.connect()

    def audit(self, *kinds: str) -> list[tuple[str, str, dict[str, object]]]:
        marks = ", ".join("?" for _ in kinds)
        rows = self.store.db.execute(
            f"SELECT kind, actor, data FROM audit WHERE kind IN ({marks}) ORDER BY id", kinds
        ).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Desk]:
    store = Store(tmp_path_factory.mktemp("desk") / "monitor.db", clock=Clock(MONDAY.timestamp()))
    officer, governor = prison_with_staff(store)
    auth.add_staff(store, "elsewhere", OTHER_PRISON, PASSWORD)
    mailer = MemoryMailer()
    server = Server([], CONFIG, port=0, analysis_workers=0, store=store)
    server.mailer = mailer
    await server.start()
    try:
        yield Desk(server, store, mailer, DocumentVault(store), officer, governor)
    finally:
        await server.stop()
        store.close()


async def test_the_desk_needs_a_console_session_and_an_allowed_origin(desk: Desk) -> None:
    stranger = desk.staff()
    with pytest.raises(InvalidStatus) as refused:
        await stranger.connect()
    assert refused.value.response.status_code == 401
    assert (await stranger.get("/console/api/family/documents/doc-000000000000"))[0] == 401
    officer = desk.staff()
    assert await officer.login("officer") == 200
    with pytest.raises(InvalidStatus) as refused:
        await officer.connect(origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_staff_check_an_account_beside_its_documents_every_read_audited(desk: Desk) -> None:
    account_id, holder, _ = pending_family(desk.store, desk.vault, desk.mailer)
    officer = await desk.signed_in("officer")
    overview = await officer.ask("overview")
    [item] = overview["verification"]
    assert item["account"] == account_id and item["email"] == "jane@example.org"
    assert 24 * 3600 - 60 < item["seconds_left"] <= 24 * 3600 and overview["verification_hours"] == 24
    [person] = item["people"]
    kinds = {d["kind"]: d for d in person["documents"]}
    assert set(kinds) == {"id_document", "proof_of_address"}
    assert kinds["id_document"]["face_distance"] == 0.0  # the same photo as ID and face photo

    before = len(desk.audit("document_viewed", "photo_viewed"))
    status, headers, data = await officer.get(f"/console/api/family/documents/{kinds['id_document']['id']}")
    assert (status, headers["content-type"], data) == (200, "image/jpeg", OBAMA.read_bytes())
    assert (
        headers["cache-control"] == "no-store" and headers["content-security-policy"] == "default-src 'none'"
    )
    status, headers, _ = await officer.get(f"/console/api/family/documents/{kinds['proof_of_address']['id']}")
    assert status == 200 and headers["content-disposition"].startswith("attachment")
    status, headers, data = await officer.get(f"/console/api/family/photos/{holder}")
    assert status == 200 and data[:2] == b"\xff\xd8"
    viewed = desk.audit("document_viewed", "photo_viewed")[before:]
    assert [(k, a) for k, a, _ in viewed] == [
        ("document_viewed", "staff:officer"),
        ("document_viewed", "staff:officer"),
        ("photo_viewed", "staff:officer"),
    ]
    assert viewed[0][2]["sha256"] == kinds["id_document"]["sha256"]

    # staff of another prison: the same answers as for something that does not exist, nothing read
    elsewhere = await desk.signed_in("elsewhere")
    assert (await elsewhere.ask("overview"))["verification"] == []
    assert (await elsewhere.get(f"/console/api/family/documents/{kinds['id_document']['id']}"))[0] == 404
    assert (await elsewhere.get(f"/console/api/family/photos/{holder}"))[0] == 404
    assert (await officer.get("/console/api/family/documents/../../monitor.db"))[0] == 404
    assert len(desk.audit("document_viewed", "photo_viewed")) == before + 3
    refused = await elsewhere.ask("verify", account=account_id)
    assert (refused["type"], refused["code"], refused["message"]) == ("error", "not_found", "no such account")

    empty = await officer.ask("refuse_account", account=account_id, reason="   ")
    assert (empty["code"], empty["message"]) == ("reason", "give a reason: the family is told it")
    assert account(desk.store, account_id).status == "pending"
    assert (await officer.ask("verify", account=account_id))["type"] == "ok"
    assert account(desk.store, account_id).status == "verified"
    assert desk.mailer.last("account_verified")["prison"] == "HMP Example"
    again = await officer.ask("verify", account=account_id)
    assert again["message"] == "this account is verified, not waiting to be checked"
    assert (await officer.ask("overview"))["verification"] == []
    for client in (officer, elsewhere):
        await client.close()


async def test_only_governors_change_settings_and_grant_extra_calls(desk: Desk) -> None:
    officer = await desk.signed_in("officer")
    governor = await desk.signed_in("governor")
    settings = await officer.ask("settings")
    assert settings["role"] == "staff" and settings["month"] == "2030-06"
    assert settings["settings"]["mode"] == "self_select"
    refused = await officer.ask("change_settings", mode="staff_booked")
    assert (refused["code"], refused["message"]) == ("governor_only", "only a governor can do this")
    assert prison(desk.store, "HMP Example").mode == "self_select"
    bad = await governor.ask("change_settings", timetable={"mon": ["09:00", "09:10"]})
    assert bad["code"] == "settings"
    assert bad["message"] == "timetable: mon: calls at 09:00 and 09:10 overlap (each call is 30 minutes)"
    bad = await governor.ask("change_settings", concurrent_calls=0)
    assert bad["message"] == "concurrent calls: must be a whole number from 1 to 50"
    changed = await governor.ask("change_settings", concurrent_calls=3, timetable={"tue": ["10:00", "10:30"]})
    assert changed["settings"]["concurrent_calls"] == 3
    assert changed["settings"]["timetable"] == {"tue": ["10:00", "10:30"]}
    assert desk.audit("prison_settings_changed")[-1][1] == "staff:governor"

    refused = await officer.ask(
        "grant", prisoner=PRISONER[0], month="2030-06", extra_calls=1, reason="welfare"
    )
    assert refused["code"] == "governor_only"
    assert (await governor.ask("grant", prisoner=PRISONER[0], month="2030-06", extra_calls=1, reason="  "))[
        "code"
    ] == "reason"
    granted = await governor.ask(
        "grant", prisoner=PRISONER[0], month="2030-06", extra_calls=2, reason="his mother is ill"
    )
    assert granted["type"] == "ok"
    month = await officer.ask("allowances", month="2030-06")
    [row] = month["prisoners"]
    assert (row["id"], row["free"], row["extra"], row["left"]) == (PRISONER[0], 1, 2, 3)
    assert [(g["extra_calls"], g["reason"], g["governor"]) for g in month["grants"]] == [
        (2, "his mother is ill", "governor")
    ]
    assert desk.audit("allowance_granted")[-1][1:] == (
        "staff:governor",
        {"prisoner": PRISONER[0], "month": "2030-06", "extra_calls": 2},
    )
    await governor.ask("change_settings", concurrent_calls=2, timetable={"mon": ["09:00"]})
    for client in (officer, governor):
        await client.close()


async def test_a_staff_booked_prisons_request_is_booked_or_declined_on_the_desk(desk: Desk) -> None:
    officer = await desk.signed_in("officer")
    governor = await desk.signed_in("governor")
    account_id, holder, contact = pending_family(
        desk.store, desk.vault, desk.mailer, "ask@example.org", BIDEN
    )
    assert (await officer.ask("verify", account=account_id))["type"] == "ok"
    assert (await governor.ask("change_settings", mode="staff_booked"))["type"] == "ok"
    thursday = datetime(2030, 6, 6, 10, 0, tzinfo=LONDON)
    request = request_call(desk.store, account_id, contact, [holder], holder, [thursday], "mornings", CONFIG)
    [item] = (await officer.ask("overview"))["requests"]
    assert item["id"] == request and item["preferred"] == [thursday.isoformat()]
    bad = await officer.ask("book_request", request=request, starts_at="2030-06-31T10:00")
    assert bad["message"] == "starts_at: 2030-06-31T10:00 is not a real date and time"
    booked = await officer.ask("book_request", request=request, starts_at="2030-06-06T10:30")
    assert booked["type"] == "ok" and booked["starts_at"] == "2030-06-06T10:30:00+01:00"
    mailed = desk.mailer.last("call_booked", "ask@example.org")
    assert mailed["starts_at"] == "2030-06-06T10:30:00+01:00"
    assert mailed["links"][0]["url"].startswith(f"http://127.0.0.1:{desk.server.port}/join/")
    closed = await officer.ask("decline_request", request=request, reason="no")
    assert closed["message"] == "this request is already booked"
    second = request_call(desk.store, account_id, contact, [holder], holder, [thursday], "", CONFIG)
    declined = await officer.ask("decline_request", request=second, reason="no calls that week")
    assert declined["type"] == "ok"
    assert desk.mailer.last("request_declined", "ask@example.org")["reason"] == "no calls that week"
    assert (await governor.ask("change_settings", mode="self_select"))["type"] == "ok"
    for client in (officer, governor):
        await client.close()


def grant(**changes: object) -> str:
    return json.dumps(
        {"type": "grant", "prisoner": "A1", "month": "2030-06", "extra_calls": 1, "reason": "r", **changes}
    )


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a message must be a JSON object"),
        (json.dumps({"type": "delete_everything"}), "type: must be one of overview"),
        (json.dumps({"type": "verify", "account": "fam-1", "ref": "r"}), "account: not one from the list"),
        (json.dumps({"type": "verify"}), "account: missing"),
        (json.dumps({"type": "verify", "account": "fam-0000000000aa", "x": 1}), "x: unknown field"),
        (grant(prisoner="A 1"), "prisoner: a prison number from the list"),
        (grant(month="June"), "month: give a month as YYYY-MM"),
        (grant(extra_calls=True), "extra_calls: a whole number"),
        (json.dumps({"type": "change_settings"}), "change_settings: give at least one of mode"),
        (json.dumps({"type": "refuse_person", "person": "per-000000000000", "reason": "a\u0000b"}),
         "reason: contains characters that are not text"),
    ],
)  # fmt: skip
async def test_a_bad_message_gets_one_clear_error_and_the_desk_goes_on(
    desk: Desk, frame: str, words: str
) -> None:
    officer = await desk.signed_in("officer")
    before = desk.store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    await officer.ws.send(frame)
    answer = json.loads(await officer.ws.recv())
    assert answer["type"] == "error" and answer["code"] == "bad_message", answer
    assert words in answer["message"], answer
    assert (await officer.ask("overview"))["type"] == "ok"  # still open
    assert desk.store.db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
    await officer.close()


def snapshot(desk: Desk) -> tuple[object, ...]:
    """What a refused decision must leave as it was (the store, and nothing mailed)."""
    store = desk.store
    counts = tuple(
        store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("audit", "allowance_grants", "bookings", "visitor_list", "mail_queue")
    )
    statuses = store.db.execute(
        "SELECT (SELECT group_concat(status) FROM family_accounts), (SELECT group_concat(status) FROM"
        " family_contacts), (SELECT group_concat(status) FROM call_requests)"
    ).fetchone()
    settings = store.db.execute("SELECT * FROM prisons ORDER BY name").fetchall()
    return counts, tuple(statuses), [tuple(row) for row in settings], len(desk.mailer.messages)


async def test_bad_decisions_get_one_clear_message_and_change_nothing(desk: Desk) -> None:
    account_id, holder, contact = pending_family(
        desk.store, desk.vault, desk.mailer, "odd@example.org", GRACE
    )
    set_role(desk.store, "elsewhere", "governor")  # a governor, of another prison
    officer, governor, elsewhere = [await desk.signed_in(n) for n in ("officer", "governor", "elsewhere")]
    grant: dict[str, object] = {
        "prisoner": PRISONER[0],
        "month": "2030-06",
        "extra_calls": 1,
        "reason": "welfare",
    }
    extra = "extra calls: a whole number from 1 to 31"
    nobody = "req-000000000000"
    cases: list[tuple[StaffClient, str, dict[str, object], str, str]] = [
        (officer, "refuse_account", {"account": account_id, "reason": "x" * 501}, "reason",
         "the reason can be at most 500 characters"),
        (elsewhere, "refuse_account", {"account": account_id, "reason": "no"}, "not_found",
         "no such account"),
        (elsewhere, "approve_contact", {"contact": contact}, "not_found", "no such contact"),
        (officer, "approve_contact", {"contact": contact}, "not_verified",
         "check the account first (the verification queue)"),
        (elsewhere, "approve_person", {"person": holder}, "not_found", "no such person"),
        (elsewhere, "grant", grant, "not_found", "no such prisoner"),
        (governor, "grant", {**grant, "extra_calls": 0}, "extra_calls", extra),
        (governor, "grant", {**grant, "extra_calls": 32}, "extra_calls", extra),
        (governor, "grant", {**grant, "month": "2030-13"}, "month", "a month is YYYY-MM, e.g. 2026-06"),
        (governor, "change_settings", {"time_zone": "Mars/Base"}, "settings",
         "time zone 'Mars/Base': not a known time zone (e.g. Europe/London)"),
        (governor, "change_settings", {"mode": "lottery"}, "settings",
         "mode 'lottery': must be self_select or staff_booked"),
        (governor, "change_settings", {"cancel_cutoff_hours": 0}, "settings",
         "cancel cut-off: must be a number of hours from 1 to 336"),
        (governor, "change_settings", {"concurrent_calls": "2"}, "settings",
         "concurrent calls: must be a whole number from 1 to 50"),
        (governor, "change_settings", {"timetable": ["09:00"]}, "settings",
         'timetable: the timetable must list start times per day, e.g. {"mon": ["09:00"]}'),
        (officer, "book_request", {"request": nobody, "starts_at": "2030-06-06T10:00"}, "no_request",
         "no such request"),
        (officer, "decline_request", {"request": nobody, "reason": "no"}, "not_found", "no such request"),
    ]  # fmt: skip
    before = snapshot(desk)
    for client, message, fields, code, words in cases:
        answer = await client.ask(message, **fields)
        assert (answer["type"], answer["code"], answer["message"]) == ("error", code, words), (
            message,
            answer,
        )
    assert snapshot(desk) == before
    assert account(desk.store, account_id).status == "pending"
    for client in (officer, governor, elsewhere):
        await client.close()


async def test_two_staff_booking_the_last_place_at_once_get_one_call(desk: Desk) -> None:
    """Two requests, for two prisoners, booked into the prison's one place at the same moment by
    two members of staff: one call, and one "already has 1 calls at that time"."""
    officer, governor = await desk.signed_in("officer"), await desk.signed_in("governor")
    requests = []
    for number, name, born, email, photo in (
        ("C1111EE", "Carl Ray", "1970-07-07", "carl@example.org", OBAMA),
        ("D2222FF", "Dan Roe", "1971-08-08", "dan@example.org", BIDEN),
    ):
        desk.store.add_prisoner(Prisoner(number, name, "HMP Example"))
        set_prisoner_date_of_birth(desk.store, number, born)
        account_id, holder, contact = pending_family(
            desk.store, desk.vault, desk.mailer, email, photo, prisoner=(number, name, born)
        )
        assert (await officer.ask("verify", account=account_id))["type"] == "ok"
        requests.append((account_id, holder, contact))
    assert (await governor.ask("change_settings", mode="staff_booked", concurrent_calls=1))["type"] == "ok"
    try:
        friday = datetime(2030, 6, 7, 16, 0, tzinfo=LONDON)
        ids = [request_call(desk.store, a, c, [h], h, [friday], "", CONFIG) for a, h, c in requests]
        answers = await asyncio.gather(
            officer.ask("book_request", request=ids[0], starts_at="2030-06-07T16:00"),
            governor.ask("book_request", request=ids[1], starts_at="2030-06-07T16:00"),
        )
        assert sorted(a["type"] for a in answers) == ["error", "ok"], answers
        refused = next(a for a in answers if a["type"] == "error")
        assert (refused["code"], refused["message"]) == (
            "slot_taken",
            "HMP Example already has 1 calls at that time",
        )
        at_four = desk.store.bookings_between(friday.timestamp(), friday.timestamp() + 1, "HMP Example")
        assert len(at_four) == 1
        statuses = desk.store.db.execute(
            f"SELECT status FROM call_requests WHERE id IN ('{ids[0]}', '{ids[1]}') ORDER BY status"
        ).fetchall()
        assert [r[0] for r in statuses] == ["booked", "open"]
    finally:
        assert (await governor.ask("change_settings", mode="self_select", concurrent_calls=2))["type"] == "ok"
    for client in (officer, governor):
        await client.close()


async def test_an_oversized_frame_is_refused_from_its_header(desk: Desk) -> None:
    officer = await desk.signed_in("officer")
    await officer.ws.send(json.dumps({"type": "overview", "pad": "x" * 17000}))
    with pytest.raises(ConnectionClosed):
        await officer.ws.recv()
    assert officer.ws.close_code == 1009


async def test_signing_out_ends_the_desk(desk: Desk) -> None:
    officer = await desk.signed_in("officer")
    assert (await officer.ask("overview"))["type"] == "ok"
    assert officer.cookie is not None
    auth.logout(desk.store, officer.cookie)
    await officer.ws.send(json.dumps({"type": "overview"}))
    with pytest.raises(ConnectionClosed):
        await officer.ws.recv()
    assert officer.ws.close_code == 4401
    assert (await officer.get("/console/api/family/photos/per-000000000000"))[0] == 401
