"""Staff verdicts on an undecided face over /console/ws and the reference photos behind them, against
a real call (policy session, hub, audit recorder), the real store and a real server on loopback.

The call's camera is not analysed here (no worker pool): its observations (a face that identity
sampled three times without deciding, as monitor/analysis reports one) go into the real call, as
the other feed tests feed it a capture attempt. The analysed path end to end is the browser test's
(tests/browser/test_console_identity_e2e.py) and the golden replays' (fixtures ``undecided*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from console_site import Site, booking_now, next_message, records_until, reply_to
from websockets.asyncio.client import ClientConnection

from monitor.admin import import_booking
from monitor.call.call import Call
from monitor.store.audit import AuditLog
from policies.config import load_policy
from policies.decisions import State
from policies.events import Face, Observation, Verdict
from policies.session import RefusedEvent

WINDOW_S = 0.5  # identity_unconfirmed_after_s for these calls (the default 4 s only slows the test)


async def console(site: Site, user: str = "alice") -> ClientConnection:
    ws = await site.ws(await site.login(user))
    await ws.send(json.dumps({"type": "hello", "after": None}))
    await next_message(ws, "welcome")
    return ws


def start_call(site: Site, call_id: str) -> Call:
    config = dataclasses.replace(load_policy(), identity_unconfirmed_after_s=WINDOW_S)
    call = Call(site.bookings[call_id], config, wall_clock=time.time, hub=site.hub)
    site.calls.add(call)
    call.start()
    return call


@contextlib.asynccontextmanager
async def camera(call: Call, track: int = 2) -> AsyncIterator[None]:
    """The visitor's camera shows one face, ``track``, that identity sampled three times without
    deciding (0.53 from the booked man), ten observations a second."""
    face = Face(track, Verdict.PENDING, "v1", 0.53, samples=3)

    async def observe() -> None:
        while call.state is not State.ENDED:
            await call.handle(Observation(call.now(), "v1", faces=(face,)))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(observe())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def undecided_alert(ws: ClientConnection) -> dict[str, Any]:
    got = await records_until(ws, lambda r: r["kind"] == "alert", timeout=10)
    alert = next(r for r in got if r["kind"] == "alert")
    assert alert["data"]["reason"] == "identity_unconfirmed", alert
    return alert


async def test_staff_see_the_booked_photos_and_confirm_the_face(site: Site) -> None:
    ws = await console(site)
    call = start_call(site, "call-ex")
    async with camera(call):
        alert = await undecided_alert(ws)
        assert alert["data"]["track"] == 2 and alert["data"]["participant"] == "v1"
        assert str(call.state) == "paused" and call.last_reasons == ("identity_unconfirmed",)

        # what staff are shown: the people booked on the visitor side, their photos by digest
        cookie = await site.login("alice")
        face = (await site.get(f"/console/api/identity/{alert['audit_id']}", cookie)).json()
        photo = site.bookings["call-ex"].participants[0].reference_photos[0]
        digest = hashlib.sha256(photo.read_bytes()).hexdigest()
        assert face == {
            "alert_id": alert["audit_id"],
            "call_id": "call-ex",
            "source": "v1",
            "track": 2,
            "side": "visitor",
            "closest": "v1",
            "evidence": None,  # this call analyses no camera, so it keeps no frame
            "people": [
                {"id": "v1", "name": "Daniel Park", "photos": [f"/console/api/reference/call-ex/v1/{digest}"]}
            ],
        }
        served = await site.get(face["people"][0]["photos"][0], cookie)
        assert served.status == 200 and served.headers["content-type"] == "image/jpeg"
        assert served.body == photo.read_bytes()

        # a person not booked on that side is refused by the console; the booked visitor is taken
        reply = await reply_to(
            ws, {"type": "confirm_identity", "alert_id": alert["audit_id"], "participant": "A1234BC"}
        )
        assert reply == {
            "type": "error",
            "message": "A1234BC is not booked on the visitor side of this call",
            "ref": None,
        }
        reply = await reply_to(
            ws, {"type": "confirm_identity", "alert_id": alert["audit_id"], "participant": "v1", "ref": "c1"}
        )
        assert reply["type"] == "done" and reply["ref"] == "c1", reply
        assert reply["message"] == "face 2 on v1 confirmed as v1 (call-ex)"
        got = await records_until(
            ws, lambda r: r["kind"] == "state" and r["data"]["state"] == "live", timeout=10
        )
    action = next(r for r in got if r["kind"] == "staff_action")
    assert action["actor"] == "staff:alice" and action["data"] == {
        "action": "confirm_identity",
        "alert_id": alert["audit_id"],
        "source": "v1",
        "track": 2,
        "participant": "v1",
        "evidence": None,
        "reference_photos": {"v1": [digest]},
    }
    identity = next(r for r in got if r["kind"] == "identity")
    assert identity["data"]["participant"] == "v1" and identity["data"]["track"] == 2
    assert identity["audit_id"] > action["audit_id"]  # the verdict is recorded before it is applied
    # answering the alert is acknowledging it
    history = (await site.get("/console/api/calls/call-ex", cookie)).json()
    assert alert["audit_id"] in history["acknowledged"]
    assert AuditLog(site.store).verify().ok
    await ws.close()


async def test_staff_reject_the_face_and_the_call_pauses_as_unbooked(site: Site) -> None:
    ws = await console(site)
    call = start_call(site, "call-ex")
    async with camera(call, track=5):
        alert = await undecided_alert(ws)
        reply = await reply_to(ws, {"type": "reject_identity", "alert_id": alert["audit_id"]})
        assert reply["type"] == "done" and reply["message"] == "face 5 on v1 rejected as not booked (call-ex)"
        got = await records_until(
            ws, lambda r: r["kind"] == "alert" and r["data"]["reason"] == "unbooked_face", timeout=10
        )
    unbooked = next(r for r in got if r["kind"] == "alert" and r["data"]["reason"] == "unbooked_face")
    assert unbooked["data"]["track"] == 5
    assert str(call.state) == "paused"  # and stays so: the face is nobody booked for the rest of the call
    action = next(r for r in got if r["kind"] == "staff_action")
    assert action["data"]["action"] == "reject_identity" and "participant" not in action["data"]
    await ws.close()


async def test_verdicts_that_cannot_apply_are_refused_with_the_reason(site: Site) -> None:
    log = AuditLog(site.store)
    ws = await console(site)
    # not an undecided-face alert, another prison's alert, an alert that names no face
    capture = log.append(
        "alert", {"reason": "capture_attempt", "source": "v1"}, prison="HMP Example", call_id="call-ex"
    )
    other = log.append(
        "alert",
        {"reason": "identity_unconfirmed", "source": "v1", "track": 1},
        prison="HMP Other",
        call_id="call-other",
    )
    faceless = log.append(
        "alert", {"reason": "identity_unconfirmed", "source": "v1"}, prison="HMP Example", call_id="call-ex"
    )
    for alert_id, message in (
        (capture.id, "only a 'face not confirmed' alert can be confirmed or rejected"),
        (other.id, "no such alert"),
        (faceless.id, "this alert names no face track"),
        (10**9, "no such alert"),
    ):
        assert (await reply_to(ws, {"type": "reject_identity", "alert_id": alert_id}))["message"] == message
    # a face of a device the running call has never had: the session refuses it, and the record
    # of the verdict is followed by one saying it was not applied
    call = start_call(site, "call-ex")
    stranger = log.append(
        "alert",
        {"reason": "identity_unconfirmed", "source": "tablet", "track": 1},
        prison="HMP Example",
        call_id="call-ex",
    )
    await records_until(ws, lambda r: r["audit_id"] == stranger.id)
    reply = await reply_to(ws, {"type": "confirm_identity", "alert_id": stranger.id, "participant": "v1"})
    assert reply == {"type": "error", "message": "not applied: no device 'tablet' on this call", "ref": None}
    await records_until(
        ws, lambda r: r["kind"] == "staff_action" and r["data"]["action"] == "identity_refused"
    )
    said = [r.data for r in log.for_call("call-ex") if r.kind == "staff_action"]
    assert [d["action"] for d in said] == ["confirm_identity", "identity_refused"]
    assert said[1] == {
        "action": "identity_refused",
        "alert_id": stranger.id,
        "reason": "no device 'tablet' on this call",
    }
    # once the call has ended, nothing is sent to it
    await call.staff_end("done", "alice")
    reply = await reply_to(ws, {"type": "reject_identity", "alert_id": stranger.id})
    assert reply["message"] == "this call is not running now"
    with pytest.raises(RefusedEvent, match="the call has ended"):  # nor would the call take it
        await call.staff_reject_identity("v1", 1, "alice")
    await ws.close()


async def test_reference_photos_only_for_staff_of_that_prison_and_as_enrolled(
    site: Site, tmp_path: Path
) -> None:
    # a call whose visitor's photo is a copy the test may change on disk after it was stored
    base = booking_now("call-copy", prisoner="B2222BB")
    photo = tmp_path / "v7.jpg"
    shutil.copyfile(base.participants[0].reference_photos[0], photo)
    visitor = dataclasses.replace(base.participants[0], id="v7", reference_photos=(photo,))
    import_booking(site.store, dataclasses.replace(base, participants=(visitor,)))
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    url = f"/console/api/reference/call-copy/v7/{digest}"
    alice, bob = await site.login("alice"), await site.login("bob")
    assert (await site.get(url, alice)).status == 200
    assert (await site.get(url)).status == 401
    for path, cookie in (
        (url, bob),  # another prison's staff: as if there were no such photo
        (f"/console/api/reference/call-copy/v1/{digest}", alice),  # a person not booked on that call
        (f"/console/api/reference/call-ex/v7/{digest}", alice),  # v7 is not booked on call-ex
        (f"/console/api/reference/call-copy/v7/{'0' * 64}", alice),
        ("/console/api/reference/call-copy/v7/../../etc", alice),
        ("/console/api/reference/call-copy/v7", alice),
        ("/console/api/identity/abc", alice),
        ("/console/api/identity/999999", alice),
    ):
        assert (await site.get(path, cookie)).status == 404, path
    photo.write_bytes(photo.read_bytes() + b"\0")  # no longer the photo that was enrolled
    assert (await site.get(url, alice)).status == 404
