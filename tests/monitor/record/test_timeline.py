"""The timeline encoder never fails on text: a lone surrogate (refused by the wire parsers, so
only here if something slipped past them) is written with JSON's ASCII escapes; any other text as
UTF-8, unchanged."""

from __future__ import annotations

from monitor.record.timeline import decision_record, decode_line, encode_line
from policies.decisions import Alert
from policies.reasons import Reason


def test_a_lone_surrogate_is_escaped_and_reads_back() -> None:
    alert = Alert(3.0, Reason.CAPTURE_ATTEMPT, "v1", None, "v1", "x\ud800", True)
    line = encode_line(decision_record(alert))
    line.encode("utf-8")
    assert "\\ud800" in line and decode_line(line)["detail"] == "x\ud800"


def test_other_text_is_written_as_utf8() -> None:
    alert = Alert(3.0, Reason.CAPTURE_ATTEMPT, "v1", None, "v1", "Zoë 🙂", True)
    assert '"detail": "Zoë 🙂"' in encode_line(decision_record(alert))
