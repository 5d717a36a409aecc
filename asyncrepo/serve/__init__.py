"""``asyncrepo serve``: an HTTP JSON API and one search page over an index.

Routes (all ``GET``; JSON unless said):

* ``/`` the search page (one static HTML file, no build step);
* ``/search?q=&source=&kind=&author=&since=&until=&sort=&cursor=&page_size=``: a page of
  results (``q`` empty: the newest items); ``source``/``kind``/``author`` repeat or take
  commas; ``cursor`` is the previous page's; ``errors`` maps each failing source to its
  last sync error;
* ``/items/{source}/{identifier}``: one item, with its raw record;
* ``/sources``: every served source with its sync state;
* ``/openapi.json``: the OpenAPI 3.1 description of the above; ``/healthz``.

Built on aiohttp's own server (already the transport's dependency: no second HTTP stack).
Bound to 127.0.0.1 unless told otherwise. With a token, every API route asks for
``Authorization: Bearer <token>`` (the page itself holds no data and asks for the token).
With ``sources`` (the live repositories this server was configured with), the server keeps
them synced in the background and serves *only* them: an index shared with other sources
never leaks their items through this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from aiohttp import web

from ..exceptions import AsyncRepoError, InvalidQuery, ItemNotFound
from ..index.base import HIGHLIGHT_END, HIGHLIGHT_START, Index, IndexedItem
from ..repository import Item, Page, Repository

__all__ = ["make_app", "openapi", "serve_forever"]

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
INDEX_KEY: web.AppKey[Index] = web.AppKey("index", Index)
ALLOWED_KEY: web.AppKey[frozenset[str] | None] = web.AppKey("allowed", object)  # type: ignore[arg-type]
TOKEN_KEY: web.AppKey[str | None] = web.AppKey("token", object)  # type: ignore[arg-type]


def _page_html() -> bytes:
    return resources.files(__package__).joinpath("static/index.html").read_bytes()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    token = request.app[TOKEN_KEY]
    if token and request.path not in ("/", "/healthz"):
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), token):
            denied = _error(401, "a bearer token is required")
            denied.headers["WWW-Authenticate"] = 'Bearer realm="asyncrepo"'
            return denied
    try:
        response: web.StreamResponse = await handler(request)
    except InvalidQuery as error:
        return _error(400, str(error))
    except ItemNotFound as error:
        return _error(404, str(error))
    except AsyncRepoError as error:
        return _error(502, str(error))
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _values(request: web.Request, name: str) -> list[str]:
    out: list[str] = []
    for value in request.query.getall(name, []):
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"{name} takes an ISO date or datetime, not {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _safe_url(url: str | None) -> str | None:
    if url and url.split(":", 1)[0].lower() in ("http", "https"):
        return url
    return None


def snippet_html(snippet: str | None) -> str | None:
    """The snippet, HTML-escaped, with the highlighted terms in ``<mark>``."""
    if snippet is None:
        return None
    escaped = html.escape(snippet, quote=False)
    return escaped.replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>")


def item_json(item: Item, *, raw: bool = False) -> dict[str, Any]:
    source = item.source
    identifier = item.identifier
    if isinstance(item, IndexedItem):
        identifier = item.source_identifier
    snippet = getattr(item, "snippet", None)
    if snippet is None and item.text:
        snippet = item.text[:240]
    out: dict[str, Any] = {
        "source": source,
        "identifier": identifier,
        "title": item.title,
        "url": _safe_url(item.url),
        "author": item.author,
        "kind": item.kind,
        "created_at": item.created_at.isoformat() if item.created_at else None,
        "updated_at": item.updated_at.isoformat() if item.updated_at else None,
        "snippet": (snippet or "").replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "") or None,
        "snippet_html": snippet_html(snippet),
        "score": getattr(item, "score", None),
    }
    if raw:
        out["text"] = item.text
        out["raw"] = item.raw
    return out


async def _failing(index: Index, allowed: frozenset[str] | None) -> dict[str, str]:
    states = await index.states()
    return {
        key: state.last_error or "failed"
        for key, state in states.items()
        if state.status == "failed" and (allowed is None or key in allowed)
    }


async def _search(request: web.Request) -> web.Response:
    index = request.app[INDEX_KEY]
    allowed = request.app[ALLOWED_KEY]
    q = request.query.get("q", "").strip()
    try:
        size = int(request.query.get("page_size") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise InvalidQuery("page_size takes a number") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"page_size is from 1 to {MAX_PAGE_SIZE}")
    options: dict[str, Any] = {}
    sources = _values(request, "source")
    if allowed is not None:
        sources = [s for s in sources if s in allowed] if sources else sorted(allowed)
        if not sources:
            return web.json_response({"items": [], "cursor": None, "errors": {}})
    if sources:
        options["source"] = sources
    for name in ("kind", "author"):
        values = _values(request, name)
        if values:
            options[name] = values
    since = _date(request.query.get("since"), "since")
    until = _date(request.query.get("until"), "until")
    if until is not None and len(request.query.get("until", "")) <= 10:
        until += timedelta(days=1)  # a date: up to the end of that day
    if until is not None:
        options["until"] = until
    sort = request.query.get("sort") or None
    cursor = request.query.get("cursor") or None
    if q:
        if sort is not None:
            options["sort"] = sort
        stream = index.search_pages(q, page_size=size, since=since, cursor=cursor, **options)
    else:  # no query: the newest items
        stream = index.list_pages(
            page_size=size, since=since, cursor=cursor, order="-updated", **options
        )
    async with contextlib.aclosing(stream):
        page: Page | None = await anext(stream, None)
    items = [item_json(item) for item in page] if page is not None else []
    return web.json_response(
        {
            "items": items,
            "cursor": page.cursor if page is not None else None,
            "errors": await _failing(index, allowed),
        }
    )


async def _item(request: web.Request) -> web.Response:
    index = request.app[INDEX_KEY]
    allowed = request.app[ALLOWED_KEY]
    source = request.match_info["source"]
    if allowed is not None and source not in allowed:
        return _error(404, f"no source {source!r} here")
    item = await index.get(f"{source}:{request.match_info['identifier']}")
    return web.json_response(item_json(item, raw=True))


async def _sources(request: web.Request) -> web.Response:
    index = request.app[INDEX_KEY]
    allowed = request.app[ALLOWED_KEY]
    states = await index.states()
    keys = sorted(allowed) if allowed is not None else sorted(states)
    out = []
    for key in keys:
        state = states.get(key)
        out.append(state.public_json() if state is not None else {"source": key, "status": "new"})
    return web.json_response({"sources": out})


async def _page(request: web.Request) -> web.Response:
    return web.Response(
        body=_page_html(),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; img-src 'self' data:"
        },
    )


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi())


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(
    index: Index,
    *,
    token: str | None = None,
    sources: Mapping[str, Repository] | None = None,
    every: timedelta | None = None,
    sync_options: Mapping[str, Any] | None = None,
) -> web.Application:
    """The aiohttp application. With ``sources``, only their items are served, and with
    ``every`` they are synced in the background (first round at start)."""
    app = web.Application(middlewares=[_guard])
    app[INDEX_KEY] = index
    app[ALLOWED_KEY] = frozenset(sources) if sources is not None else None
    app[TOKEN_KEY] = token or None
    app.router.add_get("/", _page)
    app.router.add_get("/search", _search)
    app.router.add_get("/items/{source}/{identifier:.+}", _item)
    app.router.add_get("/sources", _sources)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/healthz", _health)
    if sources and every is not None:
        app.cleanup_ctx.append(_background_sync(index, sources, every, dict(sync_options or {})))
    return app


def _background_sync(
    index: Index, sources: Mapping[str, Repository], every: timedelta, options: dict[str, Any]
) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        from ..sync import sync_forever

        task = asyncio.create_task(sync_forever(sources, index, every, **options))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def serve_forever(app: web.Application, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run ``app`` until cancelled."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the JSON API."""
    string = {"type": "string"}
    nullable = {"type": ["string", "null"]}
    item = {
        "type": "object",
        "required": ["source", "identifier"],
        "properties": {
            "source": string,
            "identifier": string,
            "title": nullable,
            "url": nullable,
            "author": nullable,
            "kind": nullable,
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "snippet": nullable,
            "snippet_html": {**nullable, "description": "escaped HTML with <mark> terms"},
            "score": {"type": ["number", "null"]},
            "text": nullable,
            "raw": {"type": "object", "description": "the source's own record (/items only)"},
        },
    }

    def query(name: str, description: str, schema: dict[str, Any] | None = None) -> Any:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema or string,
        }

    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "asyncrepo unified search", "version": "1"},
        "components": {
            "schemas": {
                "Item": item,
                "Error": {"type": "object", "properties": {"error": string}},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/search": {
                "get": {
                    "summary": "Search the index (no q: the newest items)",
                    "parameters": [
                        query("q", 'the query: every term must match; "a phrase"; pre*'),
                        query("source", "source keys (repeat or comma-separated)"),
                        query("kind", "item kinds (repeat or comma-separated)"),
                        query("author", "authors (repeat or comma-separated)"),
                        query("since", "updated (or created) at or after, ISO 8601"),
                        query(
                            "until", "updated (or created) before, ISO 8601 (a date: to its end)"
                        ),
                        query(
                            "sort",
                            "relevance (default with q) or date",
                            {"enum": ["relevance", "date"]},
                        ),
                        query("cursor", "the cursor of the previous page"),
                        query("page_size", "1 to 100 (default 20)", {"type": "integer"}),
                    ],
                    "responses": {
                        "200": {
                            "description": "a page of results",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Item"},
                                            },
                                            "cursor": nullable,
                                            "errors": {
                                                "type": "object",
                                                "additionalProperties": string,
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": error,
                        "401": error,
                    },
                }
            },
            "/items/{source}/{identifier}": {
                "get": {
                    "summary": "One item, with its raw record",
                    "parameters": [
                        {"name": "source", "in": "path", "required": True, "schema": string},
                        {"name": "identifier", "in": "path", "required": True, "schema": string},
                    ],
                    "responses": {
                        "200": {
                            "description": "the item",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Item"}
                                }
                            },
                        },
                        "404": error,
                        "401": error,
                    },
                }
            },
            "/sources": {
                "get": {
                    "summary": "The served sources and their sync state",
                    "responses": {
                        "200": {
                            "description": "sources",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "sources": {
                                                "type": "array",
                                                "items": {"type": "object"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        "401": error,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
    }
