"""The registry on a real redis-server: reports, claims, races, takeovers, draining."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from monitor.call.admission import Limits
from monitor.cluster.placement import NodeLoad, NoNode
from monitor.cluster.registry import Registry


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def report(name: str, cpu: float = 0.1, running: int = 0, **more: object) -> NodeLoad:
    return NodeLoad(name, f"http://{name}:1", 0.0, 2, running, cpu, 1.0, 10.0, **more)  # type: ignore[arg-type]


async def test_a_call_is_placed_on_the_least_loaded_node_once(redis: Redis) -> None:
    registry = Registry(redis)
    for name, cpu in (("a", 0.5), ("b", 0.2), ("c", 0.3)):
        await registry.heartbeat(report(name, cpu, 1))
    first = await registry.place("call-1")
    assert (first.node, first.placed, first.taken_over) == ("b", True, "")
    again = await registry.place("call-1")
    assert (again.node, again.placed) == ("b", False)
    assert await registry.owner("call-1") == "b"
    assert [n.node for n in await registry.nodes()] == ["a", "b", "c"]
    assert (await registry.stats()).placed == 1


async def test_nodes_racing_for_one_call_start_it_once(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    try:
        registries = [Registry(c) for c in clients]
        for name in ("a", "b", "c"):
            await registries[0].heartbeat(report(name))
        placements = await asyncio.gather(*(registries[i % 3].place("contested") for i in range(60)))
        assert len({p.node for p in placements}) == 1
        assert sum(p.placed for p in placements) == 1
        assert (await registries[0].stats()).placed == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_a_burst_of_starts_on_every_node_at_once_spreads_and_never_doubles(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    try:
        registries = [Registry(c) for c in clients]
        for name, cpu in (("a", 0.10), ("b", 0.12), ("c", 0.15)):
            await registries[0].heartbeat(report(name, cpu))
        results = await asyncio.gather(
            *(registries[i % 3].place(f"call-{i}") for i in range(60)), return_exceptions=True
        )
        placed = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, NoNode)]
        assert len(placed) + len(refused) == 60
        spread = Counter(p.node for p in placed)
        # as if placed one after another (test_placement: 15, 14, 14 of 100 with the ramp-up)
        assert spread == Counter({"a": 15, "b": 14, "c": 14}), spread
        for i, result in enumerate(results):
            if not isinstance(result, BaseException):
                assert await registries[1].owner(f"call-{i}") == result.node
        stats = await registries[0].stats()
        assert (stats.placed, stats.refused) == (43, 17)
    finally:
        for client in clients:
            await client.aclose()


async def test_a_dead_nodes_call_is_taken_over_by_a_live_node(redis: Redis) -> None:
    short = Registry(redis, node_ttl_s=0.5)
    await short.heartbeat(report("b", 0.0))
    assert (await short.place("moving")).node == "b"
    await short.heartbeat(report("a", 0.3, 2))
    assert (await short.place("moving")).node == "b"  # b is alive: the call stays
    await asyncio.sleep(0.7)  # b's heartbeat stopped; a keeps beating
    await short.heartbeat(report("a", 0.3, 2))
    moved = await short.place("moving")
    assert (moved.node, moved.placed, moved.taken_over) == ("a", True, "b")
    assert (await short.stats()).taken_over == 1


async def test_draining_releasing_and_losing_a_claim(redis: Redis) -> None:
    registry = Registry(redis)
    drain, lost = await registry.heartbeat(report("a"))
    assert (drain, lost) == (False, [])
    assert (await registry.place("c1")).node == "a"
    await registry.set_drain("a", True)
    drain, lost = await registry.heartbeat(report("a", draining=True), ["c1", "never-placed"])
    assert drain and lost == ["never-placed"]
    with pytest.raises(NoNode, match="a: draining"):
        await registry.place("c2")
    assert (await registry.place("c1")).node == "a"  # its running call still reaches it
    assert not await registry.release("c1", "b")  # only its own node releases a claim
    assert await registry.release("c1", "a")
    assert await registry.owner("c1") is None
    await registry.set_drain("a", False)
    assert (await registry.heartbeat(report("a")))[0] is False
    await registry.leave("a")
    assert await registry.nodes() == []
    with pytest.raises(NoNode, match="no monitoring server is running"):
        await registry.place("c3")


async def test_a_fixed_limit_is_kept_cluster_wide(redis: Redis) -> None:
    registry = Registry(redis, limits=Limits(max_calls=1))
    await registry.heartbeat(report("a"))
    await registry.place("c1")
    with pytest.raises(NoNode, match="1 call running, the limit is 1"):
        await registry.place("c2")
