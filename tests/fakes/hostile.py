"""Servers that lie, for the hostile-server tests (``tests/test_hostile_servers.py``).

Two kinds:

* ``tamper(app, rewrite)`` wraps a real vendor fake (GitHub, Jira, Confluence...) so that one
  detail of its answers lies (a ``Link`` header to page 10**12, a next link back to the
  first page, a total of 10**12, an offset ignored) while everything else stays the
  vendor's real protocol;
* small standalone apps for what no vendor fake does: trickling bodies, endless bodies,
  bodies echoing the request's headers, absurd ``Retry-After`` values, redirects to another
  origin, and a sink that records what reached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

#: ``rewrite(request, response)``: change a finished response of the wrapped fake in place
#: (headers, ``response.body``), or return a new one.
Rewrite = Callable[[web.Request, web.Response], Awaitable[web.StreamResponse | None]]
#: ``before(request)``: a request to hand the fake instead (say, with ``startAt`` dropped).
Before = Callable[[web.Request], web.Request]


def tamper(
    app: web.Application, rewrite: Rewrite | None = None, before: Before | None = None
) -> web.Application:
    """``app`` with its answers passed through ``rewrite`` (and its requests through
    ``before``)."""

    @web.middleware
    async def lie(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if before is not None:
            request = before(request)
        response = await handler(request)
        if rewrite is not None and isinstance(response, web.Response):
            replaced = await rewrite(request, response)
            if replaced is not None:
                return replaced
        return response

    app.middlewares.append(lie)
    return app


def json_body(response: web.Response) -> Any:
    assert isinstance(response.body, bytes)
    return orjson.loads(response.body)


def set_json_body(response: web.Response, body: Any) -> None:
    response.body = orjson.dumps(body)


# -- standalone misbehaving servers ------------------------------------------------------


@dataclass
class Recorded:
    """What reached a server: each request's path and headers."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def headers_seen(self) -> list[dict[str, str]]:
        return [headers for _, headers in self.requests]


def sink_app(
    recorded: Recorded, body: bytes = b"id,name\n1,a\n2,b\n", content_type: str = "text/csv"
) -> web.Application:
    """Answers every request with ``body`` and records what it was sent."""

    async def handle(request: web.Request) -> web.Response:
        recorded.requests.append((request.path_qs, dict(request.headers)))
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def redirect_app(
    target: str, recorded: Recorded | None = None, status: int = 302
) -> web.Application:
    """Redirects every request to ``target`` + its own path and query."""

    async def handle(request: web.Request) -> web.Response:
        if recorded is not None:
            recorded.requests.append((request.path_qs, dict(request.headers)))
        raise (
            web.HTTPFound(target.rstrip("/") + request.path_qs)
            if status == 302
            else web.HTTPTemporaryRedirect(target.rstrip("/") + request.path_qs)
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def echo_app() -> web.Application:
    """A 200 whose body is not JSON but the request's headers, as some proxies and debug
    endpoints answer: a message quoting the body would quote the credentials."""

    async def handle(request: web.Request) -> web.Response:
        lines = [f"{name}: {value}" for name, value in request.headers.items()]
        return web.Response(text="ECHO " + " | ".join(lines), content_type="text/plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def trickle_app(interval: float = 0.5) -> web.Application:
    """A 200 that sends one byte every ``interval`` seconds, forever: every read succeeds, so
    only a total deadline ends it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"[")
        while True:
            await asyncio.sleep(interval)
            await response.write(b" ")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def endless_app(chunk: int = 64 * 1024) -> web.Application:
    """A 200 JSON array that never ends, as fast as the client reads: only a size cap ends it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"[")
        piece = b'{"id": 1, "name": "again"},' * (chunk // 27)
        while True:
            await response.write(piece)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def retry_after_app(value: str, status: int = 429) -> web.Application:
    """Answers every request with ``status`` and ``Retry-After: value``."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "slow down"}, status=status, headers={"Retry-After": value}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def page_count_app(
    real_pages: int = 3, per_page_items: int = 5, claimed_pages: int = 10**12
) -> web.Application:
    """``?page=N&per_page=M`` with a body that claims ``claimed_pages`` pages (``pages``) but
    holds items only on the first ``real_pages``."""

    async def handle(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        values = (
            [
                {"id": (page - 1) * per_page_items + i, "name": f"n{page}.{i}"}
                for i in range(per_page_items)
            ]
            if page <= real_pages
            else []
        )
        return web.json_response({"pages": claimed_pages, "values": values})

    app = web.Application()
    app.router.add_get("/pages", handle)
    return app
