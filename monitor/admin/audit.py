"""`monitor audit verify`: walk the audit chain, check it against its checkpoint file, and name
the first broken record or what is missing. It prints the head (record count and hash) to compare
with a copy kept elsewhere: someone who holds the database, its key and its checkpoint file can
rewrite all three consistently, and only an outside copy of the head catches that."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.admin.common import add_db_argument, open_store
from monitor.store.audit import AuditLog


def run_audit_verify(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        result = AuditLog(store).verify(checkpoints=args.checkpoints)
    if not result.ok:
        print(f"monitor: audit chain broken: {result.problem}", file=sys.stderr)
        if result.checkpoint:
            print(f"newest checkpoint: {result.checkpoint}", file=sys.stderr)
        return 2
    if not result.keyed:
        print(
            f"ok: {result.records} audit records, plain chain intact, head {result.head}\n"
            "warning: this chain is not keyed yet (the next record written keys it): until then "
            "deleting its newest records cannot be detected",
        )
        return 0
    print(f"ok: {result.records} audit records, chain intact, head {result.head}")
    print(f"newest checkpoint: {result.checkpoint or 'none (no records)'}")
    return 0


def add_audit_verify_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
    parser.add_argument(
        "--checkpoints",
        type=Path,
        metavar="FILE",
        help="the chain's checkpoint file (default: beside the database, <db>.audit-checkpoints, or "
        "$MONITOR_AUDIT_CHECKPOINT), e.g. a copy kept elsewhere",
    )
