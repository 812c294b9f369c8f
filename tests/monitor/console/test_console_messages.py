"""The console's message schema (monitor/console/messages.py): one module validates every message."""
# ruff: noqa: E501  (the table of exact messages reads best one case per line)

from __future__ import annotations

import json

import pytest

from monitor.console import messages
from monitor.console.messages import MessageError, parse
from policies.text import ID_RULE

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
        # ids follow the one id rule; free text the text rule (policies.text)
        ('{"type": "pause", "call_id": "../x", "note": "n"}', f"call_id: must be {ID_RULE}, got '../x'"),
        ('{"type": "resume", "call_id": "c 1"}', f"call_id: must be {ID_RULE}, got 'c 1'"),
        ('{"type": "end", "call_id": "\\ud800"}', "call_id: contains a lone surrogate (U+D800), which is not text"),
        ('{"type": "pause", "call_id": "c1", "note": "a\\udc00"}', "note: contains a lone surrogate (U+DC00), which is not text"),
        ('{"type": "pause", "call_id": "c1", "note": "a\\u0000b"}', "note: contains a control character (U+0000)"),
        ('{"type": "end", "call_id": "c1", "note": "a\\nb"}', "note: contains a control character (U+000A)"),
        ('{"type": "resume", "call_id": "c1", "ref": "\\ud800"}', "ref: contains a lone surrogate (U+D800), which is not text"),
        ('{"type": "ack", "audit_id": 1, "ref": "\\u001b"}', "ref: contains a control character (U+001B)"),
        ("{", "not valid JSON"),
    ],
)  # fmt: skip
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
    with pytest.raises(MessageError, match=r"^call_id: must be"):
        parse('{"type": "watch", "call_id": "../c1"}', messages.WATCH_TYPES)
    with pytest.raises(MessageError, match=r"^sdp: contains a lone surrogate"):
        parse('{"type": "answer", "sdp": "v=0\\r\\n\\ud800"}', messages.WATCH_TYPES)


def test_frames_are_sendable_whatever_a_record_holds() -> None:
    """A record written before the parsers refused lone surrogates still reaches the console."""
    text = messages.encode("records", records=[{"data": {"detail": "x\ud800"}}])
    text.encode("utf-8")
    assert json.loads(text)["records"][0]["data"]["detail"] == "x\ud800"
    assert messages.encode("error", message="Zoë") == '{"type": "error", "message": "Zoë"}'


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
