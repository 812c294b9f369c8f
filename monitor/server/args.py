"""`monitor serve` flags, kept apart from monitor/server/serve.py so building the CLI stays cheap."""

from __future__ import annotations

import argparse
import os


class _PasswordRefused(argparse.Action):
    """``--smtp-password VALUE``: refused without repeating the value (and, being a flag of its own,
    it is not taken as an abbreviation of ``--smtp-password-file``)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        parser.error(
            "--smtp-password: a password on the command line can be read by other users of the machine; "
            "put it in --smtp-password-file FILE or $MONITOR_SMTP_PASSWORD"
        )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument(
        "--booking", action="append", default=[], metavar="FILE", help="booking JSON (repeatable)"
    )
    parser.add_argument("--policy", help="policy TOML file overriding policies/default.toml")
    parser.add_argument(
        "--record",
        metavar="DIR",
        help="where calls are recorded (every camera and microphone as WebM, and the live timeline, "
        "under DIR/<call_id>/); default: the data folder beside the database, <db>-data/recordings",
    )
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not record calls (every call is recorded by default); logged at start and written "
        "to each call's audit records",
    )
    parser.add_argument(
        "--demo", action="store_true", help="serve a demo call from the fixture media, starting now"
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for clients and relay (stun:HOST:PORT, turn:USER:PASS@HOST:PORT); "
        "none by default",
    )
    parser.add_argument(
        "--ice-host",
        action="append",
        default=[],
        metavar="ADDR",
        help="host addresses the relay offers as ICE candidates (default: every interface, plus 127.0.0.1 "
        "when listening on loopback)",
    )
    parser.add_argument(
        "--analysis-workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="analysis worker processes (per relay worker with --relay-workers)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        metavar="N",
        help="scheduling niceness of the server and every worker it starts (-20..19; below the "
        "current one needs CAP_SYS_NICE or a raised RLIMIT_NICE, e.g. systemd's Nice= or LimitNICE=): "
        "-5 keeps pause latency when other work shares the machine (docs/operations.md)",
    )
    parser.add_argument(
        "--relay-workers",
        type=int,
        default=0,
        metavar="N",
        help="run the calls' media, policy and recording in N worker processes (e.g. one per core), "
        "each call on the least-loaded one; 0 (default): everything in this process",
    )
    from monitor.call.admission import DEFAULT_MAX_CALLS, DEFAULT_MAX_CPU  # cheap: no imports of its own

    parser.add_argument(
        "--max-calls",
        type=int,
        metavar="N",
        help="a fixed limit of calls running at once (per relay worker with --relay-workers, where it "
        f"defaults to {DEFAULT_MAX_CALLS}); by default the server takes calls while its measured load "
        "allows (--max-cpu, loop lag, analysis backlog: docs/operations.md, Capacity); a device that "
        "would start one more is refused with over_capacity",
    )
    parser.add_argument(
        "--max-cpu",
        type=float,
        default=DEFAULT_MAX_CPU,
        metavar="SHARE",
        help=f"take no new call while this server and its workers use more than this share of the "
        f"machine's cores (default {DEFAULT_MAX_CPU}, counting each call started in the last 20 s as "
        "0.1 of a core more)",
    )
    parser.add_argument(
        "--db",
        metavar="DB",
        help="the store: a SQLite file, or postgresql://USER@HOST:PORT/NAME shared by several nodes "
        "(default $MONITOR_DB, else ./monitor.db); a PostgreSQL password goes in ~/.pgpass, $PGPASSWORD "
        "or $MONITOR_DB, never on the command line",
    )
    parser.add_argument(
        "--node",
        metavar="NAME",
        help="this server's name among the nodes sharing one PostgreSQL database (default: the host "
        "name); two servers with one name are refused, and a node starting again marks only its own "
        "calls interrupted",
    )
    parser.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="browser origin allowed on the join and console WebSockets, e.g. https://calls.example.org "
        "(repeatable; default: the server's own, http(s)://HOST as the browser reached it). Give it "
        "behind a proxy that terminates TLS",
    )
    parser.add_argument("--certfile", help="TLS certificate (PEM) for HTTPS/WSS")
    parser.add_argument("--keyfile", help="TLS private key (PEM)")
    cluster = parser.add_argument_group("several nodes (see docs/operations.md, Several nodes)")
    cluster.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("MONITOR_REDIS") or None,
        help="join the nodes that share this Redis (redis://HOST:PORT/DB; default $MONITOR_REDIS, where "
        "a password belongs: redis://:PASSWORD@HOST:PORT/DB) and the --db PostgreSQL database: calls are "
        "placed on the least-loaded node, any node routes devices to their call's node, consoles see every "
        "node's calls; SIGTERM drains the node (no new calls; it stops when its calls have ended)",
    )
    cluster.add_argument(
        "--node-url",
        metavar="URL",
        help="where the other nodes (and, with --routing redirect, devices) reach this node: "
        "http(s)://HOST:PORT (default: the address it listens on)",
    )
    from monitor.cluster import ROUTINGS  # cheap: no imports of its own

    cluster.add_argument(
        "--routing",
        choices=ROUTINGS,
        default=ROUTINGS[0],
        help="a device whose call runs on another node: its signalling is proxied there (default: one "
        "public address for the cluster) or redirected there (every node needs a public address)",
    )
    mail = parser.add_argument_group("mail to families (see docs/operations.md, Mail)")
    mail.add_argument(
        "--smtp",
        metavar="HOST:PORT",
        help="send mail through this SMTP server (default: write each message to the outbox folder)",
    )
    mail.add_argument("--smtp-starttls", action="store_true", help="upgrade the connection with STARTTLS")
    mail.add_argument("--smtp-user", metavar="NAME", help="log in to the SMTP server (needs --smtp-starttls)")
    mail.add_argument(
        "--smtp-password-file",
        metavar="FILE",
        help="file holding the SMTP password (default $MONITOR_SMTP_PASSWORD; never on the command line)",
    )
    mail.add_argument("--smtp-password", action=_PasswordRefused, help=argparse.SUPPRESS)
    mail.add_argument("--smtp-cafile", metavar="FILE", help="CA certificates (PEM) to verify the SMTP server")
    mail.add_argument("--mail-from", metavar="ADDRESS", help="the From of every message (needed with --smtp)")
    mail.add_argument(
        "--mail-outbox", metavar="DIR", help="without --smtp: the outbox (default <data dir>/mail-outbox)"
    )
