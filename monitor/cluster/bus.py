"""The cluster's message bus on Redis pub/sub: audit commits for the consoles, and requests from
one node to another.

Theory of operation. Each node subscribes to three channels (under the registry's prefix):
``audit`` (every node), ``rpc:<node>`` (requests to it) and ``reply:<node>`` (answers to its
requests). One task reads them all.

- *Audit commits.* When a node's audit log commits a record (a call's decision, an alert with its
  evidence, a staff action, a join), the node publishes a notice naming it (id, prison, call,
  kind). The other nodes wake their consoles' feeds, which read the record from the shared
  database: the database is the record of what happened, so a notice carries nothing a console
  shows, and a notice that is lost (a node reconnecting to Redis) costs only the feed's own poll
  interval (0.5 s). The notice is published after the commit, never before, so a woken feed finds
  the record.
- *Requests.* A console on one node acting on a call that runs on another (pause, approve a
  resume, end, watch) sends a request to that node and waits for its answer (``REQUEST_TIMEOUT_S``);
  each node serves the operations it registered (:meth:`Bus.serve`). A node that does not answer is
  reported as such to the member of staff, who can try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
#: Pause after the bus lost Redis before it subscribes again.
RESUBSCRIBE_S = 1.0

Handler = Callable[..., Awaitable[Any]]
Listener = Callable[[dict[str, Any]], None]


class RequestFailed(Exception):
    """The other node refused the request, or did not answer; the message says which, for people."""


class Bus:
    def __init__(self, redis: Redis, prefix: str, node: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.node = node
        self.audit_channel = f"{prefix}audit"
        self.rpc_channel = f"{prefix}rpc:{node}"
        self.reply_channel = f"{prefix}reply:{node}"
        self.handlers: dict[str, Handler] = {}
        self.listeners: list[Listener] = []
        self.notices_in = 0  # audit notices from other nodes
        self.notices_out = 0
        self.requests_served = 0
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()

    def serve(self, op: str, handler: Handler) -> None:
        """Answer requests ``op`` with ``await handler(**args)`` (its exceptions: refusals)."""
        self.handlers[op] = handler

    def on_audit(self, listener: Listener) -> None:
        """Call ``listener`` with each audit notice published by another node."""
        self.listeners.append(listener)

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for task in list(self._serving):
            task.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RequestFailed("this server is stopping"))

    # ---- sending -------------------------------------------------------------------------------
    async def publish_audit(self, notice: dict[str, Any]) -> None:
        try:
            await self.redis.publish(self.audit_channel, json.dumps({"node": self.node, **notice}))
            self.notices_out += 1
        except RedisError as exc:  # the other consoles fall back to polling the database
            log.warning("audit notice not published: %s", exc)

    async def request(self, node: str, op: str, timeout: float = REQUEST_TIMEOUT_S, **args: Any) -> Any:
        """``op`` done by ``node``; its result, or :class:`RequestFailed`."""
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        message = {"id": ident, "from": self.node, "op": op, "args": args}
        try:
            receivers = await self.redis.publish(f"{self.prefix}rpc:{node}", json.dumps(message))
            if not receivers:
                raise RequestFailed(f"the server {node} running this call is not reachable; try again")
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RequestFailed(f"the server {node} running this call did not answer; try again") from None
        except RedisError as exc:
            raise RequestFailed(f"the servers cannot reach each other now ({exc}); try again") from None
        finally:
            self._waiting.pop(ident, None)

    # ---- receiving -----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.audit_channel, self.rpc_channel, self.reply_channel)
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._dispatch(_text(message["channel"]), message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: subscribe again (notices meanwhile are lost)
                log.warning("cluster bus: %s; subscribing again in %.0f s", exc, RESUBSCRIBE_S)
                await asyncio.sleep(RESUBSCRIBE_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, channel: str, data: Any) -> None:
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("cluster bus: a message on %s that is not JSON was ignored", channel)
            return
        if channel == self.audit_channel:
            if body.get("node") != self.node:
                self.notices_in += 1
                for listener in list(self.listeners):
                    try:
                        listener(body)
                    except Exception:
                        log.exception("cluster bus: audit listener failed")
        elif channel == self.reply_channel:
            future = self._waiting.get(body.get("id", -1))
            if future is not None and not future.done():
                if body.get("ok"):
                    future.set_result(body.get("result"))
                else:
                    future.set_exception(RequestFailed(str(body.get("error", "refused"))))
        elif channel == self.rpc_channel:
            task = asyncio.ensure_future(self._answer(body))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _answer(self, body: dict[str, Any]) -> None:
        handler = self.handlers.get(str(body.get("op")))
        reply: dict[str, Any] = {"id": body.get("id")}
        try:
            if handler is None:
                raise RequestFailed(f"unknown request {str(body.get('op'))[:40]!r}")
            args = body.get("args")
            reply["result"] = await handler(**(args if isinstance(args, dict) else {}))
            reply["ok"] = True
        except Exception as exc:  # every refusal goes back as words, never a traceback
            if not isinstance(exc, RequestFailed | LookupError | ValueError):
                log.exception("cluster request %s failed", body.get("op"))
            reply.update(ok=False, error=str(exc) or type(exc).__name__)
        self.requests_served += 1
        with contextlib.suppress(RedisError):
            await self.redis.publish(f"{self.prefix}reply:{body.get('from')}", json.dumps(reply))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["REQUEST_TIMEOUT_S", "Bus", "RequestFailed"]
