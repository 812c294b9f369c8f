"""`monitor serve`'s mail flags (parsed by the real CLI parser, checked by monitor/mail/settings.py)
and the sender running inside a real Server: mail queued by another connection to the store (as
another process would) lands in the outbox, and /metrics counts it."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import pytest
from mail_parts import open_store

from monitor.cli import build_parser
from monitor.mail import AccountVerified, MailError, queue_mail
from monitor.mail.outbox import OutboxTransport
from monitor.mail.sender import MailSender
from monitor.mail.settings import DEFAULT_FROM, PASSWORD_ENV, mail_sender
from monitor.mail.smtp import SmtpTransport
from monitor.server.serve import Server
from monitor.store.database import Store
from policies.config import load_policy


def serve_args(*flags: str) -> object:
    return build_parser().parse_args(["serve", *flags])


def test_without_smtp_mail_goes_to_the_outbox_in_the_data_directory(store: Store) -> None:
    sender = mail_sender(serve_args(), store)  # type: ignore[arg-type]
    assert isinstance(sender.transport, OutboxTransport)
    assert sender.transport.folder == store.data_dir / "mail-outbox" and sender.transport.folder.is_dir()
    assert sender.mail_from == DEFAULT_FROM
    assert sender.transport.where() == {"mail_outbox": str((store.data_dir / "mail-outbox").resolve())}


def test_smtp_flags(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    args = serve_args(
        "--smtp", "mail.example.org:587", "--smtp-starttls", "--smtp-user", "calls",
        "--smtp-password-file", str(secret), "--mail-from", "Prison calls <calls@example.org>",
    )  # fmt: skip
    sender = mail_sender(args, store)  # type: ignore[arg-type]
    assert isinstance(sender.transport, SmtpTransport)
    settings = sender.transport.settings
    assert (settings.host, settings.port, settings.starttls, settings.username) == (
        "mail.example.org",
        587,
        True,
        "calls",
    )
    assert settings.password == "s3cret"  # the file's line, without its newline
    assert sender.transport.where() == {"mail_smtp": "mail.example.org:587"}
    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    args = serve_args(
        "--smtp", "[::1]:25", "--smtp-starttls", "--smtp-user", "calls", "--mail-from", "calls@example.org"
    )
    transport = mail_sender(args, store).transport  # type: ignore[arg-type]
    assert isinstance(transport, SmtpTransport)
    assert transport.settings.host == "::1" and transport.settings.password == "from-the-environment"


@pytest.mark.parametrize("flag", ["--smtp-password", "--smtp-pass"])
def test_the_password_is_never_a_command_line_flag(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        serve_args("--smtp", "mail.example.org:587", flag, "s3cret")
    error = capsys.readouterr().err
    assert "s3cret" not in error and flag in error  # named, its value never repeated


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--smtp", "mail.example.org"], "--smtp 'mail.example.org': expected HOST:PORT"),
        (["--smtp", "mail.example.org:99999"], "expected HOST:PORT"),
        (["--smtp", "mail.example.org:25"], "--smtp needs --mail-from"),
        (["--smtp", "m.example.org:25", "--mail-from", "not an address"], "--mail-from 'not an address'"),
        (["--smtp-starttls"], "--smtp-starttls goes with --smtp HOST:PORT"),
        (["--smtp-user", "calls"], "--smtp-user goes with --smtp"),
        (
            ["--smtp", "m.example.org:25", "--mail-outbox", "out"],
            "--mail-outbox is where mail goes without --smtp",
        ),
        (
            ["--smtp", "m.example.org:25", "--smtp-user", "calls"],
            "only ever sent over TLS: add --smtp-starttls",
        ),
        (["--smtp", "m.example.org:25", "--smtp-starttls", "--smtp-user", "calls"], "give the password in"),
        (["--smtp", "m.example.org:25", "--smtp-password-file", "/nonexistent"], "cannot read it"),
        (
            ["--smtp", "m.example.org:25", "--smtp-cafile", "/nonexistent"],
            "--smtp-cafile /nonexistent: no such file",
        ),
    ],
)
def test_bad_mail_flags_get_one_clear_message(
    store: Store, flags: list[str], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(MailError) as caught:
        mail_sender(serve_args(*flags), store)  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_an_outbox_that_cannot_be_made_is_refused_at_start(store: Store, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(MailError, match="cannot create the folder"):
        mail_sender(serve_args("--mail-outbox", str(tmp_path / "taken" / "out")), store)  # type: ignore[arg-type]


async def test_the_server_runs_the_sender_and_counts_it_on_metrics(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    with open_store(tmp_path) as store:
        sender = MailSender(store, OutboxTransport(outbox), mail_from=DEFAULT_FROM, poll_s=0.1)
        server = Server([], load_policy(), port=0, analysis_workers=0, store=store, mail=sender)
        await server.start()
        try:
            with open_store(tmp_path) as elsewhere:  # another connection, as an admin command would have
                queue_mail(
                    elsewhere, "ann@example.org", AccountVerified("Ann", "https://x.org/f"), prison="P"
                )
            deadline = time.monotonic() + 10
            while not list(outbox.glob("*.eml")):
                assert time.monotonic() < deadline, "the message never reached the outbox"
                await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{server.port}/metrics"
            page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        finally:
            await server.stop()
        assert sender._task is None  # stopped with the server
    assert 'monitor_mail_total{result="written"} 1' in page
    assert 'monitor_mail_total{result="failed"} 0' in page
    assert "monitor_mail_queued 0" in page
