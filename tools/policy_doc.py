"""Write docs/policy.md from the policy core itself, so the page cannot drift from the code.

Everything on the page is read from the code: the session's theory of operation (the docstring of
the module that defines ``Session``), ``policies.session.TRANSITIONS`` (what each state does with
each event), the events and decisions (their fields and docstrings), the words a participant is
shown (``policies.findings.guidance``), and every key of ``policies/default.toml`` with its default
and the comment above it. Only the one-line meaning of each reason and when it pauses are written
here; a reason the vocabulary gains without a line here stops the script.

    python -m tools.policy_doc          # rewrite docs/policy.md (``make docs``)
    python -m tools.policy_doc --check  # exit 1 when docs/policy.md is not what would be written

``default.toml`` is read a line at a time for its comments: a comment block directly above a key
describes it, and the keys that follow it with no comment or blank line between share that
description; a comment block followed by a blank line describes the file (before the first
section) or its section. Values are taken from ``tomllib``, never from the text.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import re
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from policies.config import PolicyConfig, default_policy_text, parse_policy
from policies.decisions import Decision, State
from policies.events import Event, Lighting, Visibility
from policies.findings import Culprit, guidance
from policies.reasons import OBSERVED_REASONS, Reason
from policies.session import IGNORE, ILLEGAL, TRANSITIONS, Session

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "policy.md"
DEFAULT_TOML = "policies/default.toml"

#: what each reason means, in a line (the only prose on the page not read from the code)
MEANING: dict[Reason, str] = {
    Reason.UNBOOKED_FACE: "someone in view is not booked for that side (identity voting confirmed it)",
    Reason.TOO_MANY_FACES: "more faces in view on one device than people booked for that side",
    Reason.FACE_NOT_VISIBLE: "part of a face, a head turned away, or a person with no face in view "
    "(back of the head)",
    Reason.NO_FACE: "nobody in view; also a side with no device left after the reconnect grace",
    Reason.POOR_LIGHTING: "too dark, over-exposed, unevenly lit or backlit to recognise a face",
    Reason.CAPTURE_ATTEMPT: "a device reported a recording or screenshot attempt",
    Reason.STAFF_PAUSE: "a member of staff paused the call",
    Reason.ANALYSIS_ERROR: "an analysed device delivered no analysis: the call fails closed",
    Reason.IDENTITY_UNCONFIRMED: "a face in view can be neither confirmed as someone booked nor ruled out; "
    "staff may confirm or reject it",
    Reason.CAMERA_MOVING: "the camera keeps moving (a phone held in the hand): guidance only, never a pause",
    Reason.BUSY_BACKGROUND: "a cluttered or patterned background behind the people: guidance only, "
    "never a pause",
    Reason.STORE_ERROR: "the audit records cannot be written (a full disk, an I/O error): "
    "the call fails closed",
    Reason.RECORDING_ERROR: "the call's recording cannot be written: it pauses unless the policy lets it go "
    "on unrecorded",
    Reason.TIME_UP: "the booked end (`ends_at`): calls are never extended",
    Reason.STAFF_END: "a member of staff ended the call",
}


def _when(reason: Reason, config: PolicyConfig) -> tuple[str, str]:
    """(warned after, pauses or ends after) for one reason under ``config``."""
    if reason in OBSERVED_REASONS:
        warn = config.warn_after(reason)
        warned = "never" if warn is None else _seconds(warn)
        return warned, _seconds(config.pause_after(reason))
    if reason in (Reason.CAPTURE_ATTEMPT, Reason.STAFF_PAUSE):
        return "—", "at once"
    if reason is Reason.ANALYSIS_ERROR:
        return "—", f"{config.analysis_timeout_s:g} s without analysis"
    if reason is Reason.STORE_ERROR:
        return "—", "at once, while it lasts"
    if reason is Reason.RECORDING_ERROR:
        return "—", "at once, while it lasts" if config.recording_error_pauses else "never (staff alerted)"
    if reason is Reason.TIME_UP:
        return "—", "ends the call at the booked end"
    if reason is Reason.STAFF_END:
        return "—", "ends the call at once"
    raise SystemExit(f"tools/policy_doc.py: say when reason {reason.value!r} pauses (in _when)")


def _seconds(value: float) -> str:
    if value == math.inf:
        return "never"
    return "at once" if value == 0 else f"{value:g} s"


# -- policies/default.toml ---------------------------------------------------------------------


@dataclass
class KeyGroup:
    keys: list[tuple[str, object]]
    comment: list[str]


@dataclass
class Section:
    name: str
    note: list[str] = field(default_factory=list)
    groups: list[KeyGroup] = field(default_factory=list)


def read_policy_file(text: str) -> tuple[list[str], list[Section]]:
    """The file's own description and its sections, each key with its value and comment."""
    values = tomllib.loads(text)
    intro: list[str] = []
    sections: list[Section] = []
    comment: list[str] = []
    after_key = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            if comment:
                (sections[-1].note if sections else intro).extend(comment)
            comment, after_key = [], False
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
            after_key = False
        elif re.fullmatch(r"\[[A-Za-z0-9_]+\]", line):
            sections.append(Section(line[1:-1], note=comment))
            comment, after_key = [], False
        else:
            key = line.partition("=")[0].strip()
            table = values.get(sections[-1].name, {}) if sections else values
            if not sections or "=" not in line or key not in table:
                raise SystemExit(
                    f"{DEFAULT_TOML}: line {number}: cannot read {line!r} "
                    "(one `key = value` a line, in a [section], comments on the lines above)"
                )
            groups = sections[-1].groups
            if comment or not after_key or not groups:
                groups.append(KeyGroup([], comment))
            groups[-1].keys.append((key, table[key]))
            comment, after_key = [], True
    return intro, sections


def toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


# -- rendering ---------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(docstring: str) -> str:
    """Sphinx roles and double backticks as Markdown code."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", docstring)
    return text.replace("``", "`")


def _summary(cls: type) -> str:
    """A class's docstring, unless it is the one dataclasses made up from the fields."""
    doc = inspect.getdoc(cls) or ""
    return "—" if doc.startswith(f"{cls.__name__}(") else " ".join(_markdown(doc).split())


def _fields(cls: type) -> str:
    return ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls))


def _theory() -> list[str]:
    module = sys.modules[Session.__module__]
    doc = inspect.cleandoc(module.__doc__ or "")
    body = re.split(r"\nTheory of operation\n-+\n", doc, maxsplit=1)
    if len(body) != 2:
        raise SystemExit(f"{module.__name__}: its docstring has no 'Theory of operation' section")
    return _markdown(body[1]).strip().splitlines()


def _transitions() -> list[str]:
    states = list(State)
    events: list[type] = []
    for _, event_type in TRANSITIONS:
        if event_type not in events:
            events.append(event_type)
    lines = [
        "| event | " + " | ".join(f"`{s.value}`" for s in states) + " |",
        "|---|" + "---|" * len(states),
    ]
    for event_type in events:
        cells = []
        for state in states:
            rule = TRANSITIONS.get((state, event_type))
            if rule is None:
                cells.append("not listed")
            elif rule is IGNORE:
                cells.append("ignored")
            elif rule is ILLEGAL:
                cells.append("**refused**")
            else:
                cells.append(f"`{getattr(rule, '__name__', rule)}`")
        lines.append(f"| `{event_type.__name__}` | " + " | ".join(cells) + " |")
    return lines


def _classes(kinds: tuple[type, ...]) -> list[str]:
    lines = ["| class | fields | what it is |", "|---|---|---|"]
    for cls in kinds:
        lines.append(f"| `{cls.__name__}` | {_fields(cls)} | {_cell(_summary(cls))} |")
    return lines


