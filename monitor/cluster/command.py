"""``monitor node``: the nodes of a cluster as Redis knows them, and draining one.

``list`` prints one JSON line per live node (its address, calls, load, whether it drains) and one
with the cluster-wide placement figures; ``drain NODE`` asks a node to take no new call (its
running calls go on; it keeps serving them and routing devices), ``resume NODE`` lifts that. The
node sees the request at its next heartbeat (within a second). ``monitor serve --redis`` answers
SIGTERM by draining and stopping once its calls have ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from monitor.errors import UserError


def add_node_commands(commands: Any, lazy: Callable[[str, str], Any]) -> None:
    node = commands.add_parser("node", help="the nodes of a cluster (monitor serve --redis): list, drain")
    actions = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    for name, function, text in (
        ("list", "run_list", "one JSON line per live node, then the cluster's placement figures"),
        ("drain", "run_drain", "NODE takes no new call; its running calls go on"),
        ("resume", "run_resume", "NODE takes new calls again"),
    ):
        parser = actions.add_parser(name, help=text)
        if name != "list":
            parser.add_argument("node", metavar="NODE", help="the node's name (monitor serve --node)")
        parser.add_argument(
            "--redis",
            metavar="URL",
            default=os.environ.get("MONITOR_REDIS"),
            help="the cluster's Redis (default $MONITOR_REDIS)",
        )
        parser.set_defaults(handler=lazy("monitor.cluster.command", function))


async def _with_registry(url: str | None, work: Callable[[Any], Any]) -> Any:
    if not url:
        raise UserError("--redis URL (or $MONITOR_REDIS) is needed: the cluster's Redis")
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from monitor.cluster.registry import Registry

    client = Redis.from_url(url, socket_connect_timeout=5.0)
    try:
        return await work(Registry(client))
    except (RedisError, OSError) as exc:
        raise UserError(f"--redis {url}: {exc}") from None
    finally:
        await client.aclose()


def run_list(args: argparse.Namespace) -> int:
    async def work(registry: Any) -> None:
        for report in await registry.nodes():
            line = asdict(report)
            line["calls"] = [call["call_id"] for call in line["calls"]]
            print(json.dumps(line))
        print(json.dumps({"cluster": asdict(await registry.stats())}))

    asyncio.run(_with_registry(args.redis, work))
    return 0


def _set_drain(args: argparse.Namespace, drain: bool) -> int:
    async def work(registry: Any) -> bool:
        known = {report.node for report in await registry.nodes()}
        await registry.set_drain(args.node, drain)
        return args.node in known

    alive = asyncio.run(_with_registry(args.redis, work))
    what = "drains (no new calls)" if drain else "takes new calls again"
    tail = "" if alive else " (it is not running now: it will when it starts)"
    print(f"node {args.node} {what}{tail}")
    return 0


def run_drain(args: argparse.Namespace) -> int:
    return _set_drain(args, True)


def run_resume(args: argparse.Namespace) -> int:
    return _set_drain(args, False)
