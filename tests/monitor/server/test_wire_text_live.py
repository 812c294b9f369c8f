"""A lone surrogate (JSON ``"\\ud800"``) and control characters from a device, through the real
server with a live call (both devices sending the clean clip, the analysis worker, the store and
the recorder): each gets an error frame naming the field, and the call's state, its timeline and
its audit log stay intact; the call then pauses and resumes as always."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from support.live_server import (
    add_call,
    booking_now,
    call_clips,
    join_device,
    join_token,
    serving,
    wait_state,
)
from websockets.asyncio.client import connect

from monitor.record.timeline import decode_line
from monitor.server.serve import Server
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.decisions import Alert, State
from signalling.client import Device

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

SURROGATE_DETAIL = '{"type": "capture_attempt", "detail": "screen \\ud800"}'


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    store = Store(folder / "monitor.db")
    async with serving(analysis_workers=1, store=store, record_dir=folder / "record") as srv:
        yield srv
    store.close()


async def refused(device: Device, frame: str, words: str) -> None:
    await device.send(frame)
    reply = await device.expect("error")
    assert reply["code"] == "bad_message" and words in reply["message"], reply


async def test_surrogates_and_control_characters_leave_the_call_intact(server: Server) -> None:
    clips = call_clips()
    call = add_call(server, booking_now("call-text"))
    prison, _ = await join_device(server, call, "prisoner", clips["clean"])
    visitor, _ = await join_device(server, call, "visitor", clips["clean"])
    try:
        await wait_state(visitor, "live", timeout=120)
        decisions = len(call.decisions)
        await refused(visitor, SURROGATE_DETAIL, "capture_attempt.detail: contains a lone surrogate (U+D800)")
        await refused(
            visitor,
            '{"type": "capture_attempt", "detail": "a\\u001b[2Jb"}',
            "capture_attempt.detail: contains a control character (U+001B)",
        )
        # a join token with a surrogate, on a connection of its own
        async with connect(f"ws://127.0.0.1:{server.port}/ws/call") as ws:
            await ws.send('{"type": "join", "token": "\\udfff"}')
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (
                reply["code"] == "bad_message" and "join.token: contains a lone surrogate" in reply["message"]
            )
            await ws.send(json.dumps({"type": "join", "token": join_token(server, call, "prisoner") + "\n"}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["code"] == "bad_message" and "control character (U+000A)" in reply["message"]
        assert call.state is State.LIVE
        assert not any(isinstance(d, Alert) for d in call.decisions[decisions:])

        # the call still pauses for a real capture report, and a surrogate meanwhile changes nothing
        await visitor.send({"type": "capture_attempt", "detail": "getDisplayMedia"})
        paused = await wait_state(prison, "paused", timeout=10)
        assert paused["reasons"] == ["capture_attempt"]
        await refused(visitor, SURROGATE_DETAIL, "contains a lone surrogate")
        assert call.state is State.PAUSED
        await call.staff_resume(staff="officer-1")
        await wait_state(visitor, "live", timeout=60)
    finally:
        await visitor.close()
        await prison.close()
        await call.close()

    assert server.record_dir is not None and server.store is not None
    lines = (server.record_dir / "call-text" / "timeline.jsonl").read_text(encoding="utf-8").splitlines()
    records = [decode_line(line) for line in lines]
    alerts = [r for r in records if r["kind"] == "alert" and r["reason"] == "capture_attempt"]
    assert [a["detail"] for a in alerts] == ["getDisplayMedia"]
    states = [r["state"] for r in records if r["kind"] == "state"]
    assert "paused" in states and states[-1] == "live", states
    verified = AuditLog(server.store).verify()
    assert verified.ok, verified.problem
