"""Parts the mail tests share: a store on a real SQLite file, a real SMTP server on loopback
(aiosmtpd, in its own thread and event loop, as a separate server would be), and a self-signed
certificate made here for STARTTLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from importlib import resources
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.store.database import Store

LOOPBACK = ipaddress.ip_address("127.0.0.1")
USER, PASSWORD = "monitor", "correct horse battery staple"


def migrations(tmp_path: Path) -> Path:
    """The store's migrations. Migration 005 (the mail queue) is numbered after 002-004, which
    other branches add: until they are merged, the versions missing below it are filled here with
    empty migrations so the store opens (once they are merged nothing is filled)."""
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    real = resources.files("monitor.store").joinpath("migrations")
    versions = {}
    for entry in real.iterdir():
        if entry.name.endswith(".sql"):
            versions[int(entry.name[:3])] = entry.name
            (folder / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    for version in range(1, max(versions)):
        if version not in versions:
            (folder / f"{version:03d}_not_on_this_branch.sql").write_text("SELECT 1;\n", encoding="utf-8")
    return folder


class Clock:
    """A clock the test moves (the store's and the sender's)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def open_store(tmp_path: Path, clock: Callable[[], float] | None = None) -> Store:
    import time

    return Store(tmp_path / "monitor.db", clock=clock or time.time, migrations=migrations(tmp_path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class Handler:
    """What the SMTP server does with a message: refuse the first ``refuse`` (with ``refusal``),
    wait ``delay_s`` before answering, keep the rest."""

    refuse: int = 0
    refusal: str = "550 5.7.1 not accepted now"
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    refused_ids: list[str] = field(default_factory=list)
    unknown_users: tuple[str, ...] = ()  # refused at RCPT TO

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.unknown_users:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        if self.refuse > 0:
            self.refuse -= 1
            self.refused_ids.append(str(message["Message-ID"]))
            return self.refusal
        login = session.auth_data.decode() if session.authenticated else None
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.ssl is not None, login)
        )
        self.arrived.set()
        return "250 2.0.0 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    given = (data.login, data.password) if isinstance(data, LoginPassword) else None
    ok = given == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)


class SmtpServer:
    """A real SMTP server on 127.0.0.1 (aiosmtpd). ``tls``: offer STARTTLS with this context and
    require it; ``auth``: require AUTH (over TLS) as USER/PASSWORD."""

    def __init__(self, handler: Handler, port: int, tls: ssl.SSLContext | None = None, auth: bool = False):
        self.handler = handler
        self.port = port
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        if auth:
            kwargs.update(authenticator=_authenticate, auth_required=True, auth_require_tls=True)
        self.controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass(frozen=True)
class Certificate:
    cafile: Path  # what the client trusts (the self-signed certificate itself)
    server: ssl.SSLContext


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return Certificate(cert_file, server)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def body_html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())
