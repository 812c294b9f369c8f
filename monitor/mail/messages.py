"""Every message a family gets, in plain words: a plain-text part and a simple HTML part.

Each kind of message is a frozen dataclass of what it says (checked when it is made: a missing
link, an unknown time zone or an end before the start is a :class:`MailError` naming the field);
:func:`render` turns one into its subject, text and HTML. Times are written in the prison's time
zone, with the zone named, because a family may be elsewhere. :func:`compose` makes the RFC 5322
message that is sent, from what was queued plus the sender's address.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.errors import UserError

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
SERVICE = "Prison video calls"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MailError(UserError):
    """A message that cannot be made or addressed as given (one line naming what is wrong)."""


def mail_address(value: str, what: str = "email address", *, dotted: bool = True) -> str:
    """One plain address (``name@example.org``), checked; refused with a clear message otherwise.
    ``dotted``: the domain must have a dot (a family's address; a server's may be ``localhost``)."""
    if not isinstance(value, str) or _CONTROL.search(value) or " " in value or len(value) > 254:
        raise MailError(f"{what} {value!r}: not an email address")
    try:
        address = Address(addr_spec=value)
    except (HeaderParseError, ValueError, IndexError):
        raise MailError(f"{what} {value!r}: not an email address") from None
    if not address.username or not address.domain or address.addr_spec != value:
        raise MailError(f"{what} {value!r}: not an email address")
    if dotted and "." not in address.domain.strip("."):
        raise MailError(f"{what} {value!r}: not an email address")
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MailError(f"time_zone {name!r}: not a known time zone (e.g. Europe/London)") from None


def when(at: float, time_zone: str) -> str:
    """``Tuesday 3 March 2026, 14:30`` in ``time_zone``."""
    local = datetime.fromtimestamp(at, UTC).astimezone(_zone(time_zone))
    return f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year}, {local:%H:%M}"


def _clock(at: float, time_zone: str) -> str:
    return f"{datetime.fromtimestamp(at, UTC).astimezone(_zone(time_zone)):%H:%M}"


def _zone_words(at: float, time_zone: str) -> str:
    abbreviation = datetime.fromtimestamp(at, UTC).astimezone(_zone(time_zone)).tzname() or ""
    return f"{time_zone} time" + (f", {abbreviation}" if abbreviation and abbreviation[0].isalpha() else "")


def _check_link(kind: str, name: str, link: object) -> None:
    text = link if isinstance(link, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in text for c in ' "<>'):
        raise MailError(f"{kind}: {name} {link!r} is not an http(s) link")


class _Checked:
    """Checks the fields of a message when it is made: text not empty, links http(s)."""

    kind: ClassVar[str]
    _links: ClassVar[tuple[str, ...]] = ()
    _optional: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, str):
                if _CONTROL.search(value.replace("\n", "")):
                    raise MailError(f"{self.kind}: {field.name} has control characters")
                if not value.strip() and field.name not in self._optional:
                    raise MailError(f"{self.kind}: {field.name} is empty")
        for name in self._links:
            _check_link(self.kind, name, getattr(self, name))
        for person, link in getattr(self, "join_links", ()):
            if not isinstance(person, str) or not person.strip() or _CONTROL.search(person):
                raise MailError(
                    f"{self.kind}: join_links: a person's name is empty or has control characters"
                )
            _check_link(self.kind, "join_links", link)
        zone = getattr(self, "time_zone", None)
        if zone is not None:
            _zone(zone)
        starts, ends = getattr(self, "starts_at", None), getattr(self, "ends_at", None)
        if starts is not None and ends is not None and ends <= starts:
            raise MailError(f"{self.kind}: ends_at must be after starts_at")


@dataclass(frozen=True, slots=True)
class AddressConfirmation(_Checked):
    """Sent at registration: the link that confirms the address."""

    name: str
    link: str
    kind: ClassVar[str] = "address_confirmation"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class AccountVerified(_Checked):
    name: str
    link: str  # the family pages
    kind: ClassVar[str] = "account_verified"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class AccountRefused(_Checked):
    name: str
    reason: str  # staff's words, given to the family as they are
    link: str
    kind: ClassVar[str] = "account_refused"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class CallBooked(_Checked):
    name: str
    prisoner_name: str
    prison: str
    time_zone: str  # the prison's (IANA name)
    starts_at: float  # UTC epoch seconds
    ends_at: float
    join_link: str  # the main caller's
    call_id: str
    join_opens_minutes: int = 15
    join_links: tuple[tuple[str, str], ...] = ()  # (name, link) of each person, when more than one
    cancel_until: float | None = None  # the family may cancel until then
    kind: ClassVar[str] = "call_booked"
    _links: ClassVar[tuple[str, ...]] = ("join_link",)


@dataclass(frozen=True, slots=True)
class CallReminder(_Checked):
    name: str
    prisoner_name: str
    prison: str
    time_zone: str
    starts_at: float
    ends_at: float
    join_link: str
    call_id: str
    join_opens_minutes: int = 15
    join_links: tuple[tuple[str, str], ...] = ()
    kind: ClassVar[str] = "call_reminder"
    _links: ClassVar[tuple[str, ...]] = ("join_link",)


@dataclass(frozen=True, slots=True)
class CallCancelled(_Checked):
    name: str
    prisoner_name: str
    prison: str
    time_zone: str
    starts_at: float
    call_id: str
    reason: str = ""  # why, in words for the family; may be empty
    kind: ClassVar[str] = "call_cancelled"
    _optional: ClassVar[tuple[str, ...]] = ("reason",)


@dataclass(frozen=True, slots=True)
class AlreadyRegistered(_Checked):
    """Someone tried to open an account with an address that has one (the page says the same
    either way, so it cannot be used to find out who has an account)."""

    name: str  # the account holder's
    link: str  # the family pages
    kind: ClassVar[str] = "already_registered"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class ContactApproved(_Checked):
    name: str
    prisoner_name: str
    prison: str
    link: str
    kind: ClassVar[str] = "contact_approved"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class ContactRefused(_Checked):
    name: str
    prisoner_name: str
    prison: str
    reason: str
    link: str
    kind: ClassVar[str] = "contact_refused"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class PersonApproved(_Checked):
    name: str
    person_name: str  # the person added to the account
    link: str
    kind: ClassVar[str] = "person_approved"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class PersonRefused(_Checked):
    name: str
    person_name: str
    reason: str
    link: str
    kind: ClassVar[str] = "person_refused"
    _links: ClassVar[tuple[str, ...]] = ("link",)


@dataclass(frozen=True, slots=True)
class RequestDeclined(_Checked):
    """A staff-booked prison declined a family's request for a call."""

    name: str
    prisoner_name: str
    prison: str
    reason: str
    link: str
    kind: ClassVar[str] = "request_declined"
    _links: ClassVar[tuple[str, ...]] = ("link",)


