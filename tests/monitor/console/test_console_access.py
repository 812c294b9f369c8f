"""Access control for every /console endpoint and the console WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from console_site import MEDIA_JPEG, Site, next_message
from websockets.exceptions import ConnectionClosed, InvalidStatus

from monitor.store import auth
from monitor.store.audit import AuditLog

DATA_ENDPOINTS = (
    "/console/api/me",
    "/console/api/calls",
    "/console/api/calls?day=2026-12-01",
    "/console/api/calls/call-ex",
    "/console/api/calls/call-other",
    "/console/api/calls/no-such-call",
    "/console/api/evidence/" + "0" * 64 + ".jpg",
)
SECRETS = (b"call-ex", b"call-other", b"A1234BC", b"Daniel", b"John Smith", b"HMP")


def learns_nothing(body: bytes | bytearray) -> bool:
    return not any(secret in body for secret in SECRETS)


OTHER_JPEG = MEDIA_JPEG.parents[1] / "face_recognition" / "biden.jpg"


async def add_evidence(site: Site, prison: str, call_id: str) -> str:
    jpeg = (MEDIA_JPEG if prison == "HMP Example" else OTHER_JPEG).read_bytes()
    record = AuditLog(site.store).append(
        "alert", {"reason": "unbooked_face"}, prison=prison, call_id=call_id, evidence=jpeg
    )
    assert record.evidence
    return record.evidence


@pytest.mark.parametrize("path", DATA_ENDPOINTS)
async def test_data_endpoints_refuse_without_a_session(site: Site, path: str) -> None:
    await add_evidence(site, "HMP Example", "call-ex")
    for cookie in (None, "forged-token", "x" * 500):
        reply = await site.get(path, cookie)
        assert reply.status == 401
        assert learns_nothing(reply.body)
        assert "set-cookie" not in reply.headers


async def test_public_page_and_scripts_carry_no_data(site: Site) -> None:
    for path in ("/console", "/console/static/console.js", "/console/static/console.css"):
        reply = await site.get(path)
        assert reply.status == 200 and learns_nothing(reply.body)
        assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert (await site.get("/console/static/../store.py")).status == 404
    assert (await site.get("/console/static/nothing.js")).status == 404


async def test_login_sets_a_strict_http_only_cookie(site: Site) -> None:
    reply = await site.login_reply("alice")
    assert reply.status == 200 and reply.json() == {"username": "alice", "prison": "HMP Example"}
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; TLS adds it


async def test_bad_logins_are_refused_alike_and_rate_limited(site: Site) -> None:
    wrong = await site.login_reply("alice", "wrong password")
    unknown = await site.login_reply("mallory", "wrong password")
    assert wrong.status == unknown.status == 401 and wrong.body == unknown.body
    assert (await site.post("/console/login", Origin=site.origin)).status == 401
    garbage = await site.post("/console/login", Authorization="Basic !!!", Origin=site.origin)
    assert garbage.status == 401
    for _ in range(auth.FREE_FAILURES - 1):  # with the wrong one above: the free failures
        await site.login_reply("alice", "guess")
    limited = await site.login_reply("alice")  # right password, still refused: this address waits
    assert limited.status == 429 and limited.headers["retry-after"] == "1"
    assert limited.json() == {"error": "too many failed sign-ins from this address; try again in 1 s"}
    assert (await site.login_reply("bob")).status == 200  # other accounts unaffected


async def test_login_and_logout_check_origin(site: Site) -> None:
    basic = "Basic " + __import__("base64").b64encode(b"alice:correct horse battery").decode()
    evil = await site.post("/console/login", Authorization=basic, Origin="http://evil.example")
    assert evil.status == 403
    cookie = await site.login("alice")
    assert (await site.post("/console/logout", cookie, Origin="http://evil.example")).status == 403
    assert (await site.get("/console/api/me", cookie)).status == 200


async def test_staff_see_only_their_prison(site: Site) -> None:
    ex_digest = await add_evidence(site, "HMP Example", "call-ex")
    other_digest = await add_evidence(site, "HMP Other", "call-other")
    bob = await site.login("bob")
    board = (await site.get("/console/api/calls", bob)).json()
    assert [c["call_id"] for c in board["calls"]] == ["call-other"]
    refused = await site.get("/console/api/calls/call-ex", bob)
    missing = await site.get("/console/api/calls/no-such-call", bob)
    assert refused.status == missing.status == 404 and refused.body == missing.body
    assert (await site.get(f"/console/api/evidence/{ex_digest}.jpg", bob)).status == 404
    own = await site.get(f"/console/api/evidence/{other_digest}.jpg", bob)
    assert (
        own.status == 200
        and own.headers["content-type"] == "image/jpeg"
        and own.body == OTHER_JPEG.read_bytes()
    )
    alice = await site.login("alice")
    history = (await site.get("/console/api/calls/call-ex", alice)).json()
    assert history["prisoner"]["name"] == "John Smith" and history["records"][0]["evidence"] == ex_digest


async def test_expired_reused_and_revoked_sessions_are_refused(site: Site) -> None:
    cookie = await site.login("alice")
    assert (await site.get("/console/api/me", cookie)).status == 200
    site.clock.skew = auth.SESSION_S + 1
    assert (await site.get("/console/api/me", cookie)).status == 401  # expired
    site.clock.skew = 0
    cookie = await site.login("alice")
    assert (await site.post("/console/logout", cookie, Origin=site.origin)).status == 200
    assert (await site.get("/console/api/calls", cookie)).status == 401  # reused after logout
    cookie = await site.login("alice")
    auth.set_disabled(site.store, "alice", True)
    assert (await site.get("/console/api/calls", cookie)).status == 401  # account disabled


async def refused(
    site: Site, cookie: str | None, origin: str | None = None, path: str = "/console/ws"
) -> int:
    """The HTTP status a WebSocket handshake is refused with (it must be refused: no socket)."""
    with pytest.raises(InvalidStatus) as refusal:
        ws = await site.ws(cookie, origin=origin, path=path)
        await ws.close()
    reply = refusal.value.response
    assert learns_nothing(reply.body) and "set-cookie" not in reply.headers
    return reply.status_code


@pytest.mark.parametrize("path", ["/console/ws", "/console/watch"])
async def test_websockets_are_refused_at_the_handshake_without_session_or_from_another_origin(
    site: Site, path: str
) -> None:
    await add_evidence(site, "HMP Example", "call-ex")
    for cookie in (None, "forged-token"):
        assert await refused(site, cookie, path=path) == 401
    alice = await site.login("alice")
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{site.port}", "http://127.0.0.1"):
        assert await refused(site, alice, origin=origin, path=path) == 403
    assert await refused(site, None, origin="http://evil.example", path=path) == 403
    ws = await site.ws(alice, path=path)  # the same session from the console's own origin gets in
    await ws.close()


async def test_websocket_of_other_prison_gets_none_of_its_records(site: Site) -> None:
    bob = await site.login("bob")
    ws = await site.ws(bob)
    await ws.send(json.dumps({"type": "hello", "after": 0}))
    welcome = await next_message(ws, "welcome")
    assert welcome["prison"] == "HMP Other"
    await add_evidence(site, "HMP Example", "call-ex")
    await add_evidence(site, "HMP Other", "call-other")
    pushed: list[dict[str, Any]] = []
    while not any(r["call_id"] == "call-other" for r in pushed):
        pushed += (await next_message(ws, "records"))["records"]
    assert {r["prison"] for r in pushed} == {"HMP Other"}
    for action in ({"type": "pause", "call_id": "call-ex", "note": "x"}, {"type": "ack", "audit_id": 1}):
        await ws.send(json.dumps(action))
        error = await next_message(ws, "error")
        assert error["message"] in ("no such call", "no such alert")
    await ws.close()


async def test_websocket_closes_when_the_session_is_revoked(site: Site) -> None:
    alice = await site.login("alice")
    ws = await site.ws(alice)
    await ws.send(json.dumps({"type": "hello", "after": None}))
    await next_message(ws, "welcome")
    auth.logout(site.store, alice)
    await closed_with_any(ws)
    # and the same token cannot open a new one: refused at the handshake
    assert await refused(site, alice) == 401


async def closed_with_any(ws: object) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))  # type: ignore[attr-defined]
            assert message["type"] in ("records", "welcome")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_watch_refuses_without_session_other_prison_or_idle_call(site: Site) -> None:
    for cookie in (None, "forged-token"):
        assert await refused(site, cookie, path="/console/watch") == 401
    bob = await site.login("bob")
    assert await refused(site, bob, origin="http://evil.example", path="/console/watch") == 403
    for call_id, error in (("call-ex", "no such call"), ("call-other", "this call is not running now")):
        ws = await site.ws(bob, path="/console/watch")
        await ws.send(json.dumps({"type": "watch", "call_id": call_id}))
        assert json.loads(await ws.recv()) == {"type": "error", "message": error}
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    ws = await site.ws(bob, path="/console/watch")
    await ws.send(json.dumps({"type": "pause", "call_id": "call-other", "note": "x"}))
    assert "type: must be one of watch, answer" in json.loads(await ws.recv())["message"]
