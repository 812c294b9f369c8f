"""In-process publish/subscribe of call records for the staff console.

Calls publish one record (a timeline-shaped dict, see monitor/record/timeline.py) per decision;
each subscriber gets every record published after it subscribed, tagged with ``call_id``.
A subscriber that stops reading is bounded: past ``MAX_BACKLOG`` records it is dropped (its
iterator ends) rather than making the calls wait or grow memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

MAX_BACKLOG = 1000


class Subscription:
    """An async iterator of records; registered as soon as it is created. ``close()`` ends it."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        item = await self.queue.get()
        if item is None:
            self.close()
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        self._hub._subs.discard(self)


@dataclass(frozen=True, slots=True)
class HubStats:
    subscribers: int
    max_backlog: int  # records waiting for the slowest subscriber


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def publish(self, call_id: str, record: dict[str, Any]) -> None:
        item = {"call_id": call_id, **record}
        for sub in list(self._subs):
            if sub.queue.qsize() >= MAX_BACKLOG:
                self._subs.discard(sub)
                sub.queue.put_nowait(None)  # ends that subscriber's iterator
            else:
                sub.queue.put_nowait(item)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def stats(self) -> HubStats:
        backlog = max((sub.queue.qsize() for sub in self._subs), default=0)
        return HubStats(len(self._subs), backlog)

    def subscribe(self) -> Subscription:
        """Records published from now on; iterate with ``async for``; ``close()`` to stop early."""
        sub = Subscription(self)
        self._subs.add(sub)
        return sub
