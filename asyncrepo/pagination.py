"""Pagination: how vendor pages follow each other, and how they are fetched.

Two halves:

* ``pump`` drives any ``fetch_page(state) -> Batch`` function. When the source knows the
  following pages up front (offset + total, a Link ``rel="last"``), it fetches them
  concurrently (bounded) and yields them in order; when it does not, it prefetches the next
  page while the caller consumes the current one. Leaving early cancels what is in flight.
* Paginator strategies for HTTP sources, one small class per vendor habit: Link header,
  next token in the body, next URL in the body, offset + total, page number, single page.
  A connector picks one in its ``Endpoint``; it never writes its own loop. Every state a
  paginator produces is JSON-serialisable, so it can live in a cursor.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import itertools
import re
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson

from .exceptions import InvalidCursor, MalformedResponse
from .item import Item
from .wire import PreparedRequest, Response, redact_url

__all__ = [
    "Batch",
    "LinkHeader",
    "NextToken",
    "NextURL",
    "OffsetTotal",
    "PageNumber",
    "PaginationLoop",
    "Paginator",
    "PreparedRequest",
    "SinglePage",
    "parse_link_header",
    "pump",
]

JSON = Any
#: The states of all following pages, or a function computing them on demand. Any iterable
#: will do; a ``range`` or a generator costs nothing however many pages a vendor claims, so
#: an absurd total never becomes an allocation.
Following = Iterable[JSON] | Callable[[], Iterable[JSON] | None] | None
#: A page-concurrency limit: a number, or a function read each time a fetch could start
#: (a source adapting to the vendor's rate-limit headers).
Concurrency = int | Callable[[], int]


@dataclass
class Batch:
    """One vendor page: its items, the state of the page after it (``None``: last page), and,
    when the vendor tells, the states of *all* the following pages (for concurrent fetch):
    an iterable, or a function that returns one (``pump`` only asks the first page's, and
    takes from it lazily)."""

    items: list[Item]
    next_state: JSON = None
    following: Following = None
    #: The items, not made yet (``items`` is empty until then): ``pump`` calls it once the
    #: next page's request is out, so mapping one page's records (or fetching what they
    #: point to: it may be a coroutine) overlaps the next page's round trip.
    build: Callable[[], list[Item] | Awaitable[list[Item]]] | None = field(
        default=None, kw_only=True
    )


class PaginationLoop(MalformedResponse):
    """The vendor led a listing back to a page it had already served (a cyclic next link,
    token or offset): following it would stream the same items forever."""


def state_key(state: JSON) -> bytes:
    """A short digest of a page state, for remembering which pages a listing has visited at
    16 bytes a page."""
    try:
        material = orjson.dumps(state, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        material = repr(state).encode()
    return hashlib.blake2b(material, digest_size=16).digest()


async def pump(
    fetch: Callable[[JSON], Awaitable[Batch]],
    start: JSON,
    *,
    concurrency: Concurrency = 4,
    track: set[asyncio.Task[Any]] | None = None,
    source: str | None = None,
) -> AsyncIterator[tuple[JSON, Batch]]:
    """Yield ``(state, batch)`` in page order, from ``start`` to the last page.

    Prefetches one page ahead; fetches up to ``concurrency`` pages at once when the states of
    the following pages are known, taking them from the plan only as fetches start (a plan
    of a trillion pages costs nothing). A planned listing ends at the first page that says it
    is the last (``next_state`` ``None``: an empty page past a vendor's inflated total).
    A state seen before in this listing raises ``PaginationLoop``. Closing the generator
    cancels outstanding fetches; so does cancelling the tasks in ``track`` (the
    repository's, on ``aclose()``).
    """
    limit = concurrency if callable(concurrency) else (lambda: concurrency)
    pending: deque[tuple[JSON, asyncio.Task[Batch]]] = deque()
    planned: Iterator[JSON] | None = None
    visited: set[bytes] = set()

    def visit(state: JSON) -> None:
        key = state_key(state)
        if key in visited:
            raise PaginationLoop(
                f"the vendor led the listing back to a page it had already served, after "
                f"{len(visited)} pages (state {_describe(state)}): stopped instead of "
                "repeating items forever",
                source=source,
            )
        visited.add(key)

    try:
        state = start
        visit(state)
        batch = await fetch(state)
        while True:
            if planned is None and batch.following is not None:
                known = batch.following() if callable(batch.following) else batch.following
                planned = _nonempty(known)
            if planned is not None:
                allowed = max(1, limit())
                while len(pending) < allowed:
                    next_state = next(planned, _END)
                    if next_state is _END:
                        break
                    visit(next_state)
                    pending.append((next_state, _start(fetch(next_state), track)))
            elif batch.next_state is not None and not pending:
                next_state = batch.next_state
                visit(next_state)
                pending.append((next_state, _start(fetch(next_state), track)))
            if batch.build is not None:
                if pending:
                    for _ in range(SEND_TURNS):  # let the next request reach the wire first
                        await asyncio.sleep(0)
                built = batch.build()
                batch.build = None
                batch.items = await built if inspect.isawaitable(built) else built
            yield state, batch
            if not pending:
                return
            state, task = pending.popleft()
            batch = await task
            if planned is not None and batch.next_state is None:
                # A planned page that is the last: the pages planned after it are past the
                # data (a shrinking listing, or a lying total). Drop them.
                planned = iter(())
                for _, extra in pending:
                    extra.cancel()
                if pending:
                    await asyncio.gather(*(t for _, t in pending), return_exceptions=True)
                pending.clear()
    finally:
        for _, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


_END = object()
#: Event-loop turns given to a just-started page fetch before a page's items are made: a
#: request on a pooled connection reaches the wire in about 5 (aiohttp's send path awaits
#: several times), so the mapping then overlaps its round trip.
SEND_TURNS = 8


def _nonempty(states: Iterable[JSON] | None) -> Iterator[JSON] | None:
    """An iterator over ``states``, or ``None`` when there are none (then the listing
    follows ``next_state`` page by page)."""
    if states is None:
        return None
    iterator = iter(states)
    first = next(iterator, _END)
    return None if first is _END else itertools.chain((first,), iterator)


def _describe(state: JSON) -> str:
    text = state if isinstance(state, str) else orjson.dumps(state, default=repr).decode()
    if isinstance(state, str) and state.startswith(("http://", "https://")):
        text = redact_url(state)
    return text if len(text) <= 120 else text[:117] + "..."


def _start(fetch: Awaitable[Batch], track: set[asyncio.Task[Any]] | None) -> asyncio.Task[Batch]:
    task: asyncio.Task[Batch] = asyncio.ensure_future(fetch)
    if track is not None:
        track.add(task)
        task.add_done_callback(track.discard)
    return task


# -- HTTP paginators ------------------------------------------------------------------------


class Paginator:
    """A strategy: how to ask for the page at a state, and what state comes next."""

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        return request

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        """``(next_state, following)``: the next page's state (``None`` when this page is
        the last) and, if known, the states of every following page."""
        return None, None


class SinglePage(Paginator):
    """The vendor returns everything in one response (Greenhouse's job list)."""


_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL_RE = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def parse_link_header(value: str | None) -> dict[str, str]:
    """``{rel: url}`` from an RFC 8288 ``Link`` header (several rels per link allowed)."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK_RE.finditer(value):
        url, params = match.group(1), match.group(2)
        rel = _REL_RE.search(params)
        if rel:
            for name in rel.group(1).split():
                links.setdefault(name.lower(), url)
    return links


class _NumberedURLs(Sequence[str]):
    """``url`` with its parameter ``name`` moved to the end and set to each of ``numbers``,
    made on demand: the query is parsed and encoded once (a listing of thousands of pages
    costs one URL rewrite, not one per page), and a vendor claiming a trillion pages costs
    no memory (``pump`` takes URLs only as it fetches them)."""

    def __init__(self, url: str, name: str, numbers: range) -> None:
        parts = urlsplit(url)
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
        query = urlencode([*kept, (name, "")])  # ends in "name="
        self._head = urlunsplit(parts._replace(query=query, fragment=""))
        self._tail = "#" + parts.fragment if parts.fragment else ""
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return f"{self._head}{self._numbers[index]}{self._tail}"


def _same_origin(state: JSON, endpoint: str) -> str:
    """A next-page URL from a state (maybe from a cursor someone handed us): it must point at
    the endpoint's own scheme, host and port, or the client's credentials would go along to
    wherever it points."""
    url = str(state)
    theirs, ours = urlsplit(url), urlsplit(endpoint)
    if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
        raise InvalidCursor(f"a page URL on another host ({theirs.scheme}://{theirs.hostname})")
    return url


def _param(url: str, name: str) -> str | None:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            return value
    return None


@dataclass
class LinkHeader(Paginator):
    """Follow ``Link: <...>; rel="next"`` (GitHub, Confluence v2). The state is the next URL.

    When the header also gives ``rel="last"`` and pages are numbered by ``page_param``, the
    URLs of all following pages are known, and ``pump`` fetches them concurrently.
    """

    page_size_param: str | None = "per_page"
    page_param: str | None = "page"

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        if state is not None:  # the vendor's own next URL, with every parameter in it
            return PreparedRequest(
                request.method, _same_origin(state, request.url), {}, request.json
            )
        params = dict(request.params)
        if self.page_size_param:
            params[self.page_size_param] = page_size
        return PreparedRequest(request.method, request.url, params, request.json)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        links = parse_link_header(response.headers.get("Link"))
        next_url = links.get("next")
        if not next_url:
            return None, None
        next_url = urljoin(response.url, next_url)
        last_url = links.get("last")
        page_param = self.page_param
        if not (last_url and page_param):
            return next_url, None
        last_url = urljoin(response.url, last_url)

        def following() -> Sequence[str] | None:  # computed only when pump asks (first page)
            assert page_param is not None and last_url is not None
            first, last = _param(next_url, page_param), _param(last_url, page_param)
            if not (first and last and first.isdigit() and last.isdigit()):
                return None
            urls = _NumberedURLs(next_url, page_param, range(int(first), int(last) + 1))
            if not urls or urls[-1] != last_url:
                return None  # the pages differ by more than their number
            return urls

        return next_url, following


def dig(body: Any, path: str | Sequence[str] | None) -> Any:
    """``body["a"]["b"]`` for ``path="a.b"``; ``None`` where a step is missing."""
    if path is None:
        return body
    keys = path.split(".") if isinstance(path, str) else path
    value = body
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


@dataclass
class NextToken(Paginator):
    """A next-page token in the body, sent back as a parameter (Jira's ``nextPageToken``).

    Stops when the token is missing or the page is empty; a token that repeats the one just
    sent is a vendor bug that would loop forever, so it raises ``MalformedResponse``.
    """

    token_field: str = "nextPageToken"
    token_param: str = "nextPageToken"
    page_size_param: str | None = "maxResults"
    in_body: bool = False  # send token and page size in the JSON body (a POST search)

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        values: dict[str, Any] = {}
        if self.page_size_param:
            values[self.page_size_param] = page_size
        if state is not None:
            values[self.token_param] = state
        if self.in_body:
            body = dict(request.json or {})
            body.update(values)
            return PreparedRequest(request.method, request.url, dict(request.params), body)
        return PreparedRequest(
            request.method, request.url, {**request.params, **values}, request.json
        )

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        token = dig(body, self.token_field)
        if not token or not records:
            return None, None
        if token == state:
            raise response.malformed(f"the vendor repeated the page token {self.token_field}")
        return token, None


@dataclass
class NextURL(Paginator):
    """A next-page URL in the body (Confluence's ``_links.next``), else in a Link header.

    ``base_field`` names a body field the URL is relative to (v1's ``_links.base``, which
    already ends in ``/wiki``); without it the URL is joined to the response URL, which is
    right for links that start with ``/`` (v2's ``/wiki/api/v2/...``).
    """

    next_field: str = "_links.next"
    base_field: str | None = None
    page_size_param: str | None = "limit"

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        if state is not None:
            return PreparedRequest(
                request.method, _same_origin(state, request.url), {}, request.json
            )
        params = dict(request.params)
        if self.page_size_param:
            params[self.page_size_param] = page_size
        return PreparedRequest(request.method, request.url, params, request.json)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        link = dig(body, self.next_field)
        if not link:
            link = parse_link_header(response.headers.get("Link")).get("next")
        if not link or not records:
            return None, None
        if not isinstance(link, str):
            raise response.malformed(f"{self.next_field} is not a URL")
        base = dig(body, self.base_field) if self.base_field else None
        if isinstance(base, str) and not link.startswith(("http://", "https://")):
            next_url = base.rstrip("/") + "/" + link.lstrip("/")
        else:
            next_url = urljoin(response.url, link)
        if next_url == state:
            raise response.malformed("the vendor repeated the next-page link")
        return next_url, None


@dataclass
class OffsetTotal(Paginator):
    """``offset`` + ``limit`` parameters and a ``total`` in the body (Jira Data Center).

    The server may cap the page size: the limit it reports back (``limit_field``) is
    trusted. With ``total`` known, every following offset is known, so pages are fetched
    concurrently. ``last_field`` (``isLast``) is honoured when present.
    """

    offset_param: str = "startAt"
    limit_param: str = "maxResults"
    total_field: str | None = "total"
    limit_field: str | None = "maxResults"
    last_field: str | None = None

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        params = {**request.params, self.offset_param: int(state or 0), self.limit_param: page_size}
        return PreparedRequest(request.method, request.url, params, request.json)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        offset = int(state or 0)
        if not records:
            return None, None
        if self.last_field and dig(body, self.last_field) is True:
            return None, None
        next_offset = offset + len(records)
        total = dig(body, self.total_field) if self.total_field else None
        if not isinstance(total, int):
            # No total: a short page ends the listing.
            limit = dig(body, self.limit_field) if self.limit_field else None
            step = limit if isinstance(limit, int) and limit > 0 else page_size
            return (next_offset if len(records) >= step else None), None
        if next_offset >= total:
            return None, None
        reported = dig(body, self.limit_field) if self.limit_field else None
        following = None
        if isinstance(reported, int) and 0 < reported == len(records):
            following = range(next_offset, total, reported)  # lazy: totals may lie
        return next_offset, following


@dataclass
class PageNumber(Paginator):
    """``page`` and ``per_page`` parameters; a short or empty page is the last, unless the
    body states the number of pages (``pages_field``), which allows concurrent fetch."""

    page_param: str = "page"
    page_size_param: str | None = "per_page"
    first_page: int = 1
    pages_field: str | None = None

    def prepare(self, request: PreparedRequest, state: JSON, page_size: int) -> PreparedRequest:
        params = dict(request.params)
        params[self.page_param] = self.first_page if state is None else int(state)
        if self.page_size_param:
            params[self.page_size_param] = page_size
        return PreparedRequest(request.method, request.url, params, request.json)

    def advance(
        self, response: Response, body: Any, records: list[Any], state: JSON, page_size: int
    ) -> tuple[JSON, Following]:
        page = self.first_page if state is None else int(state)
        if not records:
            return None, None  # an empty page ends the listing, whatever a count claims
        pages = dig(body, self.pages_field) if self.pages_field else None
        if isinstance(pages, int):
            last = pages - 1 + self.first_page
            if page >= last:
                return None, None
            return page + 1, range(page + 1, last + 1)  # lazy: page counts may lie
        if len(records) < page_size:
            return None, None
        return page + 1, None
