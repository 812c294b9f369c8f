"""PolicyConfig: every threshold and window, loaded from TOML with strict validation.

``policies/default.toml`` is the documented default. A user file overrides any subset of its keys;
unknown sections or keys and values of the wrong type or range raise :class:`PolicyError` naming
the key, so a typo never silently falls back to a default.

A policy file is small (the documented default is under 4 KB), so one larger than
``MAX_POLICY_BYTES`` is refused before it is read, and so is nesting no policy has: Python's TOML
parser recurses on nested arrays and tables (a ``RecursionError`` when deep) and its time and
memory grow with the square of a dotted key's length (``a.a.a....``: 10,000 parts take 2 s and
400 MB), so a key of more than ``MAX_KEY_PARTS`` parts is refused before parsing.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from policies.reasons import GUIDANCE_ONLY_REASONS, Reason

MAX_POLICY_BYTES = 64 * 1024
MAX_KEY_PARTS = 4  # a policy key has two: [section] and key


class PolicyError(ValueError):
    """A policy file is unreadable or has an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    allowed_slot_minutes: tuple[int, ...] = (30, 60)
    main_caller_min_age: int = 18
    max_visitors: int = 4
    monthly_allowance: int = 1
    booking_window_days: int = 7
    clear_after_s: float = 0.5
    unbooked_face_pause_after_s: float = 0.5
    too_many_faces_pause_after_s: float = 1.0
    face_not_visible_warn_after_s: float = 0.0
    face_not_visible_pause_after_s: float = 5.0
    no_face_warn_after_s: float = 3.0
    no_face_pause_after_s: float = 15.0
    poor_lighting_warn_after_s: float = 1.0
    poor_lighting_pause_after_s: float = 30.0
    identity_unconfirmed_after_s: float = 4.0
    camera_moving_warn_after_s: float = 2.0
    busy_background_warn_after_s: float = 3.0
    analysis_timeout_s: float = 5.0
    recheck_clean_for_s: float = 2.0
    recheck_fresh_within_s: float = 1.0
    staff_approval_reasons: tuple[Reason, ...] = (Reason.CAPTURE_ATTEMPT, Reason.STAFF_PAUSE)
    reconnect_grace_s: float = 10.0
    recording_error_pauses: bool = True
    verification_hours: int = 24
    document_retention_days: int = 30
    join_opens_minutes: int = 15

    def warn_after(self, reason: Reason) -> float | None:
        """Seconds a finding must last before the participant is warned (None: never warned)."""
        if reason is Reason.IDENTITY_UNCONFIRMED:  # one window: warned and paused together
            return self.identity_unconfirmed_after_s
        value = getattr(self, f"{reason.value}_warn_after_s", None)
        return None if value is None else float(value)

    def pause_after(self, reason: Reason) -> float:
        """Seconds a finding must last before it pauses the call: infinite (never) for a
        guidance-only reason, which has no pause window."""
        if reason in GUIDANCE_ONLY_REASONS:
            return math.inf
        if reason is Reason.IDENTITY_UNCONFIRMED:
            return self.identity_unconfirmed_after_s
        return float(getattr(self, f"{reason.value}_pause_after_s"))


# TOML section -> {toml key: PolicyConfig field}
_LAYOUT: dict[str, dict[str, str]] = {
    "booking": {
        "allowed_slot_minutes": "allowed_slot_minutes",
        "main_caller_min_age": "main_caller_min_age",
        "max_visitors": "max_visitors",
        "monthly_allowance": "monthly_allowance",
        "booking_window_days": "booking_window_days",
    },
    "findings": {
        name: name
        for name in (
            "clear_after_s",
            "unbooked_face_pause_after_s",
            "too_many_faces_pause_after_s",
            "face_not_visible_warn_after_s",
            "face_not_visible_pause_after_s",
            "no_face_warn_after_s",
            "no_face_pause_after_s",
            "poor_lighting_warn_after_s",
            "poor_lighting_pause_after_s",
            "identity_unconfirmed_after_s",
            "camera_moving_warn_after_s",
            "busy_background_warn_after_s",
        )
    },
    "analysis": {"timeout_s": "analysis_timeout_s"},
    "recheck": {
        "clean_for_s": "recheck_clean_for_s",
        "fresh_within_s": "recheck_fresh_within_s",
        "staff_approval_reasons": "staff_approval_reasons",
    },
    "connection": {"reconnect_grace_s": "reconnect_grace_s"},
    "faults": {"recording_error_pauses": "recording_error_pauses"},
    "family": {
        "verification_hours": "verification_hours",
        "document_retention_days": "document_retention_days",
        "join_opens_minutes": "join_opens_minutes",
    },
}

