"""One port for everything: plain HTTP routes and WebSocket routes on a `websockets` server.

`websockets` parses every request on the port. ``process_request`` answers plain HTTP requests
(pages, JSON, images; GET or body-less POST such as a login carrying an ``Authorization`` header)
from the route table; a request that is a WebSocket upgrade on a registered WebSocket path goes on
to the handshake and is then handed to that path's handler, unless the path's admission check
(``Router.ws(..., admit=)``) answers it instead: a refused client gets a plain HTTP 401/403 and no
WebSocket at all. Anything else gets 404. Handlers are
registered by the parts of the server (signalling, console) so this module knows none of them.

What text reaches a handler: `websockets` accepts only an ASCII request line and header values of
tab, printable ASCII and ISO-8859-1 bytes, so paths and headers hold no control character and no
lone surrogate; the query is percent-decoded with replacement characters. A handler that
percent-decodes a path segment itself checks the result (a call id against ``policies.text``'s
id rule), so an encoded ``%00`` or ``%2e%2e`` is simply not found.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: Headers
    remote: str  # client address, for rate limits and logs


HttpHandler = Callable[[HttpRequest], Awaitable[Response]]
WsHandler = Callable[[ServerConnection], Awaitable[None]]
#: Decides a WebSocket upgrade before the handshake: None lets it through, a Response (401, 403)
#: refuses it with that HTTP answer, so a refused client never gets a WebSocket at all.
WsAdmit = Callable[[HttpRequest], Awaitable[Response | None]]

ONCE_HEADERS = ("Host", "Origin", "Authorization", "Cookie")
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


def response(
    status: int,
    body: bytes | str = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    all_headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(data)))])
    for name, value in (*SECURITY_HEADERS, *headers):
        all_headers[name] = value
    return Response(status, HTTPStatus(status).phrase, all_headers, data)


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return response(status, json.dumps(payload), "application/json", headers)


def error_response(status: int, message: str | None = None) -> Response:
    """An error that names the problem but never leaks call ids or names."""
    return json_response(status, {"error": message or HTTPStatus(status).phrase.lower()})


def origin_allowed(
    headers: Headers, origins: tuple[str, ...], secure: bool, *, required: bool = True
) -> bool:
    """The one Origin rule of the server (console and participant WebSockets, console POSTs).

    ``origins``: the allowed values (e.g. ``("https://calls.example.org",)``); empty means the
    server's own origin as the client reached it: ``http(s)://`` + its ``Host`` header (a browser
    omits a default port from both). ``required=False``: a request without an Origin header (a
    native app, a test client: not a browser page) is allowed; one that sends any other Origin,
    ``null`` included, never is."""
    origin = headers.get("Origin")
    if origin is None:
        return not required
    if origins:
        return origin in origins
    host = headers.get("Host", "")
    return bool(host) and origin.lower() == f"{'https' if secure else 'http'}://{host}".lower()


@dataclass
class Router:
    """Route table: exact paths or path prefixes (ending in '/') to handlers."""

    http: dict[tuple[str, str], HttpHandler] = field(default_factory=dict)
    websocket: dict[str, WsHandler] = field(default_factory=dict)
    admit: dict[str, WsAdmit] = field(default_factory=dict)  # WebSocket path -> its handshake check

    def get(self, path: str, handler: HttpHandler) -> None:
        self.http[("GET", path)] = handler

    def post(self, path: str, handler: HttpHandler) -> None:
        self.http[("POST", path)] = handler

    def ws(self, path: str, handler: WsHandler, admit: WsAdmit | None = None) -> None:
        self.websocket[path] = handler
        if admit is not None:
            self.admit[path] = admit

    @staticmethod
    def _match(table: dict[Any, Any], key: Any, path: str) -> Any:
        found = table.get(key)
        if found is not None:
            return found
        # longest registered prefix ending in '/'
        best: Any = None
        best_len = -1
        for candidate, handler in table.items():
            prefix = candidate[1] if isinstance(candidate, tuple) else candidate
            same_kind = not isinstance(candidate, tuple) or candidate[0] == key[0]
            if same_kind and prefix.endswith("/") and path.startswith(prefix) and len(prefix) > best_len:
                best, best_len = handler, len(prefix)
        return best

    def ws_handler(self, path: str) -> WsHandler | None:
        handler: WsHandler | None = self._match(self.websocket, path, path)
        return handler

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        if any(len(request.headers.get_all(name)) > 1 for name in ONCE_HEADERS):  # ambiguous: refuse
            return error_response(400, "Host, Origin, Authorization and Cookie may each be sent once")
        remote = connection.remote_address[0] if connection.remote_address else ""
        http_request = HttpRequest(request.method, path, parse_qs(parts.query), request.headers, str(remote))
        is_upgrade = any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))
        if is_upgrade:
            if request.method != "GET" or self.ws_handler(path) is None:
                return error_response(404)
            admit: WsAdmit | None = self._match(self.admit, path, path)
            # no check, or the check lets it through (None): go on with the WebSocket handshake
            return None if admit is None else await self._answer(connection, admit, http_request)
        handler: HttpHandler | None = self._match(self.http, (request.method, path), path)
        if handler is None:
            known_path = any(p == path or (p.endswith("/") and path.startswith(p)) for _, p in self.http)
            return error_response(405 if known_path else 404)
        return await self._answer(connection, handler, http_request)

    @staticmethod
    async def _answer(
        connection: ServerConnection, handler: WsAdmit, request: HttpRequest
    ) -> Response | None:
        try:
            return await handler(request)
        except Exception:  # a bug in one handler must not take the port down (a check fails closed)
            connection.logger.exception("HTTP handler failed for %s %s", request.method, request.path)
            return error_response(500)

    async def handle_websocket(self, connection: ServerConnection) -> None:
        path = urlsplit(connection.request.path if connection.request else "/").path
        handler = self.ws_handler(path)
        if handler is not None:
            await handler(connection)
