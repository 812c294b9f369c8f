"""`monitor serve` serves the store's calls: store join tokens, calls booked while it runs, calls a
dead server left running, and join/leave on the staff hub (so in the audit log and the console).

Real server on a real port, real SQLite store, real signalling WebSocket; no analysis workers
(nothing here needs frames analysed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from support.live_server import add_call

from monitor.admin import import_booking, join_links
from monitor.bookings import load_booking
from monitor.console import board
from monitor.server.serve import Server
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.booking import Booking
from policies.config import load_policy
from signalling.client import Device

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


def booking(call_id: str, prisoner: str, starts_in: float = -1.0, minutes: float = 30.0) -> Booking:
    base = load_booking(BOOKING, load_policy())
    starts = datetime.now(UTC) + timedelta(seconds=starts_in)
    return dataclasses.replace(
        base,
        call_id=call_id,
        prisoner=dataclasses.replace(base.prisoner, id=prisoner),
        starts_at=starts,
        ends_at=starts + timedelta(minutes=minutes),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Server, Store]]:
    store = Store(tmp_path_factory.mktemp("db") / "monitor.db")
    # a call that a previous server left running (its calls row says live)
    import_booking(store, booking("was-running", "P-OLD"))
    AuditLog(store).append(
        "state", {"kind": "state", "state": "live"}, prison="HMP Example", call_id="was-running"
    )
    # a call booked for today, before the server starts, and one for next week
    import_booking(store, booking("booked-before", "P-BEFORE"))
    import_booking(store, booking("next-week", "P-LATER", starts_in=7 * 86400))
    server = Server([booking("from-file", "P-FILE")], load_policy(), port=0, analysis_workers=0, store=store)
    await server.start()
    yield server, store
    await server.stop()
    store.close()


async def join(server: Server, url: str) -> tuple[Device, dict[str, object]]:
    device = Device(f"ws://127.0.0.1:{server.port}/ws/call")
    await device.open()
    token = url.rsplit("/join/", 1)[1]
    return device, await device.join(token)


async def test_start_marks_interrupted_imports_the_file_and_loads_todays_calls(
    site: tuple[Server, Store],
) -> None:
    server, store = site
    assert server.interrupted == ["was-running"]
    row = store.call("was-running")
    assert row is not None and row.interrupted
    assert store.booking("from-file") is not None  # so the console board shows it
    loaded = {call.call_id for call in server.calls}
    assert {"was-running", "booked-before", "from-file"} <= loaded  # an interrupted call still on is served
    assert "next-week" not in loaded


async def test_printed_links_are_store_tokens_that_join(site: tuple[Server, Store]) -> None:
    server, _ = site
    links = server.links()
    assert {(x["call_id"], x["role"]) for x in links} == {("from-file", "prisoner"), ("from-file", "visitor")}
    assert server.links() == links  # issued once per run
    call = server.calls.get("from-file")
    assert call is not None
    assert not any(x["url"].endswith(token) for x in links for token in call.seats)  # not the in-memory ones
    for own in call.seats:  # which nobody was given and nobody could revoke: they do not join
        refused = await _refusal(server, f"{server.base_url}/join/{own}")
        assert refused["type"] == "error" and refused["code"] == "bad_token", refused
    visitor = next(x for x in links if x["role"] == "visitor")
    device, joined = await join(server, visitor["url"])
    try:
        assert joined["type"] == "joined" and joined["participant"] == "v1", joined
        assert joined["call_id"] == "from-file"
        second, refused = await join(server, visitor["url"])  # the same link on a second device
        assert refused["type"] == "error" and refused["code"] == "token_in_use"
        await second.close()
    finally:
        await device.close()


async def test_a_call_booked_while_running_works_without_a_restart(site: tuple[Server, Store]) -> None:
    server, store = site
    late = booking("booked-later", "P-LATE")
    import_booking(store, late)
    links = join_links(store, late, server.base_url)
    assert server.calls.get("booked-later") is None  # not loaded until the next refresh ...
    device, joined = await join(server, links[0]["url"])  # ... or a token asks for it
    try:
        assert joined["type"] == "joined" and joined["role"] == "prisoner", joined
        assert server.calls.get("booked-later") is not None
    finally:
        await device.close()
    # a refresh also finds calls booked meanwhile, and skips ones far ahead
    import_booking(store, booking("booked-later-2", "P-LATE2", starts_in=600))
    import_booking(store, booking("later-today", "P-LATE3", starts_in=3 * 3600))
    assert server.refresh() == ["booked-later-2"]


async def test_a_call_added_while_running_joins_with_store_tokens_only_and_they_revoke(
    site: tuple[Server, Store],
) -> None:
    server, store = site
    added = booking("added-live", "P-ADDED")
    call = add_call(server, added)  # not booked through the store first: put there now
    assert store.booking("added-live") is not None
    own = next(iter(call.seats))
    assert (await _refusal(server, f"{server.base_url}/join/{own}"))["code"] == "bad_token"
    link = join_links(store, added, server.base_url)[0]["url"]
    device, joined = await join(server, link)
    assert joined["type"] == "joined" and joined["call_id"] == "added-live", joined
    await device.close()
    assert store.revoke_join_token(link.rsplit("/join/", 1)[1])
    refused = await _refusal(server, link)
    assert refused["code"] == "bad_token" and "withdrawn" in str(refused["message"])


async def test_revoked_expired_early_and_unknown_tokens_are_refused(site: tuple[Server, Store]) -> None:
    server, store = site
    soon = booking("starts-later", "P-SOON", starts_in=2 * 3600)
    import_booking(store, soon)
    early = join_links(store, soon, server.base_url)[0]["url"]
    over = booking("was-yesterday", "P-PAST", starts_in=-86400)
    import_booking(store, over)
    expired = join_links(store, over, server.base_url)[0]["url"]
    first = join_links(store, booking("booked-before", "P-BEFORE"), server.base_url)[1]["url"]
    join_links(store, booking("booked-before", "P-BEFORE"), server.base_url)  # revokes `first`
    cases = [
        (early, "too_early"),
        (expired, "call_over"),
        (first, "bad_token"),
        (f"{server.base_url}/join/not-a-token-at-all", "bad_token"),
    ]
    for url, code in cases:
        device, reply = await join(server, url)
        await device.close()
        assert reply["type"] == "error" and reply["code"] == code, (url, reply)
    assert "withdrawn" in str((await _refusal(server, first))["message"])


async def _refusal(server: Server, url: str) -> dict[str, object]:
    device, reply = await join(server, url)
    await device.close()
    return reply


async def test_join_and_leave_reach_the_hub_audit_and_board(site: tuple[Server, Store]) -> None:
    server, store = site
    subscription = server.hub.subscribe()
    url = next(x["url"] for x in server.links() if x["role"] == "prisoner")
    device, joined = await join(server, url)
    assert joined["type"] == "joined"
    await device.close()
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + 10
    while not any(r["kind"] == "left" for r in seen):
        assert time.monotonic() < deadline, seen
        seen.append(await asyncio.wait_for(subscription.__anext__(), 10))
    subscription.close()
    presence = [r for r in seen if r["kind"] in ("joined", "left")]
    assert [(r["kind"], r["participant"], r["role"], r["source"]) for r in presence] == [
        ("joined", "P-FILE", "prisoner", "P-FILE"),
        ("left", "P-FILE", "prisoner", "P-FILE"),
    ]
    assert all(r["call_id"] == "from-file" for r in presence)
    for _ in range(50):  # the console's recorder writes them to the audit log
        kinds = [r.kind for r in AuditLog(store).for_call("from-file")]
        if kinds.count("left") >= 2:
            break
        await asyncio.sleep(0.1)
    records = AuditLog(store).for_call("from-file")
    assert [r.kind for r in records].count("joined") >= 2 and [r.kind for r in records].count("left") >= 2
    assert board.present(records) == []  # everyone who joined has left
    assert AuditLog(store).verify().ok
    # who did it: the participant's device (never the policy); the actor is not left in the data
    audited = [r for r in records if r.kind in ("joined", "left")]
    actors = {r.actor for r in audited}
    assert "device:P-FILE" in actors and all(a.startswith("device:") for a in actors), actors
    assert all("actor" not in r.data for r in audited)
    assert all(r.actor == "policy" for r in records if r.kind not in ("joined", "left"))


async def test_a_device_the_server_drops_is_audited_as_left_by_the_system(
    site: tuple[Server, Store],
) -> None:
    server, store = site
    dropped = booking("dropped", "P-DROP")
    import_booking(store, dropped)
    device, joined = await join(server, join_links(store, dropped, server.base_url)[0]["url"])
    assert joined["type"] == "joined"
    call = server.calls.get("dropped")
    assert call is not None
    await call.close()  # the server lets go of the call (shutdown): it drops the device
    await device.close()
    for _ in range(50):
        left = [r for r in AuditLog(store).for_call("dropped") if r.kind == "left"]
        if left:
            break
        await asyncio.sleep(0.1)
    assert [(r.actor, r.data["participant"]) for r in left] == [("system", "P-DROP")]
    joins = [r.actor for r in AuditLog(store).for_call("dropped") if r.kind == "joined"]
    assert joins == ["device:P-DROP"]


async def test_withdrawing_a_link_disconnects_the_device_joined_with_it(site: tuple[Server, Store]) -> None:
    from monitor.cli import main
    from signalling.messages import LINK_RECHECK_S

    server, store = site
    withdrawn = booking("withdrawn-link", "P-WITHDRAWN")
    import_booking(store, withdrawn)
    links = {x["participant"]: x["url"] for x in join_links(store, withdrawn, server.base_url)}
    visitor, _ = await join(server, links["v1"])
    prisoner, _ = await join(server, links["P-WITHDRAWN"])
    try:
        revoke = ["link", "revoke", "--call", "withdrawn-link", "--participant", "v1"]
        assert main([*revoke, "--db", str(store.path)]) == 0
        started = asyncio.get_running_loop().time()
        told = await visitor.expect_any(("error",), timeout=LINK_RECHECK_S + 5)
        assert told["type"] == "error" and told["code"] == "bad_token", told
        assert "withdrawn" in str(told["message"])
        assert (await visitor.expect_any(("closed",), timeout=5))["type"] == "closed"
        assert asyncio.get_running_loop().time() - started <= LINK_RECHECK_S + 2
        call = server.calls.get("withdrawn-link")
        assert call is not None and "v1" not in call.devices and "P-WITHDRAWN" in call.devices
        assert (await _refusal(server, links["v1"]))["code"] == "bad_token"  # and it cannot come back
        with pytest.raises(TimeoutError):  # the other device, whose link still works, stays
            await prisoner.expect_any(("error", "closed"), timeout=0.5)
    finally:
        await visitor.close()
        await prisoner.close()
