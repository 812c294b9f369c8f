"""`monitor serve` as a user runs it: a real process, its printed links, bad flags, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from support.serve_process import MONITOR, printed_links

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MONITOR, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "nothing to serve"),
        (("--booking", "missing.json"), "missing.json: booking file not found"),
        (("--demo", "--port", "70000"), "--port 70000"),
        (("--demo", "--ice-server", "http://x"), "--ice-server 'http://x'"),
        (("--demo", "--certfile", "cert.pem"), "--certfile and --keyfile go together"),
        (("--demo", "--policy", "nope.toml"), "nope.toml: cannot read policy file"),
    ],
)
def test_bad_flags_give_one_clear_line(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    result = run("serve", "--db", str(tmp_path / "m.db"), *args, cwd=tmp_path)
    assert result.returncode != 0
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_demo_prints_links_serves_pages_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            *MONITOR,
            "serve",
            "--demo",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
            "--analysis-workers",
            "1",
            "--record",
            str(tmp_path / "rec"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        links, printed = printed_links(process)
        console = printed["console"]
        assert {link["role"] for link in links} == {"prisoner", "visitor"}
        assert {link["participant"] for link in links} == {"A1234BC", "v1"}
        assert len({link["url"] for link in links}) == len(links)
        assert all(link["call_id"].startswith("demo-") for link in links)
        assert console.endswith("/console")
        with urllib.request.urlopen(links[0]["url"], timeout=5) as reply:
            assert reply.status == 200 and b"join.js" in reply.read()
        # the demo call is live now: its timeline already says it started (verifying)
        timeline = tmp_path / "rec" / links[0]["call_id"] / "timeline.jsonl"
        deadline = time.monotonic() + 10
        while not (timeline.exists() and timeline.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        first = json.loads(timeline.read_text().splitlines()[0])
        assert first["kind"] == "state" and first["state"] == "verifying"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _start_demo(db: Path) -> tuple[subprocess.Popen[str], list[dict[str, str]], dict[str, str]]:
    process = subprocess.Popen(
        [*MONITOR, "serve", "--demo", "--port", "0", "--db", str(db), "--analysis-workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return (process, *printed_links(process))


def _login(console: dict[str, str]) -> list[dict[str, object]]:
    """Log in with the printed demo account; the calls on the console board."""
    basic = base64.b64encode(f"{console['username']}:{console['password']}".encode()).decode()
    request = urllib.request.Request(
        console["console"] + "/login", method="POST", headers={"Authorization": f"Basic {basic}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        cookie = reply.headers["Set-Cookie"].split(";")[0]
    request = urllib.request.Request(console["console"] + "/api/calls", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as reply:
        calls: list[dict[str, object]] = json.loads(reply.read())["calls"]
    return calls


def test_demo_twice_on_one_database_with_a_printed_staff_account_and_store_links(tmp_path: Path) -> None:
    """What `make run` does, twice in a row: the second run reuses the demo call, the printed demo
    staff account logs in and sees it on the board, the links (store tokens) join."""
    db = tmp_path / "m.db"
    seen = []
    for _ in range(2):
        process, links, console = _start_demo(db)
        try:
            assert console["username"] == "demo" and len(console["password"]) >= 12
            board = _login(console)
            call_id = links[0]["call_id"]
            assert [c["call_id"] for c in board] == [call_id]
            seen.append(call_id)
            token = links[1]["url"].rsplit("/", 1)[1]
            joined = asyncio.run(_join(links[1]["url"].split("/join/")[0], token))
            assert joined["type"] == "joined" and joined["call_id"] == call_id, joined
            # the demo family's sign-in, printed after the console's, works on /family
            assert process.stdout is not None
            family = json.loads(process.stdout.readline())
            assert family["family"].endswith("/family") and family["email"] == "demo.family@example.org"
            basic = base64.b64encode(f"{family['email']}:{family['password']}".encode()).decode()
            login = urllib.request.Request(
                family["family"] + "/login", method="POST", headers={"Authorization": f"Basic {basic}"}
            )
            with urllib.request.urlopen(login, timeout=10) as reply:
                assert reply.status == 200 and "family_session=" in reply.headers["Set-Cookie"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
            assert process.stderr is not None
            errors = process.stderr.read()
            assert f"password: {console['password']}" in errors  # also said in words, for people
            assert "Traceback" not in errors
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert seen[0] == seen[1]  # the second run serves the same demo call, not an overlapping one
    assert "interrupted" in errors  # the first run stopped while the call ran


async def _join(base: str, token: str) -> dict[str, object]:
    from signalling.client import Device

    device = Device(base.replace("http://", "ws://") + "/ws/call")
    await device.open()
    try:
        return await device.join(token)
    finally:
        await device.close()
