"""`monitor link revoke` and `monitor link reissue`: withdraw one person's join links of a call, or give
them a new link (which withdraws the earlier ones).

A running `monitor serve` re-checks the link of every connected device every few seconds
(``signalling.messages.LINK_RECHECK_S``), so a device that joined with a link withdrawn since is
disconnected with an error frame that says so, and cannot join again with it. Both actions go to
the audit log.
"""

from __future__ import annotations

import argparse
import json
import sys

from monitor.admin.booking import JOIN_EARLY_S
from monitor.admin.common import add_db_argument, join_base_url, open_store
from monitor.errors import UserError
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from signalling.messages import LINK_RECHECK_S


def _role(store: Store, call_id: str, participant: str) -> tuple[str, str, float, float]:
    """(role, prison, opens, closes) of a person booked on a call; UserError naming what is wrong."""
    row = store.booking(call_id)
    if row is None:
        raise UserError(f"--call {call_id}: no such booked call")
    if participant == row.prisoner_id:
        role = "prisoner"
    elif participant in {v.visitor_id for v in row.visitors}:
        role = "visitor"
    else:
        booked = ", ".join([row.prisoner_id, *(v.visitor_id for v in row.visitors)])
        raise UserError(f"--participant {participant}: not booked on {call_id} (booked: {booked})")
    return role, row.prison, row.starts_at - JOIN_EARLY_S, row.ends_at


def run_link_revoke(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        _, prison, _, _ = _role(store, args.call, args.participant)
        count = store.revoke_join_tokens(args.call, args.participant)
        AuditLog(store).append(
            "link_revoked",
            {"participant": args.participant, "links": count},
            prison=prison,
            call_id=args.call,
            actor="admin",
        )
    if count == 0:
        print(f"{args.participant} on {args.call} had no working join link; nothing to withdraw")
    else:
        print(
            f"withdrew {count} join link{'s' if count > 1 else ''} of {args.participant} on {args.call}; "
            f"a device connected with {'one' if count > 1 else 'it'} is disconnected within "
            f"{LINK_RECHECK_S:.0f} s"
        )
    return 0


def run_link_reissue(args: argparse.Namespace) -> int:
    links_base = join_base_url(args.base_url)
    with open_store(args, must_exist=True) as store:
        role, prison, opens, closes = _role(store, args.call, args.participant)
        call = store.call(args.call)
        if closes <= store.clock() or (call is not None and call.state == "ended"):
            raise UserError(f"--call {args.call}: the call is over; there is nothing to join")
        token = store.issue_join_token(args.call, args.participant, role, opens, closes, revoke_earlier=True)
        AuditLog(store).append(
            "link_issued",
            {"participant": args.participant, "role": role},
            prison=prison,
            call_id=args.call,
            actor="admin",
        )
    print(
        f"issued a new join link for {args.participant} on {args.call}; earlier links of "
        f"{args.participant} no longer work",
        file=sys.stderr,
    )
    url = f"{links_base}/join/{token}"
    print(json.dumps({"call_id": args.call, "role": role, "participant": args.participant, "url": url}))
    return 0


def add_link_arguments(parser: argparse.ArgumentParser, *, base_url: bool) -> None:
    parser.add_argument("--call", required=True, help="call id")
    parser.add_argument("--participant", required=True, help="the booked person's id (visitor or prisoner)")
    if base_url:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8080",
            help="server address for the join link (default http://127.0.0.1:8080)",
        )
    add_db_argument(parser)


def add_link_revoke_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser, base_url=False)


def add_link_reissue_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser, base_url=True)
