"""Admin commands on the store: `monitor prisoner add`, `visitor add`, `book`, `link revoke|reissue`,
`staff add|disable|enable|password|sessions|role`, `audit verify`.

Each prints what it did (one line, or one JSON line per join link for `book`); bad input raises a
UserError that the CLI prints as one line with a non-zero exit. One module per command group:
``people`` (prisoners, visitors and photo enrolment), ``booking`` (`monitor book`, join links),
``links`` (withdrawing and reissuing join links), ``staff`` (staff accounts, the demo account),
``audit`` (`audit verify`), ``imported`` (bookings that reach the store from files or the demo,
and stored bookings read back for `monitor serve`), ``common`` (``--db``). This module declares the
subcommands; their handlers are imported when run.

May import: ``monitor.store``, ``monitor.analysis`` (enrolling photos), ``monitor.bookings``,
``monitor.errors``, ``signalling`` and ``policies``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from monitor.admin import audit, booking, links, people, staff
from monitor.admin.booking import join_links
from monitor.admin.demo_family import demo_family
from monitor.admin.imported import current_demo_call, import_booking, stored_booking
from monitor.admin.staff import demo_staff

Lazy = Callable[[str, str], Callable[[argparse.Namespace], int]]
Declare = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: Any, lazy: Lazy) -> None:
    """Declare the admin subcommands on the CLI's subparsers (handlers imported when run)."""
    nouns: dict[str, tuple[str, list[tuple[str, str, Declare, str, str]]]] = {
        "prisoner": (
            "prisoners",
            [("add", "add a prisoner", people.add_prisoner_add_arguments, "people", "run_prisoner_add")],
        ),
        "visitor": (
            "visitors",
            [
                (
                    "add",
                    "add a visitor to a prisoner's visitor list, enrolling their photos",
                    people.add_visitor_add_arguments,
                    "people",
                    "run_visitor_add",
                )
            ],
        ),
        "staff": (
            "staff accounts",
            [
                ("add", "add a staff account", staff.add_staff_add_arguments, "staff", "run_staff_add"),
                (
                    "disable",
                    "disable a staff account (its open sessions end)",
                    staff.add_staff_account_arguments,
                    "staff",
                    "run_staff_disable",
                ),
                (
                    "enable",
                    "enable a disabled staff account",
                    staff.add_staff_account_arguments,
                    "staff",
                    "run_staff_enable",
                ),
                (
                    "password",
                    "give a staff account a new password (its open sessions end)",
                    staff.add_staff_password_arguments,
                    "staff",
                    "run_staff_password",
                ),
                (
                    "sessions",
                    "list a staff account's sessions; --revoke ends the open ones",
                    staff.add_staff_sessions_arguments,
                    "staff",
                    "run_staff_sessions",
                ),
                (
                    "role",
                    "make a staff account a governor (prison settings, extra calls) or plain staff",
                    staff.add_staff_role_arguments,
                    "staff",
                    "run_staff_role",
                ),
            ],
        ),
        "link": (
            "join links",
            [
                (
                    "revoke",
                    "withdraw a person's join links of a call (connected devices are disconnected)",
                    links.add_link_revoke_arguments,
                    "links",
                    "run_link_revoke",
                ),
                (
                    "reissue",
                    "give a person a new join link of a call (earlier links stop working)",
                    links.add_link_reissue_arguments,
                    "links",
                    "run_link_reissue",
                ),
            ],
        ),
        "audit": (
            "the audit log",
            [
                (
                    "verify",
                    "verify the audit hash chain",
                    audit.add_audit_verify_arguments,
                    "audit",
                    "run_audit_verify",
                )
            ],
        ),
    }
    for noun, (what, actions) in nouns.items():
        parser = commands.add_parser(noun, help=f"manage {what}")
        sub = parser.add_subparsers(dest=f"{noun}_command", metavar="ACTION", required=True)
        for action, help_text, declare, module, handler in actions:
            action_parser = sub.add_parser(action, help=help_text)
            declare(action_parser)
            action_parser.set_defaults(handler=lazy(f"monitor.admin.{module}", handler))
    book = commands.add_parser("book", help="book a call from the store and print its join links")
    booking.add_book_arguments(book)
    book.set_defaults(handler=lazy("monitor.admin.booking", "run_book"))


__all__ = [
    "add_commands",
    "current_demo_call",
    "demo_family",
    "demo_staff",
    "import_booking",
    "join_links",
    "stored_booking",
]
