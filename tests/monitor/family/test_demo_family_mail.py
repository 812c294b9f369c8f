"""`make run`'s demo family is mailed for real: the `monitor serve --demo` process (on a free port
and a scratch database) prints the family's sign-in and the outbox folder; the family signs in,
books the first free slot over the family socket, and the confirmation with its join link is a
`.eml` file in that folder."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from support.family_site import FamilyClient
from support.serve_process import MONITOR, printed_links
from support.smtp_sink import links_in, text_of


def read_json_line(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "no output"
    return dict(json.loads(line))


def booked_mail(outbox: Path) -> list[Path]:
    return sorted(outbox.glob("*-call_booked-*.eml"))


@dataclass
class Demo:
    process: subprocess.Popen[str]
    port: int
    family: dict[str, str]  # the printed sign-in: family (URL), email, password
    outbox: Path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`monitor serve --demo` running, and what it printed."""
    process = subprocess.Popen(
        [*MONITOR, "serve", "--demo", "--port", "0", "--db", str(tmp_path / "monitor.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, console = printed_links(process)
        family = read_json_line(process)
        outbox = Path(read_json_line(process)["mail_outbox"])
        assert outbox == (tmp_path / "monitor-data" / "mail-outbox").resolve()
        yield Demo(process, int(console["console"].rsplit(":", 1)[1].split("/")[0]), family, outbox)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    return code, process.stderr.read() if process.stderr else ""


async def test_the_demo_family_books_and_finds_the_confirmation_in_the_printed_outbox(demo: Demo) -> None:
    family = FamilyClient(demo.port)
    assert (await family.login(demo.family["email"], demo.family["password"]))[0] == 200
    await family.connect()
    status = await family.ask("status")
    [contact] = status["contacts"]
    holder = status["people"][0]["id"]
    free = await family.ask("slots", contact=contact["id"])
    assert free["type"] == "ok" and free["slots"], free
    first = next(s for s in free["slots"] if s["calls_left"] > 0)
    booked = await family.ask(
        "book", contact=contact["id"], starts_at=first["starts_at"], people=[holder], main=holder
    )
    assert booked["type"] == "ok", booked
    deadline = time.monotonic() + 20
    while not (found := await asyncio.to_thread(booked_mail, demo.outbox)):
        assert time.monotonic() < deadline, "the confirmation never reached the printed outbox"
        await asyncio.sleep(0.1)
    message = message_from_bytes(await asyncio.to_thread(found[0].read_bytes), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == demo.family["email"] and "is booked" in text_of(message)
    [join] = links_in(message, "/join/")
    assert join.startswith(f"http://127.0.0.1:{demo.port}/join/")
    await family.close()
    code, errors = await asyncio.to_thread(stop, demo.process)
    assert code == 0, errors
    assert "Traceback" not in errors, errors
    assert f"Mail to families goes to the outbox folder {demo.outbox}" in errors