MailContent = (
    AddressConfirmation
    | AccountVerified
    | AccountRefused
    | CallBooked
    | CallReminder
    | CallCancelled
    | AlreadyRegistered
    | ContactApproved
    | ContactRefused
    | PersonApproved
    | PersonRefused
    | RequestDeclined
)
KINDS: dict[str, type[MailContent]] = {
    cls.kind: cls
    for cls in (
        AddressConfirmation,
        AccountVerified,
        AccountRefused,
        CallBooked,
        CallReminder,
        CallCancelled,
        AlreadyRegistered,
        ContactApproved,
        ContactRefused,
        PersonApproved,
        PersonRefused,
        RequestDeclined,
    )
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


# A message is paragraphs; a paragraph is plain text, or (text, link) for a line with a link.
Paragraph = str | tuple[str, str]


def _text(greeting: str, paragraphs: list[Paragraph]) -> str:
    lines = [greeting, ""]
    for paragraph in paragraphs:
        if isinstance(paragraph, tuple):
            words, link = paragraph
            lines += [words, link, ""]
        else:
            lines += [paragraph, ""]
    lines += [SERVICE, "This email was sent automatically. Replies are not read."]
    return "\n".join(lines) + "\n"


def _html(subject: str, greeting: str, paragraphs: list[Paragraph]) -> str:
    e = html.escape
    body = [f"<p>{e(greeting)}</p>"]
    for paragraph in paragraphs:
        if isinstance(paragraph, tuple):
            words, link = paragraph
            body.append(
                f'<p>{e(words)}<br><a href="{e(link)}" style="display:inline-block;padding:12px 20px;'
                'background:#0b5394;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold">'
                f"{e(words.rstrip(':'))}</a></p>"
                f'<p style="font-size:90%;color:#555555">If the button does not work, copy this link into '
                f"your browser: {e(link)}</p>"
            )
        else:
            body.append(f"<p>{e(paragraph)}</p>")
    footer = "This email was sent automatically. Replies are not read."
    body.append(f'<p style="color:#555555">{e(SERVICE)}<br>{footer}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(subject)}</title></head>\n"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a;'
        'max-width:600px;margin:0 auto;padding:16px">\n' + "\n".join(body) + "\n</body></html>\n"
    )


def _call_time(starts_at: float, ends_at: float | None, time_zone: str) -> str:
    span = when(starts_at, time_zone) + (f" to {_clock(ends_at, time_zone)}" if ends_at is not None else "")
    return f"{span} ({_zone_words(starts_at, time_zone)})"


def _parts(content: MailContent) -> tuple[str, list[Paragraph]]:
    if isinstance(content, AddressConfirmation):
        return "Confirm your email address", [
            "Thank you for creating an account for prison video calls.",
            ("Please confirm this is your email address:", content.link),
            "If you did not create an account, you can ignore this email.",
        ]
    if isinstance(content, AccountVerified):
        return "Your account is verified", [
            "We have checked your identity documents. Your account is verified.",
            "You can now add the person in prison you want to call, and book a call.",
            ("Open your account:", content.link),
        ]
    if isinstance(content, AccountRefused):
        return "We could not verify your account", [
            "We have checked your identity documents and could not verify your account.",
            f"The reason: {content.reason}",
            "You can upload new documents and we will check them again.",
            ("Open your account:", content.link),
        ]
    if isinstance(content, CallBooked | CallReminder):
        return _call_parts(content)
    if isinstance(content, AlreadyRegistered):
        return "You already have an account", [
            "Someone tried to open an account for prison video calls with this email address, "
            "which already has one.",
            ("If that was you, sign in instead:", content.link),
            "If it was not you, you can ignore this email: nothing has changed.",
        ]
    if isinstance(content, ContactApproved):
        return f"You can now book calls with {content.prisoner_name}", [
            f"{content.prison} has approved your calls with {content.prisoner_name}. "
            "Everyone approved on your account is on their visitor list.",
            ("Book a call:", content.link),
        ]
    if isinstance(content, ContactRefused):
        return f"{content.prison} did not approve your calls with {content.prisoner_name}", [
            f"{content.prison} did not approve your calls with {content.prisoner_name}.",
            f"The reason: {content.reason}",
            ("Open your account:", content.link),
        ]
    if isinstance(content, PersonApproved):
        return f"{content.person_name} can now join your calls", [
            f"We have checked the documents of {content.person_name}. They can now join your calls.",
            ("Open your account:", content.link),
        ]
    if isinstance(content, PersonRefused):
        return f"We could not approve {content.person_name}", [
            f"We have checked the documents of {content.person_name} and could not approve them for calls.",
            f"The reason: {content.reason}",
            "You can upload new documents and we will check them again.",
            ("Open your account:", content.link),
        ]
    if isinstance(content, RequestDeclined):
        return "Your request for a call was declined", [
            f"{content.prison} could not book the call you asked for with {content.prisoner_name}.",
            f"The reason: {content.reason}",
            "You can ask again with other times.",
            ("Open your account:", content.link),
        ]
    time = _call_time(content.starts_at, None, content.time_zone)
    paragraphs: list[Paragraph] = [
        f"Your video call with {content.prisoner_name} at {content.prison} on {time} has been cancelled."
    ]
    if content.reason.strip():
        paragraphs.append(f"The reason: {content.reason}")
    paragraphs.append("The join link for this call no longer works. You can book another call.")
    return "Your video call is cancelled", paragraphs


def _call_parts(content: CallBooked | CallReminder) -> tuple[str, list[Paragraph]]:
    time = _call_time(content.starts_at, content.ends_at, content.time_zone)
    links = "The links work" if len(content.join_links) > 1 else "The link works"
    opens = f"{links} from {content.join_opens_minutes} minutes before the call starts."
    if isinstance(content, CallBooked):
        subject = "Your video call is booked"
        first = f"Your video call with {content.prisoner_name} at {content.prison} is booked."
    else:
        subject = "Reminder: your video call is coming up"
        first = f"This is a reminder of your video call with {content.prisoner_name} at {content.prison}."
    paragraphs: list[Paragraph] = [
        first,
        f"When: {time}.",
        f"{opens} Use a phone or tablet with its camera and microphone turned on.",
    ]
    if len(content.join_links) > 1:
        paragraphs.append("Each person joins with their own link, on their own phone or tablet:")
        paragraphs += [(f"Join as {person}:", link) for person, link in content.join_links]
    else:
        paragraphs.append(("Join the call:", content.join_link))
    paragraphs.append("Everyone on the call must have been added to your account and approved.")
    if isinstance(content, CallBooked) and content.cancel_until is not None:
        until = when(content.cancel_until, content.time_zone)
        paragraphs.append(f"If you cannot make it, cancel the call on your account until {until}.")
    return subject, paragraphs


def render(content: MailContent) -> Rendered:
    """The subject, plain text and HTML of one message."""
    subject, paragraphs = _parts(content)
    greeting = f"Dear {content.name},"
    return Rendered(subject, _text(greeting, paragraphs), _html(subject, greeting, paragraphs))


def compose(
    *,
    subject: str,
    text: str,
    html_part: str,
    to: str,
    mail_from: str,
    message_token: str,
    created_at: float,
) -> EmailMessage:
    """The message as sent: headers, then the plain text with the HTML as its alternative."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = formatdate(created_at, usegmt=True)
    domain = message["From"].addresses[0].domain or "localhost"
    message["Message-ID"] = f"<{message_token}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    message.set_content(text)
    message.add_alternative(html_part, subtype="html")
    return message
