"""`monitor` command line. Each subcommand lives in its own module, imported only when used,
so `monitor booking check` does not pay for loading the face models."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from monitor.errors import UserError
from policies.booking import BookingError
from policies.config import PolicyError

# subcommand path -> (module, function, help). The module's ``add_arguments(parser)`` (if any,
# named ``add_<function>_arguments``) declares flags; the function takes the parsed args, returns
# the exit code.
Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, function: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        handler: Handler = getattr(importlib.import_module(module), function)
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Live monitor for secure prison video calls.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    booking = commands.add_parser("booking", help="work with booking files")
    booking_commands = booking.add_subparsers(dest="booking_command", metavar="ACTION", required=True)
    check = booking_commands.add_parser("check", help="validate a booking file and its reference photos")
    check.add_argument("file", help="booking JSON file")
    check.add_argument("--policy", help="policy TOML file overriding policies/default.toml")
    check.set_defaults(handler=_lazy("monitor.bookings", "run_check"))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (UserError, BookingError, PolicyError) as exc:
        print(f"monitor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
