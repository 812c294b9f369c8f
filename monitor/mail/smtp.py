"""Sending through an SMTP server (``--smtp HOST:PORT``), with the standard library's ``smtplib``.

One connection per batch of due messages: EHLO, then STARTTLS (when configured; the server's
certificate is verified, against ``cafile`` when given, and a server that does not offer STARTTLS
is an error, never a fall-back to plain text), then AUTH LOGIN/PLAIN (only over TLS), then one mail
transaction per message, each with its own outcome (a refused recipient fails that message, not
the batch). A connection that cannot be made or breaks fails every message not yet accepted.
``send`` blocks on the network: the sender runs it in a thread, off the event loop.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass, field

from monitor.mail.transport import Outgoing, error_text

TIMEOUT_S = 30.0
#: A refusal of one message, or one this server cannot take (an address needing SMTPUTF8 that it
#: does not offer): the connection is still good for the next.
REFUSED = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
    UnicodeError,
)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None  # CA certificates to verify the server with (default: the system's)
    timeout_s: float = TIMEOUT_S


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = (
        exc.smtp_error.decode("utf-8", "replace")
        if isinstance(exc.smtp_error, bytes)
        else str(exc.smtp_error)
    )
    return error_text(Exception(f"{exc.smtp_code} {text}"))


def why(exc: BaseException) -> str:
    """A failed attempt in one line: the server's reply when there is one."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = [f"{code} {text.decode('utf-8', 'replace')}" for code, text in exc.recipients.values()]
        return error_text(Exception("recipient refused: " + "; ".join(replies)))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "the SMTP server refused the login: " + _reply(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        return "the SMTP server answered " + _reply(exc)
    if isinstance(exc, smtplib.SMTPNotSupportedError | UnicodeError):
        return "the SMTP server does not support it: " + error_text(exc)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "TLS with the SMTP server failed: " + error_text(exc)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the SMTP server closed the connection: " + error_text(exc)
    if isinstance(exc, OSError):
        return "cannot reach the SMTP server: " + error_text(exc)
    return error_text(exc)


class SmtpTransport:
    delivered = "sent"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls: ssl.SSLContext | None = None
        if settings.starttls:
            self._tls = ssl.create_default_context(cafile=settings.cafile)

    def describe(self) -> str:
        s = self.settings
        extras = [
            word for word, on in (("STARTTLS", s.starttls), (f"login as {s.username}", s.username)) if on
        ]
        return f"SMTP server {s.host}:{s.port}" + (f" ({', '.join(extras)})" if extras else "")

    def where(self) -> dict[str, str]:
        return {"mail_smtp": f"{self.settings.host}:{self.settings.port}"}

    def send(self, batch: list[Outgoing]) -> list[str | None]:
        results: list[str | None] = []
        s = self.settings
        try:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            return [why(exc)] * len(batch)
        try:
            client.ehlo()
            if self._tls is not None:
                client.starttls(context=self._tls)
                client.ehlo()
            if s.username is not None:
                client.login(s.username, s.password or "")
            for item in batch:
                try:
                    client.send_message(item.message)
                except REFUSED as exc:
                    results.append(why(exc))  # this message only; smtplib has reset the transaction
                else:
                    results.append(None)
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            results += [why(exc)] * (len(batch) - len(results))
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()  # what was accepted is sent, whatever QUIT answers
            client.close()
        return results
