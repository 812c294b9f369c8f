"""The cluster's registry on Redis: the nodes and their load, and which node runs each call.

Theory of operation. Every key is under a prefix (``monitor:`` by default, so one Redis can serve
several deployments):

- ``node:<name>``: the node's latest report (:class:`~monitor.cluster.placement.NodeLoad`, JSON),
  written every ``HEARTBEAT_S`` with a time to live of ``NODE_TTL_S``: a node whose heartbeat
  stops is gone when it expires, and its calls may then be placed again;
- ``nodes``: the set of node names (readers skip a name whose report has expired);
- ``call:<id>``: the node that runs the call (its *claim*), from its first device's join until it
  ends (or ``CLAIM_TTL_S``, should nobody end it);
- ``placed:<node>``: the calls placed on the node within the ramp-up window (a sorted set, scored
  by the time of placement);
- ``drain:<node>``: present while an operator has asked the node to drain (``monitor node drain``);
- ``stats``: cluster-wide placement figures (placed, taken over, refused, retried).

Placement (:meth:`Registry.place`) reads everything it needs in one script (``READ``: the call's
claim and whether its node is alive, every live report with the age of its key, the placements
of each node within the ramp-up window, Redis's clock), chooses with the pure
:func:`~monitor.cluster.placement.choose_node`, then claims in a second script (``CLAIM``) that,
atomically, returns the owner if someone claimed the call meanwhile (and that owner is alive),
refuses if the calls placed on the chosen node since the read have used up the room it had
(:func:`~monitor.cluster.placement.headroom` on the figures read: the choice was made on stale
figures, so it is made again), else writes the claim and the placement. So no two nodes ever
start the same call, no node is given more than its room, and a burst of starts on every node
at once costs few retries. Times are Redis's (``TIME``), so the nodes' clocks need not agree.

A call whose node has died is claimed again by whichever node its next device reaches: the
``CLAIM`` script overwrites a claim whose node's report has expired (``taken_over``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.call.admission import Limits
from monitor.cluster.placement import NodeLoad, NoNode, choose_node, headroom
from monitor.errors import UserError

log = logging.getLogger(__name__)

PREFIX = "monitor:"
HEARTBEAT_S = 1.0
#: A node whose report is this old is gone (LiveKit: 5 s without stats and a node is unavailable).
NODE_TTL_S = 5.0
#: A claim nobody released (its node died and no device came back) is forgotten after a day.
CLAIM_TTL_S = 86_400.0
#: Placements of one call that lost a race (a call placed on its chosen node meanwhile) and start over.
MAX_TRIES = 200

_READ = """
local p = ARGV[1]
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local owner = redis.call('GET', p .. 'call:' .. ARGV[2])
local alive = 0
if owner and redis.call('EXISTS', p .. 'node:' .. owner) == 1 then alive = 1 end
local out = {tostring(now_s), owner or '', alive}
for _, name in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  local report = redis.call('GET', p .. 'node:' .. name)
  if report then
    local since = now_s - tonumber(ARGV[3])
    local placed = redis.call('ZRANGEBYSCORE', p .. 'placed:' .. name, since, '+inf', 'WITHSCORES')
    table.insert(out, name)
    table.insert(out, report)
    table.insert(out, tostring(redis.call('PTTL', p .. 'node:' .. name)))
    table.insert(out, placed)
  end
end
return out
"""

_CLAIM = """
local p, call, chosen = ARGV[1], ARGV[2], ARGV[3]
local owner = redis.call('GET', p .. 'call:' .. call)
if owner and redis.call('EXISTS', p .. 'node:' .. owner) == 1 then
  return {'owner', owner}
end
local now = tonumber(ARGV[5])
local since = now - tonumber(ARGV[6])
if redis.call('ZCOUNT', p .. 'placed:' .. chosen, since, '+inf') >= tonumber(ARGV[4]) then
  redis.call('HINCRBY', p .. 'stats', 'retried', 1)
  return {'retry', ''}
end
redis.call('SET', p .. 'call:' .. call, chosen, 'PX', ARGV[7])
redis.call('ZADD', p .. 'placed:' .. chosen, now, call)
redis.call('ZREMRANGEBYSCORE', p .. 'placed:' .. chosen, '-inf', since)
if owner then
  redis.call('HINCRBY', p .. 'stats', 'taken_over', 1)
else
  redis.call('HINCRBY', p .. 'stats', 'placed', 1)
end
return {'placed', owner or ''}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RegistryError(UserError):
    """Redis cannot be reached or answered nonsense; the message names it."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a call runs: ``node``; ``placed``: this request claimed it (else it was claimed
    already); ``taken_over``: from a node that had died (named); ``tries``: attempts it took."""

    node: str
    placed: bool
    taken_over: str = ""
    tries: int = 1


@dataclass(frozen=True, slots=True)
class ClusterStats:
    placed: int = 0
    taken_over: int = 0
    refused: int = 0
    retried: int = 0


