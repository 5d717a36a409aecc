"""Machinery shared by the fake vendor services.

Every fake is an ``aiohttp.web.Application`` built by its module's ``make_app(state)``.
The ``FakeControls`` object below rides on every fake's state and gives tests:

* a request log (``controls.requests``) to count calls and check what was sent;
* fault injection (``controls.inject(...)``): the next N matching requests get a canned
  response (a 429 with ``Retry-After``, a 403 with ``X-RateLimit-Remaining: 0``, a 503...)
  before the real handler runs, so the client's retry policy is tested over the wire;
* a per-request latency (``controls.latency``) for benchmarks.

``serve(app)`` runs an app on 127.0.0.1 with an ephemeral port, as an async context manager
that yields the base URL.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived
    status: int | None = None


@dataclass
class Injection:
    status: int
    headers: dict[str, str]
    body: Any
    times: int
    path_prefix: str | None
    method: str | None

    def matches(self, request: web.Request) -> bool:
        if self.path_prefix is not None and not request.path.startswith(self.path_prefix):
            return False
        return self.method is None or request.method == self.method


@dataclass
class FakeControls:
    latency: float = 0.0
    requests: list[LoggedRequest] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)

    def inject(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this response instead."""
        self.injections.append(
            Injection(status, dict(headers or {}), body, times, path_prefix, method)
        )

    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if r.path.startswith(path_prefix) and (method is None or r.method == method)
        )

    def _take_injection(self, request: web.Request) -> Injection | None:
        for injection in self.injections:
            if injection.times > 0 and injection.matches(request):
                injection.times -= 1
                return injection
        return None


def controls_middleware(controls: FakeControls) -> Any:
    """Log every request, apply latency, then an injected fault if one is pending."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        logged = LoggedRequest(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            time.monotonic(),
        )
        controls.requests.append(logged)
        if controls.latency:
            await asyncio.sleep(controls.latency)
        injection = controls._take_injection(request)
        if injection is not None:
            logged.status = injection.status
            if injection.body is None or isinstance(injection.body, str | bytes):
                return web.Response(
                    status=injection.status, headers=injection.headers, body=injection.body
                )
            return web.json_response(
                injection.body, status=injection.status, headers=injection.headers
            )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            logged.status = exc.status
            raise
        logged.status = response.status
        return response

    return middleware


def parse_basic_auth(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (ephemeral port); yield its base URL without a trailing slash."""
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
