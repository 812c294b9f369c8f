"""What text from outside may hold: one rule for ids, one for free text.

Ids (call ids, prisoner and visitor ids) become file and folder names (a call's recordings are
``<record dir>/<call_id>/<participant>.<kind>.<part>.webm``), URL path segments and log fields, so
they are held to a small safe set: 1 to ``MAX_ID_CHARS`` letters, digits, ``.``, ``_`` and ``-``,
starting with a letter or a digit (so never ``.``, ``..``, a path, or something that reads as a
flag). Free text (names, notes, a device's capture detail) may be any Unicode except what breaks
the records it is written to: a lone surrogate (``"\\ud800"`` in JSON decodes to a string UTF-8
cannot encode), control characters and the Unicode line and paragraph separators (which forge
lines in logs and line-based files, and confuse terminals). Each check
returns what is wrong, in words, or None; the caller names the field.
"""

from __future__ import annotations

import re

MAX_ID_CHARS = 64
ID_RULE = f"1 to {MAX_ID_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit"
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_ID_CHARS - 1}}}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")  # keeps \t \n \r


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an id, or None."""
    if _ID.fullmatch(value):
        return None
    return f"must be {ID_RULE}, got {value[:80]!r}"


def text_problem(value: str, *, lines: bool = False) -> str | None:
    """What is wrong with ``value`` as free text, or None. ``lines``: tabs and line breaks are
    allowed (a note, an SDP description)."""
    found = _SURROGATE.search(value)
    if found is not None:
        return f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not text"
    found = (_CONTROL_BUT_LINES if lines else _CONTROL).search(value)
    if found is None:
        return None
    what = "a line separator" if found.group() in "\u2028\u2029" else "a control character"
    return f"contains {what} (U+{ord(found.group()):04X})"


def encodable(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (UTF-8 cannot encode one). The encoders of the
    records (timeline, audit log, console feed) then fall back to JSON's ASCII escapes, so a
    string that slipped past the parsers can never stop a record from being written."""
    return _SURROGATE.search(text) is None


__all__ = ["ID_RULE", "MAX_ID_CHARS", "encodable", "id_problem", "text_problem"]
