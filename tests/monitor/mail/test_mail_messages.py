"""Every message a family gets: what it says, in which time zone, and what is refused."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from mail_parts import body_html, body_text

from monitor.mail.messages import (
    KINDS,
    AccountRefused,
    AccountVerified,
    AddressConfirmation,
    AlreadyRegistered,
    CallBooked,
    CallCancelled,
    CallReminder,
    ContactApproved,
    ContactRefused,
    MailContent,
    MailError,
    PersonApproved,
    PersonRefused,
    RequestDeclined,
    compose,
    mail_address,
    render,
    when,
)

SUMMER = 1782910800.0  # 2026-07-01 13:00 UTC: 14:00 in London (BST)
WINTER = 1768381200.0  # 2026-01-14 09:00 UTC: 09:00 in London (GMT)
JOIN = "https://calls.example.org/join/tok3n"


def booked(**changes: object) -> CallBooked:
    fields: dict[str, object] = {
        "name": "Ann Smith",
        "prisoner_name": "John Smith",
        "prison": "HMP Example",
        "time_zone": "Europe/London",
        "starts_at": SUMMER,
        "ends_at": SUMMER + 1800,
        "join_link": JOIN,
        "call_id": "c1",
    }
    fields.update(changes)
    return CallBooked(**fields)  # type: ignore[arg-type]


def test_call_booked_says_when_in_the_prisons_time_zone_and_gives_the_link() -> None:
    rendered = render(booked())
    assert rendered.subject == "Your video call is booked"
    assert "Dear Ann Smith," in rendered.text
    assert "John Smith at HMP Example" in rendered.text
    assert "When: Wednesday 1 July 2026, 14:00 to 14:30 (Europe/London time, BST)." in rendered.text
    assert "15 minutes before" in rendered.text
    assert JOIN in rendered.text and f'href="{JOIN}"' in rendered.html
    winter = render(booked(starts_at=WINTER, ends_at=WINTER + 1800))
    assert "Wednesday 14 January 2026, 09:00 to 09:30 (Europe/London time, GMT)" in winter.text
    # another prison, another zone: the same instant is written as its local time there
    assert when(SUMMER, "America/New_York") == "Wednesday 1 July 2026, 09:00"


def test_every_kind_renders_with_its_own_words() -> None:
    link = "https://calls.example.org/family"
    contents: list[MailContent] = [
        AddressConfirmation("Ann", "https://calls.example.org/family/confirm/abc"),
        AccountVerified("Ann", link),
        AccountRefused("Ann", "the photo of the passport is too blurred to read", link),
        booked(),
        CallReminder("Ann", "John Smith", "HMP Example", "Europe/London", SUMMER, SUMMER + 1800, JOIN, "c1"),
        CallCancelled(
            "Ann", "John Smith", "HMP Example", "Europe/London", SUMMER, "c1", "the prison is closed"
        ),
        AlreadyRegistered("Ann", link),
        ContactApproved("Ann", "John Smith", "HMP Example", link),
        ContactRefused("Ann", "John Smith", "HMP Example", "a court order", link),
        PersonApproved("Ann", "Amy Smith", link),
        PersonRefused("Ann", "Amy Smith", "the photo ID is not hers", link),
        RequestDeclined("Ann", "John Smith", "HMP Example", "no calls that week", link),
    ]
    assert sorted(KINDS) == sorted(c.kind for c in contents)
    subjects = set()
    for content in contents:
        rendered = render(content)
        subjects.add(rendered.subject)
        assert rendered.text.startswith("Dear Ann")
        assert rendered.html.startswith("<!DOCTYPE html>") and 'lang="en"' in rendered.html
        assert "Replies are not read." in rendered.text
    assert len(subjects) == len(contents)
    assert "/family/confirm/abc" in render(contents[0]).text
    assert "The reason: the photo of the passport is too blurred to read" in render(contents[2]).text
    reminder = render(contents[4])
    assert reminder.subject.startswith("Reminder") and JOIN in reminder.text and "14:00" in reminder.text
    cancelled = render(contents[5])
    assert "Wednesday 1 July 2026, 14:00 (Europe/London time, BST) has been cancelled" in cancelled.text
    assert "The reason: the prison is closed" in cancelled.text
    without_reason = render(CallCancelled("Ann", "John", "HMP X", "Europe/London", SUMMER, "c1"))
    assert "The reason" not in without_reason.text


def test_html_escapes_what_people_typed() -> None:
    rendered = render(AccountRefused('<b>Ann</b> "x"', "<script>alert(1)</script>", "https://x.org/f"))
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<b>Ann</b>" not in rendered.html
    assert "<script>alert(1)</script>" in rendered.text  # plain text is plain


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda: booked(join_link="javascript:alert(1)"),
            "join_link 'javascript:alert(1)' is not an http(s) link",
        ),
        (lambda: booked(join_link="https://x.org/a b"), "is not an http(s) link"),
        (lambda: booked(time_zone="Mars/Olympus"), "time_zone 'Mars/Olympus': not a known time zone"),
        (lambda: booked(ends_at=SUMMER), "call_booked: ends_at must be after starts_at"),
        (lambda: booked(name="  "), "call_booked: name is empty"),
        (lambda: booked(prison="HMP\rX"), "call_booked: prison has control characters"),
        (lambda: AddressConfirmation("Ann", "ftp://x.org/c"), "address_confirmation: link"),
        (
            lambda: booked(join_links=(("Ann", JOIN), ("Amy", "ftp://x.org/j"))),
            "call_booked: join_links 'ftp://x.org/j' is not an http(s) link",
        ),
        (lambda: booked(join_links=(("", JOIN),)), "call_booked: join_links: a person's name is empty"),
    ],
)
def test_a_message_that_cannot_be_made_says_which_field(make: object, words: str) -> None:
    with pytest.raises(MailError) as caught:
        make()  # type: ignore[operator]
    assert words in str(caught.value)


@pytest.mark.parametrize("good", ["ann@example.org", "ann.smith+calls@mail.example.co.uk"])
def test_good_addresses(good: str) -> None:
    assert mail_address(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ann",
        "ann@",
        "@example.org",
        "ann@localhost",
        "Ann <ann@example.org>",
        "ann@example.org\r\nBcc: x@y.org",
        "a b@example.org",
        "ann@example.org,bob@example.org",
    ],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(MailError, match="not an email address"):
        mail_address(bad)


def test_composed_message_has_both_parts_and_a_stable_message_id() -> None:
    rendered = render(booked())
    made = [
        compose(
            subject=rendered.subject,
            text=rendered.text,
            html_part=rendered.html,
            to="ann@example.org",
            mail_from="Prison video calls <calls@prison.example.org>",
            message_token="0123abcd",
            created_at=SUMMER,
        )
        for _ in range(2)
    ]
    parsed = message_from_bytes(made[0].as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Message-ID"] == "<0123abcd@prison.example.org>" == made[1]["Message-ID"]
    assert parsed["To"] == "ann@example.org" and parsed["Subject"] == "Your video call is booked"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"] == "Wed, 01 Jul 2026 13:00:00 +0000"
    assert JOIN in body_text(parsed) and f'href="{JOIN}"' in body_html(parsed)