def _reasons(config: PolicyConfig) -> list[str]:
    lines = [
        "| reason | what it means | participant warned after | pauses after | resuming needs staff |",
        "|---|---|---|---|---|",
    ]
    for reason in Reason:
        if reason not in MEANING:
            raise SystemExit(f"tools/policy_doc.py: say what reason {reason.value!r} means (in MEANING)")
        warned, pauses = _when(reason, config)
        staff = "yes" if reason in config.staff_approval_reasons else ""
        if reason in (Reason.TIME_UP, Reason.STAFF_END):
            staff = "— (ended)"
        lines.append(f"| `{reason.value}` | {_cell(MEANING[reason])} | {warned} | {pauses} | {staff} |")
    return lines


def _guidance() -> list[str]:
    kinds = ["", "person", *(v.value for v in Visibility), *(v.value for v in Lighting)]
    lines = ["| reason | what is wrong | what the participant is told |", "|---|---|---|"]
    for reason in OBSERVED_REASONS:
        for kind in kinds:
            try:
                words = guidance(reason, Culprit(kind=kind))
            except KeyError:
                continue
            lines.append(f"| `{reason.value}` | {kind or '—'} | {_cell(words)} |")
    return lines


def _policy_file(text: str) -> list[str]:
    intro, sections = read_policy_file(text)
    lines = [" ".join(intro), ""]
    for section in sections:
        lines += [f"### `[{section.name}]`", ""]
        if section.note:
            lines += [" ".join(section.note), ""]
        lines += ["| key | default | what it does |", "|---|---|---|"]
        for group in section.groups:
            keys = "<br>".join(f"`{key}`" for key, _ in group.keys)
            values = "<br>".join(f"`{_cell(toml_literal(value))}`" for _, value in group.keys)
            lines.append(f"| {keys} | {values} | {_cell(' '.join(group.comment))} |")
        lines.append("")
    return lines


def render() -> str:
    """docs/policy.md as the code describes it now."""
    text = default_policy_text()
    config = parse_policy(text, DEFAULT_TOML)
    decisions = typing.get_args(Decision)
    events = typing.get_args(Event)
    lines = [
        "# The call's rules (`policies/`)",
        "",
        "<!-- Written by tools/policy_doc.py from the code; do not edit: run `make docs`. -->",
        "",
        "The rules live in one pure, synchronous core: events stamped with media time go in,",
        "decisions come out. It does no I/O and reads no clock, so a live call and the replay of its",
        "recording reach the same decisions at the same times. Every threshold and window is in",
        f"`{DEFAULT_TOML}`; `--policy FILE` (on `monitor serve`, `replay`, `book` and `booking check`)",
        "overrides any subset of its keys, and unknown sections or keys and bad values are refused",
        "with the key named.",
        "",
        "## Reasons",
        "",
        f"The fixed vocabulary on every timeline line, alert and console view (`{Reason.__module__}`),",
        "with the default windows.",
        "",
        *_reasons(config),
        "",
        f"What a participant is told when a finding lasts its warning window (`{guidance.__module__}`):",
        "",
        *_guidance(),
        "",
        "## How the session decides",
        "",
        f"From the docstring of `{Session.__module__}`.",
        "",
        *_theory(),
        "",
        "## The transition table",
        "",
        f"`TRANSITIONS[(state, event type)]` (`{Session.__module__}`): the handler that takes the event,",
        "`ignored` (the clock still advances), or **refused** (`IllegalTransition`; the session is left",
        "exactly as it was).",
        "",
        *_transitions(),
        "",
        f"### Events in (`{events[0].__module__}`)",
        "",
        *_classes(events),
        "",
        f"### Decisions out (`{decisions[0].__module__}`)",
        "",
        *_classes(decisions),
        "",
        f"## The policy file: `{DEFAULT_TOML}`",
        "",
        *_policy_file(text),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None, output: Path = OUTPUT) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether docs/policy.md is current")
    args = parser.parse_args(argv)
    text = render()
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if args.check:
        if current != text:
            print(f"{output}: out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
