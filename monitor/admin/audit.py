"""`monitor audit verify`: walk the audit hash chain and name the first broken record."""

from __future__ import annotations

import argparse
import sys

from monitor.admin.common import add_db_argument, open_store
from monitor.store.audit import AuditLog


def run_audit_verify(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        result = AuditLog(store).verify()
    if not result.ok:
        print(f"monitor: audit chain broken: {result.problem}", file=sys.stderr)
        return 2
    print(f"ok: {result.records} audit records, chain intact, head {result.head}")
    return 0


def add_audit_verify_arguments(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
