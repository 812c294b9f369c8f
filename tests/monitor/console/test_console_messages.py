"""The console's message schema (monitor/console/messages.py): one module validates every message."""

from __future__ import annotations

import json

import pytest

from monitor.console import messages
from monitor.console.messages import MessageError, parse

FEED = "hello, pause, resume, end, ack, confirm_identity, reject_identity"


def test_feed_messages_parse_to_typed_values() -> None:
    assert parse('{"type": "hello", "after": null}') == messages.Hello(None)
    assert parse('{"type": "hello", "after": 41, "ref": "a"}') == messages.Hello(41, "a")
    assert parse('{"type": "pause", "call_id": " c1 ", "note": " gesture "}') == messages.Pause(
        "c1", "gesture"
    )
    assert parse('{"type": "resume", "call_id": "c1"}') == messages.Resume("c1")
    assert parse('{"type": "end", "call_id": "c1"}') == messages.End("c1", "")
    assert parse('{"type": "ack", "audit_id": 7}') == messages.Ack(7)
    assert parse(
        '{"type": "confirm_identity", "alert_id": 9, "participant": " v1 "}'
    ) == messages.ConfirmIdentity(9, "v1")
    assert parse('{"type": "reject_identity", "alert_id": 9, "ref": "r"}') == messages.RejectIdentity(9, "r")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"type": "hello", "after": -1}', "after: must be a whole number >= 0"),
        ('{"type": "hello", "after": true}', "after: must be a whole number >= 0"),
        ('{"type": "ack", "audit_id": 1.5}', "audit_id: must be a whole number >= 0"),
        ('{"type": "pause", "call_id": 5, "note": "x"}', "call_id: must be text"),
        ('{"type": "pause", "call_id": "c1", "note": "' + "x" * 501 + '"}', "note: at most 500 characters"),
        ('{"type": "resume", "call_id": "c1", "ref": 3}', "ref: must be text of at most 64 characters"),
        ('{"call_id": "c1"}', f"type: must be one of {FEED}"),
        ('{"type": "watch", "call_id": "c1"}', f"type: must be one of {FEED}"),
        ('{"type": "confirm_identity", "alert_id": 3}', "participant: must not be empty"),
        (
            '{"type": "confirm_identity", "alert_id": -3, "participant": "v1"}',
            "alert_id: must be a whole number >= 0",
        ),
        ('{"type": "reject_identity"}', "alert_id: must be a whole number >= 0"),
        (
            '{"type": "reject_identity", "alert_id": 3, "participant": "v1"}',
            "participant: unknown field for reject_identity",
        ),
        ("null", "a message must be a JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_feed_messages_name_the_problem(raw: str, problem: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse(raw)
    assert str(caught.value) == problem


def test_watch_messages_only_on_the_watch_socket_and_sdp_may_be_large() -> None:
    sdp = "v=0\r\n" + "a=candidate:x\r\n" * 800  # ~13 kB: more than a feed message may be
    assert parse(json.dumps({"type": "answer", "sdp": sdp}), messages.WATCH_TYPES) == messages.Answer(
        sdp.strip()
    )
    assert parse('{"type": "watch", "call_id": "c1"}', messages.WATCH_TYPES) == messages.WatchCall("c1")
    with pytest.raises(MessageError, match="message too large"):
        parse(json.dumps({"type": "answer", "sdp": sdp}))
    with pytest.raises(MessageError, match="message too large"):
        parse(json.dumps({"type": "answer", "sdp": "x" * 70_000}), messages.WATCH_TYPES)
    with pytest.raises(MessageError, match="type: must be one of watch, answer"):
        parse('{"type": "ack", "audit_id": 1}', messages.WATCH_TYPES)


def test_board_presence_from_join_and_leave_records(store_at: str) -> None:
    from monitor.console.board import present
    from monitor.store.audit import AuditLog
    from monitor.store.database import Store

    with Store(store_at) as store:
        log = AuditLog(store)
        log.append(
            "joined", {"source": "A1", "participant": "A1", "role": "prisoner"}, prison="P", call_id="c"
        )
        log.append(
            "joined", {"source": "v1", "participant": "v1", "role": "visitor"}, prison="P", call_id="c"
        )
        log.append("event", {"event": "participant_left", "source": "v1"}, prison="P", call_id="c")
        assert present(log.for_call("c")) == [{"source": "A1", "participant": "A1", "role": "prisoner"}]
