"""The live feed and staff actions over /console/ws, against real calls (policy session, hub,
audit recorder) and the real store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from console_site import Site, next_message, records_until

from monitor.mail import AddressConfirmation, queue_mail
from monitor.mail.outbox import OutboxTransport
from monitor.mail.sender import Backoff, MailSender
from monitor.mail.settings import DEFAULT_FROM
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.events import CaptureAttempt


async def console(site: Site, user: str = "alice", after: int | None = None):  # type: ignore[no-untyped-def]
    ws = await site.ws(await site.login(user))
    await ws.send(json.dumps({"type": "hello", "after": after}))
    await next_message(ws, "welcome")
    return ws


async def test_alert_reaches_the_console_with_the_state_change(site: Site) -> None:
    ws = await console(site)
    call = site.start_call(site.bookings["call-ex"])
    await records_until(ws, lambda r: r["kind"] == "state" and r["data"]["state"] == "verifying")
    started = time.perf_counter()
    await call.handle(CaptureAttempt(call.now(), "v1", "screen recording"))
    got = await records_until(ws, lambda r: r["kind"] == "alert")
    latency = time.perf_counter() - started
    print(f"alert delivered to the console {latency * 1000:.0f} ms after the decision")
    alert = next(r for r in got if r["kind"] == "alert")
    assert alert["call_id"] == "call-ex" and alert["data"]["reason"] == "capture_attempt"
    assert alert["data"]["needs_staff"] is True and alert["actor"] == "policy"
    paused = next(r for r in got if r["kind"] == "state" and r["data"]["state"] == "paused")
    assert paused["data"]["reasons"] == ["capture_attempt"]
    # the store agrees, and the chain holds
    cookie = await site.login("alice")
    board = (await site.get("/console/api/calls", cookie)).json()["calls"]
    row = next(c for c in board if c["call_id"] == "call-ex")
    assert row["state"] == "paused" and row["unacknowledged"] == 1 and row["running"]
    assert AuditLog(site.store).verify().ok
    await ws.close()


async def test_reconnecting_console_gets_what_it_missed_from_the_store(site: Site) -> None:
    ws = await console(site, after=0)
    seen = (await next_message(ws, "records"))["records"]
    last = max((r["audit_id"] for r in seen), default=0)
    await ws.close()
    # written while the console was away, through another connection to the database file
    with Store(site.store.location) as other:
        log = AuditLog(other)
        missed = [
            log.append("alert", {"reason": reason, "t": 3.0}, prison="HMP Example", call_id="call-ex").id
            for reason in ("unbooked_face", "face_not_visible")
        ]
        log.append("alert", {"reason": "no_face"}, prison="HMP Other", call_id="call-other")
    ws = await console(site, after=last)
    backlog = await next_message(ws, "records")
    assert backlog["backlog"] is True
    assert [r["audit_id"] for r in backlog["records"] if r["kind"] == "alert"] == missed
    assert {r["prison"] for r in backlog["records"]} == {"HMP Example"}
    await ws.close()


async def test_staff_pause_approve_resume_and_end(site: Site) -> None:
    ws = await console(site)
    call = site.start_call(site.bookings["call-ex"])
    await records_until(ws, lambda r: r["kind"] == "state" and r["data"]["state"] == "verifying")

    await ws.send(
        json.dumps({"type": "pause", "call_id": "call-ex", "note": "inappropriate gesture", "ref": "p1"})
    )
    done = await next_message(ws, "done")
    assert done["ref"] == "p1"
    got = await records_until(ws, lambda r: r["kind"] == "state" and r["data"]["state"] == "paused")
    if not any(r["kind"] == "alert" for r in got):  # the pause's alert may be committed a batch later
        got += await records_until(ws, lambda r: r["kind"] == "alert")
    assert any(r["kind"] == "alert" and r["data"]["reason"] == "staff_pause" for r in got)
    action = next(r for r in got if r["kind"] == "staff_action")
    assert action["actor"] == "staff:alice" and action["data"] == {
        "action": "pause",
        "note": "inappropriate gesture",
    }
    assert str(call.state) == "paused" and call.last_reasons == ("staff_pause",)

    await ws.send(json.dumps({"type": "resume", "call_id": "call-ex"}))
    await next_message(ws, "done")
    got = await records_until(ws, lambda r: r["kind"] == "staff_action")
    assert got[-1]["data"]["action"] == "approve_resume" or any(
        r["kind"] == "staff_action" and r["data"]["action"] == "approve_resume" for r in got
    )
    # approved before the security check passed (nobody is on camera here): the call stays paused
    # and resumes by itself once the check passes, so a second approval is refused
    assert str(call.state) == "paused"
    cookie = await site.login("alice")
    opened = (await site.get("/console/api/calls/call-ex", cookie)).json()
    assert opened["resume"] == "automatic"
    await ws.send(json.dumps({"type": "resume", "call_id": "call-ex", "ref": "r2"}))
    refused = await next_message(ws, "error")
    assert refused["ref"] == "r2" and "nothing to approve" in refused["message"], refused

    await ws.send(json.dumps({"type": "end", "call_id": "call-ex", "note": "ended by staff"}))
    await next_message(ws, "done")
    got = await records_until(ws, lambda r: r["kind"] == "state" and r["data"]["state"] == "ended")
    ended = next(r for r in got if r["kind"] == "state" and r["data"]["state"] == "ended")
    assert ended["data"]["reasons"] == ["staff_end"]
    await asyncio.wait_for(call.ended.wait(), 5)

    await ws.send(json.dumps({"type": "pause", "call_id": "call-ex", "note": "too late"}))
    assert (await next_message(ws, "error"))["message"] == "this call is not running now"
    cookie = await site.login("alice")
    history = (await site.get("/console/api/calls/call-ex", cookie)).json()
    kinds = [(r["kind"], r["data"].get("state") or r["data"].get("action")) for r in history["records"]]
    assert ("staff_action", "pause") in kinds and ("state", "ended") in kinds
    assert history["state"] == "ended" and history["running"] is False
    await ws.close()


async def test_acknowledging_an_alert(site: Site) -> None:
    alert = AuditLog(site.store).append(
        "alert", {"reason": "unbooked_face"}, prison="HMP Example", call_id="call-ex"
    )
    ws = await console(site, after=0)
    await ws.send(json.dumps({"type": "ack", "audit_id": alert.id}))
    assert (await next_message(ws, "done"))["message"] == f"alert {alert.id} acknowledged"
    got = await records_until(ws, lambda r: r["kind"] == "staff_action")
    assert got[-1]["data"] == {"action": "acknowledge", "alert_id": alert.id}
    cookie = await site.login("alice")
    history = (await site.get("/console/api/calls/call-ex", cookie)).json()
    assert history["acknowledged"] == [alert.id] and history["unacknowledged"] == 0
    await ws.send(json.dumps({"type": "ack", "audit_id": got[-1]["audit_id"]}))  # not an alert
    assert (await next_message(ws, "error"))["message"] == "no such alert"
    await ws.close()


async def test_bad_messages_get_one_clear_error_and_the_feed_goes_on(site: Site) -> None:
    ws = await console(site)
    for raw, expected in (
        ("not json", "not valid JSON"),
        ("[1, 2]", "a message must be a JSON object"),
        ('{"type": "launch"}', "type: must be one of"),
        ('{"type": "pause", "call_id": "call-ex"}', "note: must not be empty"),
        ('{"type": "pause", "call_id": "call-ex", "note": "x", "extra": 1}', "extra: unknown field"),
        ('{"type": "ack", "audit_id": "7"}', "audit_id: must be a whole number"),
        ('{"type": "hello", "after": 0}', "already said hello"),
        ('{"type": "pause", "call_id": "call-ex", "note": "' + "x" * 5000 + '"}', "message too large"),
        ('{"type": "resume", "call_id": "call-ex"}', "this call is not running now"),
        ('{"type": "resume", "call_id": "nope"}', "no such call"),
    ):
        await ws.send(raw)
        assert expected in (await next_message(ws, "error"))["message"]
    await ws.send(b"\x00binary")
    assert "binary" in (await next_message(ws, "error"))["message"]
    AuditLog(site.store).append("alert", {"reason": "no_face"}, prison="HMP Example", call_id="call-ex")
    assert (await records_until(ws, lambda r: r["kind"] == "alert"))[-1]["data"]["reason"] == "no_face"
    await ws.close()


async def test_a_console_that_keeps_sending_garbage_is_disconnected(site: Site) -> None:
    from websockets.exceptions import ConnectionClosed

    from monitor.console.feed import MAX_BAD_FRAMES

    for said_hello in (False, True):
        ws = await console(site) if said_hello else await site.ws(await site.login("alice"))
        good = {"type": "resume", "call_id": "nope"} if said_hello else {"type": "ack", "audit_id": 1}
        answer = "no such call" if said_hello else "send hello first"
        for i in range(MAX_BAD_FRAMES + 5):
            if i == 5:  # a well-formed frame in between starts the count again
                await ws.send(json.dumps(good))
                assert (await next_message(ws, "error"))["message"] == answer
            await ws.send("not json")
            assert "not valid JSON" in (await next_message(ws, "error"))["message"]
        try:  # the last frame was the MAX_BAD_FRAMES-th bad one in a row
            await asyncio.wait_for(ws.recv(), 5.0)
            raise AssertionError("still connected after too many bad frames")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1008


async def test_console_must_say_hello_first(site: Site) -> None:
    ws = await site.ws(await site.login("alice"))
    await ws.send(json.dumps({"type": "ack", "audit_id": 1}))
    assert (await next_message(ws, "error"))["message"] == "send hello first"
    await ws.send(json.dumps({"type": "hello", "after": None}))
    assert (await next_message(ws, "welcome"))["username"] == "alice"
    await ws.close()


async def test_an_email_the_sender_gave_up_on_is_an_alert_staff_acknowledge(
    site: Site, tmp_path: Path
) -> None:
    blocked = tmp_path / "outbox"
    blocked.write_text("a file where the outbox folder should be")
    sender = MailSender(
        site.store, OutboxTransport(blocked), mail_from=DEFAULT_FROM, backoff=Backoff(attempts=1)
    )
    confirm = AddressConfirmation("Ann", "https://calls.example.org/family/confirm/abc")
    queue_mail(site.store, "ann@example.org", confirm, prison="HMP Example")
    assert await sender.send_due() == 1
    ws = await console(site, after=0)
    got = await records_until(ws, lambda r: r["kind"] == "mail_failed")
    failed = next(r for r in got if r["kind"] == "mail_failed")
    assert failed["call_id"] is None and failed["actor"] == "system"
    assert failed["data"]["detail"].startswith(
        "An email to a family (address confirmation) could not be sent"
    )
    await ws.send(json.dumps({"type": "ack", "audit_id": failed["audit_id"]}))
    assert (await next_message(ws, "done"))["message"] == f"alert {failed['audit_id']} acknowledged"
    await ws.close()
