"""In-process publish/subscribe of call records for the staff console.

Calls publish one record (a timeline-shaped dict, see monitor/record/timeline.py) per decision;
each subscriber gets every record published after it subscribed, tagged with ``call_id``.
A subscriber that stops reading is bounded: past ``MAX_BACKLOG`` records it is dropped (its
iterator ends) rather than making the calls wait or grow memory. That suits views (the console's
wake-ups, metrics), never a record that must not be lost: the audit log is a *sink*
(:meth:`Hub.attach`), a function called with every record inside :meth:`Hub.publish`, so it sees
each one, in order, and bounds itself by making the publisher wait (back-pressure), never by losing one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BACKLOG = 1000

log = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]


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
        self._sinks: list[Sink] = []

    def attach(self, sink: Sink) -> None:
        """Call ``sink`` with every record published from now on (tagged with ``call_id``), inside
        :meth:`publish`, in order. It is never dropped: one that may fall behind must make the
        publisher wait (its own bounded queue), not lose records. Its exceptions are logged."""
        self._sinks.append(sink)

    def detach(self, sink: Sink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)

    def publish(self, call_id: str, record: dict[str, Any]) -> None:
        item = {"call_id": call_id, **record}
        for sink in list(self._sinks):
            try:
                sink(dict(item))
            except Exception:  # a sink's own failure must not stop the call that published
                log.exception("hub sink %r failed on a record of call %s", sink, call_id)
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
