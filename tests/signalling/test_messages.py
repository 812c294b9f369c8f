"""The wire protocol's parser: every bad frame becomes one ProtocolError with a code and a clear text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signalling import messages
from signalling.messages import (
    MAX_MESSAGE_BYTES,
    CaptureAttemptMsg,
    Join,
    Leave,
    Offer,
    Ping,
    ProtocolError,
    parse_client,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "join", "token": "abc"}', Join("abc")),
        ('{"type": "join", "token": "Ab-_9"}', Join("Ab-_9")),
        ('{"type": "capture_attempt", "detail": "Zoë 🙂 \\ud83d\\ude42"}', CaptureAttemptMsg("Zoë 🙂 🙂")),
        ('{"type": "offer", "sdp": "v=0\\r\\n\\ta=x"}', Offer("v=0\r\n\ta=x")),
        (
            '{"type": "offer", "sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\n"}',
            Offer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"),
        ),
        ('{"type": "capture_attempt", "detail": "getDisplayMedia"}', CaptureAttemptMsg("getDisplayMedia")),
        ('{"type": "capture_attempt"}', CaptureAttemptMsg("")),
        ('{"type": "leave"}', Leave()),
        ('{"type": "ping"}', Ping()),
    ],
)
def test_good_messages(raw: str, expected: object) -> None:
    assert parse_client(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("{not json", "bad_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ('{"token": "x"}', "bad_message", "'type'"),
        ('{"type": 7}', "bad_message", "'type'"),
        ('{"type": "hello"}', "unknown_type", "unknown message type 'hello'"),
        ('{"type": "join"}', "bad_message", "join.token: must be a string"),
        ('{"type": "join", "token": ""}', "bad_message", "join.token: must not be empty"),
        ('{"type": "join", "token": 5}', "bad_message", "join.token: must be a string"),
        ('{"type": "join", "token": "' + "x" * 200 + '"}', "bad_message", "longer than 128"),
        ('{"type": "join", "token": "a", "admin": true}', "bad_message", "unknown field(s) admin"),
        ('{"type": "offer", "sdp": "hello"}', "bad_sdp", "must start with 'v=0'"),
        ('{"type": "capture_attempt", "detail": 3}', "bad_message", "capture_attempt.detail"),
        # text that would break the records it is written to (a lone surrogate cannot be UTF-8)
        (
            '{"type": "capture_attempt", "detail": "\\ud800"}',
            "bad_message",
            "capture_attempt.detail: contains a lone surrogate (U+D800)",
        ),
        (
            '{"type": "capture_attempt", "detail": "x\\u0000"}',
            "bad_message",
            "capture_attempt.detail: contains a control character (U+0000)",
        ),
        ('{"type": "capture_attempt", "detail": "a\\nb"}', "bad_message", "control character (U+000A)"),
        ('{"type": "join", "token": "\\udfff"}', "bad_message", "join.token: contains a lone surrogate"),
        ('{"type": "join", "token": "abc\\u001b"}', "bad_message", "join.token: contains a control"),
        ('{"type": "join", "token": "../abc"}', "bad_token", "join.token: letters, digits, '-' and '_'"),
        ('{"type": "join", "token": "a b"}', "bad_token", "this join link is not valid"),
        ('{"type": "offer", "sdp": "v=0\\r\\n\\ud83d"}', "bad_message", "offer.sdp: contains a lone"),
        ('{"type": "offer", "sdp": "v=0\\r\\n\\u0007"}', "bad_message", "offer.sdp: contains a control"),
        ("[" * 100_000 + "]" * 100_000, "too_large", "larger than"),
        ('{"type": "ping", "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}', "too_large", "larger than"),
    ],
)
def test_bad_messages_name_the_problem(raw: str, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client(raw)
    assert info.value.code == code
    assert words in info.value.message


def test_binary_frames_are_refused() -> None:
    with pytest.raises(ProtocolError, match="binary frames"):
        parse_client(b'{"type": "ping"}')


def test_deep_nesting_under_the_size_limit_is_a_clear_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client("[" * 20_000 + "]" * 20_000)
    assert info.value.code in ("bad_json", "bad_message")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100)))
def test_any_frame_parses_or_raises_protocol_error(raw: str | bytes) -> None:
    try:
        parse_client(raw)
    except ProtocolError as exc:
        assert exc.code and exc.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["join", "offer", "capture_attempt", "leave", "ping", "x"]),
    st.dictionaries(st.sampled_from(["token", "sdp", "detail", "extra"]), json_values, max_size=3),
)
def test_well_formed_json_of_any_shape_parses_or_raises_protocol_error(
    kind: str, body: dict[str, object]
) -> None:
    try:
        parse_client(json.dumps({"type": kind, **body}))
    except ProtocolError as exc:
        assert exc.code in ("bad_message", "bad_sdp", "bad_token", "unknown_type", "too_large")


def test_server_frames_are_json_with_a_type() -> None:
    frames = [
        messages.error("bad_token", "this join link is not valid"),
        messages.answer("v=0"),
        messages.state("paused", ["unbooked_face"], "why", "needs", 12.34),
        messages.warning("no_face", "Sit in front of the camera"),
        messages.warning_cleared("no_face"),
        messages.ended(["time_up"], "The booked time is over."),
        messages.pong(),
    ]
    for frame in frames:
        assert json.loads(messages.encode(frame))["type"] == frame["type"]
    assert messages.state("live", [], "", "", -3)["seconds_left"] == 0.0


def test_server_frames_are_sendable_whatever_their_text() -> None:
    """The parsers refuse lone surrogates; should one still reach a frame, it is escaped, not sent
    as text UTF-8 cannot encode (which would cost the device its connection)."""
    frame = messages.error("bad_message", "x\ud800")
    text = messages.encode(frame)
    text.encode("utf-8")
    assert json.loads(text) == frame
    assert messages.encode(messages.warning("no_face", "Zoë")) == (
        '{"type": "warning", "reason": "no_face", "guidance": "Zoë"}'
    )
