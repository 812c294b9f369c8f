"""`monitor serve`'s mail flags, checked, made into a :class:`~monitor.mail.sender.MailSender`.

Without ``--smtp`` every message is written to the outbox folder (``--mail-outbox``, default
``<data dir>/mail-outbox``). With ``--smtp HOST:PORT`` messages go to that server, as
``--mail-from``; ``--smtp-starttls`` upgrades the connection to TLS, and ``--smtp-user`` logs in
(only over TLS) with the password read from ``--smtp-password-file`` or ``$MONITOR_SMTP_PASSWORD``:
never from the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import os
from email.utils import parseaddr
from pathlib import Path

from monitor.mail.messages import SERVICE, MailError, mail_address
from monitor.mail.outbox import OutboxTransport
from monitor.mail.sender import MailSender
from monitor.mail.smtp import SmtpSettings, SmtpTransport
from monitor.mail.transport import Transport
from monitor.store.database import Store

PASSWORD_ENV = "MONITOR_SMTP_PASSWORD"
DEFAULT_FROM = f"{SERVICE} <no-reply@localhost>"
OUTBOX = "mail-outbox"


def smtp_endpoint(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:25`` for an IPv6 address)."""
    host, colon, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if (
        not colon
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
        or any(c in host for c in " /@")
    ):
        raise MailError(f"--smtp {value!r}: expected HOST:PORT, e.g. smtp.example.org:587")
    return host, int(port)


def sender_address(value: str) -> str:
    """``--mail-from``: ``calls@example.org`` or ``Prison video calls <calls@example.org>``."""
    _, address = parseaddr(value)
    if not address or "\n" in value or "\r" in value:
        raise MailError(
            f"--mail-from {value!r}: expected an address, e.g. 'Prison calls <calls@example.org>'"
        )
    try:
        mail_address(address, "--mail-from", dotted=False)
    except MailError:
        raise MailError(f"--mail-from {value!r}: not an email address") from None
    return value


def _password(args: argparse.Namespace) -> str | None:
    path = getattr(args, "smtp_password_file", None)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise MailError(f"--smtp-password-file {path}: cannot read it: {exc}") from None
    return os.environ.get(PASSWORD_ENV) or None


def smtp_settings(args: argparse.Namespace) -> SmtpSettings | None:
    """The SMTP settings the flags ask for (None: the outbox folder), every flag checked; touches
    nothing, so ``monitor serve`` checks it before it opens the store."""
    smtp = getattr(args, "smtp", None)
    user = getattr(args, "smtp_user", None)
    if smtp is None:
        for flag, value in (
            ("--smtp-starttls", getattr(args, "smtp_starttls", False)),
            ("--smtp-user", user),
            ("--smtp-password-file", getattr(args, "smtp_password_file", None)),
            ("--smtp-cafile", getattr(args, "smtp_cafile", None)),
        ):
            if value:
                raise MailError(f"{flag} goes with --smtp HOST:PORT")
        return None
    if getattr(args, "mail_outbox", None):
        raise MailError("--mail-outbox is where mail goes without --smtp: give one or the other")
    host, port = smtp_endpoint(smtp)
    starttls = bool(getattr(args, "smtp_starttls", False))
    password = _password(args)
    if user and not starttls:
        raise MailError("--smtp-user: the password is only ever sent over TLS: add --smtp-starttls")
    if user and password is None:
        raise MailError(
            f"--smtp-user {user}: give the password in --smtp-password-file FILE or ${PASSWORD_ENV}"
        )
    if getattr(args, "smtp_password_file", None) and not user:
        raise MailError("--smtp-password-file goes with --smtp-user NAME")
    cafile = getattr(args, "smtp_cafile", None)
    if cafile and not Path(cafile).is_file():
        raise MailError(f"--smtp-cafile {cafile}: no such file")
    return SmtpSettings(host, port, starttls, user or None, password if user else None, cafile or None)


def check_mail_flags(args: argparse.Namespace) -> None:
    """Every mail flag checked, nothing touched (see :func:`smtp_settings`)."""
    settings = smtp_settings(args)
    mail_from = getattr(args, "mail_from", None)
    if mail_from is None and settings is not None:
        raise MailError(
            "--smtp needs --mail-from ADDRESS: the sender of every message, e.g. calls@example.org"
        )
    sender_address(mail_from or DEFAULT_FROM)


def transport_from_args(args: argparse.Namespace, store: Store) -> Transport:
    """The transport the flags ask for (the outbox folder is created now)."""
    settings = smtp_settings(args)
    if settings is None:
        outbox = getattr(args, "mail_outbox", None)
        transport = OutboxTransport(Path(outbox) if outbox else store.data_dir / OUTBOX)
        transport.prepare()
        return transport
    try:
        return SmtpTransport(settings)
    except (OSError, ValueError) as exc:  # an unreadable CA file
        raise MailError(f"--smtp-cafile {settings.cafile}: cannot load the certificates: {exc}") from None


def mail_sender(args: argparse.Namespace, store: Store) -> MailSender:
    """The server's mail sender, as the flags say (not started)."""
    transport = transport_from_args(args, store)
    mail_from = getattr(args, "mail_from", None)
    if mail_from is None and isinstance(transport, SmtpTransport):
        raise MailError(
            "--smtp needs --mail-from ADDRESS: the sender of every message, e.g. calls@example.org"
        )
    return MailSender(store, transport, mail_from=sender_address(mail_from or DEFAULT_FROM))
