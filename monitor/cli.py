"""`monitor` command line. Each subcommand lives in its own module, imported only when used,
so `monitor booking check` does not pay for loading the face models."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """Never repeats the values given with flags it does not know: one may be a secret typed in the
    wrong place (``--smtp-pass SECRET``), and the error goes to logs and terminals."""

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            flags = [a for a in message[len(prefix) :].split() if a.startswith("-")]
            message = f"unrecognized flags: {' '.join(flags)}" if flags else "unrecognized arguments"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="monitor", description="Live monitor for secure prison video calls.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    booking = commands.add_parser("booking", help="work with booking files")
    booking_commands = booking.add_subparsers(dest="booking_command", metavar="ACTION", required=True)
    check = booking_commands.add_parser("check", help="validate a booking file and its reference photos")
    check.add_argument("file", help="booking JSON file")
    check.add_argument("--policy", help="policy TOML file overriding policies/default.toml")
    check.set_defaults(handler=_lazy("monitor.bookings", "run_check"))

    replay = commands.add_parser("replay", help="replay a recorded call video: analysis + policy -> timeline")
    replay.add_argument("video", help="video file PyAV can read (mp4, webm, mov, avi, ...)")
    replay.add_argument("--booking", required=True, help="booking JSON file the call was booked with")
    replay.add_argument("--policy", help="policy TOML file overriding policies/default.toml")
    replay.add_argument("--events", help="JSON-lines client/staff events to inject at media times")
    replay.add_argument("--out", help="write the timeline here (atomically) instead of stdout")
    replay.add_argument("--evidence", help="directory for a JPEG of the frame behind every alert")
    replay.add_argument("--offset", type=float, default=0.0, help="call seconds at the first frame (0)")
    replay.set_defaults(handler=_lazy("monitor.replay.command", "run_replay"))

    from monitor import admin  # cheap: declares `prisoner`, `visitor`, `staff`, `audit` and `book`

    admin.add_commands(commands, _lazy)
    from monitor.cluster.command import add_node_commands  # cheap: argparse only

    add_node_commands(commands, _lazy)

    # no abbreviations: `--metrics-token SECRET` must not pass for --metrics-token-file (and show in `ps`)
    serve_cmd = commands.add_parser(
        "serve", help="run live calls: join pages, signalling, relay, console", allow_abbrev=False
    )
    from monitor.server.args import add_serve_arguments  # cheap: argparse only

    add_serve_arguments(serve_cmd)
    from monitor.server.metrics import add_metrics_arguments  # cheap: --metrics-token-file for /metrics

    add_metrics_arguments(serve_cmd)
    serve_cmd.set_defaults(handler=_lazy("monitor.server.command", "run_serve"))

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
