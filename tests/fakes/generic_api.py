"""A small HTTP API that pages the same records in every common vendor style, for the core's
pagination and transport tests. Each route mirrors a real vendor's habit:

* ``/link``: GitHub-style ``Link`` header with ``rel="next"`` and ``rel="last"``
  (``?nolast=1`` drops ``last``, as some APIs do);
* ``/token``: Jira-style ``nextPageToken`` in the body (opaque, base64);
* ``/v1/search``: Confluence v1-style ``_links.next`` relative to ``_links.base`` (which ends
  in ``/v1``); ``/v2/items``: Confluence v2-style ``_links.next`` that starts at the root;
* ``/offset``: Jira Data Center-style ``startAt``/``maxResults``/``total``, with the page
  size capped by the server at ``state.max_results_cap`` and reported back;
* ``/numbered``: plain ``page``/``per_page`` numbering;
* ``/repeat``: a broken API that returns the same token forever;
* ``/broken``: a 200 whose body is not JSON; ``/slow``: answers after ``state.slow`` s.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from ._common import FakeControls, Handler, controls_middleware


@dataclass
class GenericState:
    records: list[dict[str, Any]]
    controls: FakeControls = field(default_factory=FakeControls)
    max_results_cap: int = 50
    slow: float = 5.0
    in_flight: int = 0
    max_in_flight: int = 0


def make_state(n: int = 250) -> GenericState:
    return GenericState([{"id": i, "name": f"record {i}"} for i in range(n)])


def _int(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"bad {name}") from None


def make_app(state: GenericState) -> web.Application:
    @web.middleware
    async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            return await handler(request)
        finally:
            state.in_flight -= 1

    app = web.Application(middlewares=[count_in_flight, controls_middleware(state.controls)])
    records = state.records

    def origin(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    async def link(request: web.Request) -> web.Response:
        per_page = min(_int(request, "per_page", 30), 100)
        page = _int(request, "page", 1)
        start = (page - 1) * per_page
        body = records[start : start + per_page]
        last = max(1, -(-len(records) // per_page))
        links = []
        base = f"{origin(request)}/link?per_page={per_page}"
        if "nolast" in request.query:
            base += "&nolast=1"
        if page < last:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            if "nolast" not in request.query:
                links.append(f'<{base}&page={last}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        return web.json_response(body, headers=headers)

    async def token(request: web.Request) -> web.Response:
        size = min(_int(request, "maxResults", 50), 100)
        raw = request.query.get("nextPageToken")
        offset = int(base64.b64decode(raw).decode()[4:]) if raw else 0
        body: dict[str, Any] = {"values": records[offset : offset + size]}
        if offset + size < len(records):
            body["nextPageToken"] = base64.b64encode(f"off:{offset + size}".encode()).decode()
        return web.json_response(body)

    async def v1_search(request: web.Request) -> web.Response:
        size = _int(request, "limit", 25)
        offset = int(request.query.get("cursor", "0"))
        body: dict[str, Any] = {
            "results": records[offset : offset + size],
            "_links": {"base": f"{origin(request)}/v1"},
        }
        if offset + size < len(records):
            body["_links"]["next"] = f"/search?cursor={offset + size}&limit={size}"
        return web.json_response(body)

    async def v2_items(request: web.Request) -> web.Response:
        size = _int(request, "limit", 25)
        offset = int(request.query.get("cursor", "0"))
        body: dict[str, Any] = {"results": records[offset : offset + size], "_links": {}}
        if offset + size < len(records):
            # The cursor is not the last parameter, on purpose.
            body["_links"]["next"] = f"/v2/items?cursor={offset + size}&limit={size}&sort=id"
        return web.json_response(body)

    async def offset(request: web.Request) -> web.Response:
        start = _int(request, "startAt", 0)
        size = min(_int(request, "maxResults", 50), state.max_results_cap)
        return web.json_response(
            {
                "startAt": start,
                "maxResults": size,
                "total": len(records),
                "values": records[start : start + size],
            }
        )

    async def numbered(request: web.Request) -> web.Response:
        per_page = _int(request, "per_page", 30)
        page = _int(request, "page", 1)
        return web.json_response(records[(page - 1) * per_page : page * per_page])

    async def repeat(request: web.Request) -> web.Response:
        return web.json_response({"values": records[:2], "nextPageToken": "same"})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="application/json")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(state.slow)
        return web.json_response([])

    async def echo(request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(
                {
                    "headers": {str(k): v for k, v in request.headers.items()},
                    "query": dict(request.query),
                }
            ),
            content_type="application/json",
            headers={"ETag": '"v1"'},
        )

    async def cached(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.json_response(records[:3], headers={"ETag": '"v1"'})

    app.router.add_get("/link", link)
    app.router.add_get("/token", token)
    app.router.add_get("/v1/search", v1_search)
    app.router.add_get("/v2/items", v2_items)
    app.router.add_get("/offset", offset)
    app.router.add_get("/numbered", numbered)
    app.router.add_get("/repeat", repeat)
    app.router.add_get("/broken", broken)
    app.router.add_get("/slow", slow)
    app.router.add_get("/echo", echo)
    app.router.add_get("/cached", cached)
    return app