_INT_FIELDS = {
    "main_caller_min_age",
    "max_visitors",
    "monthly_allowance",
    "booking_window_days",
    "verification_hours",
    "document_retention_days",
    "join_opens_minutes",
}


def _convert(where: str, name: str, value: Any) -> Any:
    if name == "allowed_slot_minutes":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            raise PolicyError(f"{where}: must be a non-empty list of positive whole minutes, got {value!r}")
        return tuple(value)
    if name == "staff_approval_reasons":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PolicyError(f"{where}: must be a list of reason names, got {value!r}")
        try:
            return tuple(Reason(v) for v in value)
        except ValueError:
            known = ", ".join(r.value for r in Reason)
            raise PolicyError(f"{where}: unknown reason in {value!r} (known: {known})") from None
    if name == "recording_error_pauses":
        if not isinstance(value, bool):
            raise PolicyError(f"{where}: must be true or false, got {value!r}")
        return value
    if name in _INT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PolicyError(f"{where}: must be a whole number of at least 1, got {value!r}")
        return value
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise PolicyError(f"{where}: must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _merge(config: dict[str, Any], document: dict[str, Any], origin: str) -> None:
    for section, table in document.items():
        if section not in _LAYOUT:
            raise PolicyError(f"{origin}: unknown section [{section}] (known: {', '.join(_LAYOUT)})")
        if not isinstance(table, dict):
            raise PolicyError(f"{origin}: [{section}] must be a table")
        for key, value in table.items():
            where = f"{origin}: {section}.{key}"
            if key not in _LAYOUT[section]:
                raise PolicyError(f"{where}: unknown key (known: {', '.join(_LAYOUT[section])})")
            name = _LAYOUT[section][key]
            config[name] = _convert(where, name, value)


def _check(config: PolicyConfig, origin: str) -> None:
    for reason in (Reason.FACE_NOT_VISIBLE, Reason.NO_FACE, Reason.POOR_LIGHTING):
        warn = config.warn_after(reason)
        if warn is not None and warn > config.pause_after(reason):
            raise PolicyError(
                f"{origin}: findings.{reason.value}_warn_after_s must not exceed "
                f"findings.{reason.value}_pause_after_s"
            )


def _long_key_line(text: str) -> int | None:
    """The first line whose key (or table header) has more than ``MAX_KEY_PARTS`` dotted parts.
    Counts every dot before the ``=`` (or the ``#`` of a header's comment), quoted or not: a key
    that long is refused either way, as no policy key has one."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        key = line.split("=", 1)[0] if "=" in line else line.split("#", 1)[0]
        if key.count(".") >= MAX_KEY_PARTS:
            return number
    return None


def parse_policy(text: str, origin: str = "<policy>") -> PolicyConfig:
    """Parse TOML policy text over the built-in defaults."""
    long_key = _long_key_line(text)
    if long_key is not None:
        raise PolicyError(f"{origin}: line {long_key}: a key of more than {MAX_KEY_PARTS} dotted parts")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{origin}: not valid TOML: {exc}") from None
    except RecursionError:
        raise PolicyError(f"{origin}: not a policy: arrays or tables nested too deeply") from None
    values: dict[str, Any] = {}
    _merge(values, document, origin)
    config = PolicyConfig(**values)
    _check(config, origin)
    return config


def default_policy_text() -> str:
    return resources.files("policies").joinpath("default.toml").read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None) -> PolicyConfig:
    """The default policy, overridden by ``path`` when given."""
    base = parse_policy(default_policy_text(), "policies/default.toml")
    if path is None:
        return base
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)  # never more, whatever the file's size
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc.strerror or exc}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: policy file larger than {MAX_POLICY_BYTES // 1024} KB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: policy file is not UTF-8 text") from None
    return parse_policy(text, str(path))


__all__ = ["PolicyConfig", "PolicyError", "default_policy_text", "load_policy", "parse_policy"]