class Registry:
    def __init__(
        self,
        redis: Redis,
        prefix: str = PREFIX,
        *,
        limits: Limits | None = None,
        node_ttl_s: float = NODE_TTL_S,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = limits or Limits()
        self.node_ttl_s = node_ttl_s
        self._read = redis.register_script(_READ)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ---- this node ---------------------------------------------------------------------------
    async def heartbeat(self, report: NodeLoad, calls: Iterable[str] = ()) -> tuple[bool, list[str]]:
        """Write ``report`` (alive for ``NODE_TTL_S`` more); returns (an operator asked this node
        to drain, the ``calls`` it runs whose claim now names another node or none)."""
        names = list(calls)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.key("node", report.node), report.to_json(), px=int(self.node_ttl_s * 1000))
                pipe.sadd(self.key("nodes"), report.node)
                pipe.exists(self.key("drain", report.node))
                for call_id in names:
                    pipe.get(self.key("call", call_id))
                replies = await pipe.execute()
        except RedisError as exc:
            raise RegistryError(f"Redis: {exc}") from None
        owners = [_text(owner) for owner in replies[3:]]
        lost = [call_id for call_id, owner in zip(names, owners, strict=True) if owner != report.node]
        return bool(replies[2]), lost

    async def leave(self, node: str) -> None:
        """This node is going away: its report is withdrawn (its calls can be placed again at once)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.key("node", node))
            pipe.srem(self.key("nodes"), node)
            await pipe.execute()

    async def release(self, call_id: str, node: str) -> bool:
        """The call ended on ``node``: drop its claim (if it still names ``node``)."""
        return bool(await self._release(keys=[self.key("call", call_id)], args=[node]))

    # ---- operators -----------------------------------------------------------------------------
    async def set_drain(self, node: str, drain: bool) -> None:
        if drain:
            await self.redis.set(self.key("drain", node), "1")
        else:
            await self.redis.delete(self.key("drain", node))

    async def nodes(self) -> list[NodeLoad]:
        """Every live node's report (its ``at`` on Redis's clock), by name."""
        _, _, _, reports, _ = await self._snapshot("")
        return [reports[name] for name in sorted(reports)]

    async def stats(self) -> ClusterStats:
        raw = await self.redis.hgetall(self.key("stats"))
        values = {_text(k): int(v) for k, v in raw.items()}
        return ClusterStats(**{k: values.get(k, 0) for k in ("placed", "taken_over", "refused", "retried")})

    async def owner(self, call_id: str) -> str | None:
        return _text(await self.redis.get(self.key("call", call_id))) or None

    # ---- placement ---------------------------------------------------------------------------
    async def _snapshot(
        self, call_id: str
    ) -> tuple[float, str, bool, dict[str, NodeLoad], dict[str, list[float]]]:
        """(Redis's time, the call's owner, whether that owner is alive, each live node's report,
        each node's placement times within the ramp-up window)."""
        try:
            raw = await self._read(args=[self.prefix, call_id, self.limits.ramp_s])
        except RedisError as exc:
            raise RegistryError(f"Redis: {exc}") from None
        now, owner, alive = float(raw[0]), _text(raw[1]), bool(int(raw[2]))
        reports: dict[str, NodeLoad] = {}
        placed: dict[str, list[float]] = {}
        for i in range(3, len(raw), 4):
            name, body, ttl_ms, times = _text(raw[i]), raw[i + 1], int(raw[i + 2]), raw[i + 3]
            try:
                report = NodeLoad.from_json(body)
            except ValueError as exc:
                log.warning("node %s: %s", name, exc)
                continue
            age = max(0.0, self.node_ttl_s - max(0, ttl_ms) / 1000.0)
            reports[name] = replace(report, at=now - age)
            placed[name] = [float(times[j + 1]) for j in range(0, len(times), 2)]
        return now, owner, alive, reports, placed

    async def place(self, call_id: str) -> Placement:
        """The node that runs ``call_id``: its live owner, else the node chosen now and claimed
        for it. :class:`~monitor.cluster.placement.NoNode` when no node can take it."""
        for tries in range(1, MAX_TRIES + 1):
            now, owner, alive, reports, placed = await self._snapshot(call_id)
            if owner and alive:
                return Placement(owner, placed=False, tries=tries)
            try:
                chosen = choose_node(list(reports.values()), placed, self.limits, now, key=call_id)
            except NoNode:
                await self.redis.hincrby(self.key("stats"), "refused", 1)
                raise
            # the claim holds while the placements there in the window stay under this
            room = len(placed[chosen]) + headroom(reports[chosen], placed[chosen], self.limits, now)
            try:
                outcome = await self._claim(
                    args=[
                        self.prefix,
                        call_id,
                        chosen,
                        room,
                        repr(now),
                        self.limits.ramp_s,
                        int(CLAIM_TTL_S * 1000),
                    ]
                )
            except RedisError as exc:
                raise RegistryError(f"Redis: {exc}") from None
            verdict, detail = _text(outcome[0]), _text(outcome[1])
            if verdict == "owner":
                return Placement(detail, placed=False, tries=tries)
            if verdict == "placed":
                return Placement(chosen, placed=True, taken_over=detail, tries=tries)
            await asyncio.sleep(random.uniform(0, 0.002 * min(tries, 10)))  # lost a race: choose again
        raise RegistryError(f"placing call {call_id}: {MAX_TRIES} races lost in a row")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "HEARTBEAT_S",
    "NODE_TTL_S",
    "PREFIX",
    "ClusterStats",
    "Placement",
    "Registry",
    "RegistryError",
]
