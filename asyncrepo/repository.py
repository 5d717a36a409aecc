"""Repository, Page and Item: the one interface every source implements.

A source implements two things: ``fetch_page(request, state)`` (one vendor page from an
opaque, JSON-serialisable state; ``None`` is the first page) and, if it can, a native
``get``. Everything else is derived here, once, for every source:

* ``list`` / ``search`` stream items; ``list_pages`` / ``search_pages`` assemble pages of
  exactly ``page_size`` items (the vendor's own page size can be smaller: pages are
  assembled client-side), each with a cursor that resumes in a fresh process;
* naive search (scan and match) and naive get (scan, stop at the first match) for sources
  without native ones;
* option checking: ``since`` and ``order`` are honoured natively, or client-side where the
  source declares it, or rejected with ``UnsupportedOption``; never silently ignored;
* prefetch and concurrent page fetches (``asyncrepo.pagination.pump``).

A cursor records *where the next item is*: the vendor state of the page that holds it and
how many raw items of that page come before it. Resuming re-fetches that one page and skips,
so a cursor stays valid whatever page size the caller asks for next.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import shlex
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self, TypeVar

import orjson

from .cursors import check_key, default_key, open_cursor, seal
from .exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    UnsupportedOption,
)
from .item import Item, ItemSource, collect_strings, plain_items
from .pagination import Batch, pump

__all__ = [
    "Batch",
    "Capabilities",
    "Item",
    "ItemSource",
    "Page",
    "PageRequest",
    "Repository",
    "Stream",
    "naive_match",
    "plain_items",
]

JSON = Any  # a JSON-serialisable value


_T_co = TypeVar("_T_co", covariant=True)


class Stream(Protocol[_T_co]):
    """What ``list``, ``search``, ``list_pages`` and ``search_pages`` return: an async
    iterator that can be closed early. ``aclose()`` (or ``contextlib.aclosing``) stops the
    stream at once and cancels the page fetches it started ahead of the caller."""

    def __aiter__(self) -> AsyncIterator[_T_co]: ...

    def __anext__(self) -> Awaitable[_T_co]: ...

    def aclose(self) -> Awaitable[None]: ...


class Page:
    """A page of items: iterable, sized, with a resumable ``cursor`` (``None`` on the last).

    ``errors`` maps a source name to the error it raised (federated pages only).
    """

    __slots__ = ("_index", "_stream", "cursor", "errors", "items")

    def __init__(
        self,
        items: list[Item],
        cursor: str | None = None,
        *,
        errors: Mapping[str, Exception] | None = None,
    ) -> None:
        self.items = items
        self.cursor = cursor
        self.errors: Mapping[str, Exception] = errors or {}
        self._stream: _PageStream | None = None
        self._index = 0

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Item:
        return self.items[index]

    async def next_page(self) -> Page | None:
        """The page after this one, or ``None``. Continues the live stream when it can,
        else resumes from ``cursor`` (one extra request)."""
        if self.cursor is None:
            return None
        stream = self._stream
        if stream is None:
            raise InvalidCursor("this page was built by hand: pass its cursor to list_pages()")
        return await stream.page_after(self)

    def __repr__(self) -> str:
        return f"Page({len(self.items)} items, cursor={'yes' if self.cursor else None})"


class _PageStream:
    """Lets ``Page.next_page()`` continue the generator that made the page."""

    def __init__(
        self,
        first: AsyncIterator[Page],
        resume: Callable[[str], AsyncIterator[Page]],
    ) -> None:
        self._iterator = first
        self._resume = resume
        self.produced = 0

    def __aiter__(self) -> _PageStream:
        return self

    async def __anext__(self) -> Page:
        page = await self._iterator.__anext__()
        page._stream = self
        page._index = self.produced
        self.produced += 1
        return page

    async def page_after(self, page: Page) -> Page | None:
        if page._index == self.produced - 1:
            return await anext(self, None)
        # The stream has moved on: resume from the page's cursor (one extra request).
        assert page.cursor is not None
        fresh = _PageStream(self._resume(page.cursor), self._resume)
        try:
            return await anext(fresh, None)
        finally:
            await fresh.aclose()

    async def aclose(self) -> None:
        await _aclose(self._iterator)


@dataclass(frozen=True)
class Capabilities:
    """What a repository does natively. The README's support table is generated from these.

    * ``get``: ``"native"`` (one lookup) or ``"naive"`` (scan, stop at the first match).
    * ``search``: ``"native"`` (the vendor searches), ``"naive"`` (scan and match) or
      ``"prefix"`` (the vendor filters by prefix; a ``mode="contains"`` search scans).
    * ``since``: ``"native"`` (the vendor filters), ``"client"`` (filtered here, on
      ``updated_at`` or else ``created_at``) or ``None`` (``UnsupportedOption``).
    * ``orders``: the ``order`` values the source honours (``"created"``, ``"-updated"``...).
    * ``options``: source-specific keyword options ``list``/``search`` accept.
    * ``max_page_size``: the vendor's page-size cap; larger ``page_size`` values still work
      (pages are assembled from several vendor pages).
    """

    get: Literal["native", "naive"] = "naive"
    search: Literal["native", "naive", "prefix"] = "naive"
    since: Literal["native", "client"] | None = None
    orders: frozenset[str] = frozenset()
    options: frozenset[str] = frozenset()
    max_page_size: int | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "get": self.get,
            "search": self.search,
            "since": self.since or "no",
            "orders": sorted(self.orders),
            "options": sorted(self.options),
            "max_page_size": self.max_page_size,
        }


@dataclass(frozen=True)
class PageRequest:
    """What ``fetch_page`` is asked for.

    ``query`` is set only for a native search; ``since`` only when the source filters
    natively; ``page_size`` is already capped at ``Capabilities.max_page_size``.
    ``terms`` carries a naive search's casefolded terms, for sources that match them
    themselves (``Repository.filters_search_terms``); others ignore it.
    """

    query: str | None
    page_size: int
    since: datetime | None = None
    order: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    terms: tuple[str, ...] | None = None


@dataclass(frozen=True)
class _Plan:
    """A validated call of list/search: what to fetch and what to do client-side."""

    operation: Literal["list", "search"]
    query: str | None
    request: PageRequest
    page_size: int
    terms: tuple[str, ...] | None  # naive search terms (casefolded)
    client_since: datetime | None
    stop_early: bool  # items arrive newest first: stop at the first one older than since
    fingerprint: str
    key: bytes  # the cursor key: cursors are sealed with it
    start_state: JSON
    skip: int


class Repository:
    """Base class of every source. Subclass it; implement ``fetch_page`` and, if the source
    has one, a native ``get``. See the README's "Writing a repository"."""

    #: Registry name (``vendor.resource``); custom repositories may leave the default.
    name: ClassVar[str] = "custom"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Page size used when the caller gives none (a source may set it per instance).
    default_page_size: int = 100
    #: How many pages may be fetched at once when the source knows them up front.
    page_concurrency: int = 4
    #: Drop an item whose identifier this listing already gave (a vendor whose pages shift
    #: under an offset, or a server that repeats pages). Sources whose identifiers cannot
    #: repeat by construction (CSV row numbers, counted here) switch it off.
    dedupe_identifiers: ClassVar[bool] = True
    #: How many recent identifiers the dedupe remembers, at least (about 100 bytes each).
    dedupe_window: ClassVar[int] = 200_000
    #: True when ``stream``/``fetch_page`` apply ``PageRequest.terms`` themselves (a faster
    #: naive search than matching built items, e.g. over CSV rows).
    filters_search_terms: ClassVar[bool] = False

    # -- what a source implements ---------------------------------------------------------

    async def fetch_page(self, request: PageRequest, state: JSON) -> Batch:
        """Fetch one vendor page. ``state`` is ``None`` for the first page, else a
        ``Batch.next_state`` this method returned earlier (maybe in another process)."""
        raise NotImplementedError(f"{type(self).__name__} must implement fetch_page()")

    def stream(self, request: PageRequest, state: JSON) -> AsyncIterator[tuple[JSON, Batch]]:
        """``(state, batch)`` for every vendor page from ``state`` on, in order. The default
        drives ``fetch_page`` with prefetch and concurrency (``pagination.pump``); a source
        that reads one stream (a file) overrides this instead of ``fetch_page``."""
        return pump(
            self.page_fetcher(request),
            state,
            concurrency=self.page_concurrency,
            track=self.background_tasks,
            source=self.name,
        )

    def page_fetcher(self, request: PageRequest) -> Callable[[JSON], Awaitable[Batch]]:
        """What ``stream`` fetches each page with: ``fetch_page`` for this request. A base
        class may hand ``pump`` batches whose items are made later (``Batch.build``)."""
        return lambda page_state: self.fetch_page(request, page_state)

    @property
    def background_tasks(self) -> set[asyncio.Task[Any]]:
        """Page fetches running ahead of their consumer; ``aclose()`` cancels them."""
        tasks: set[asyncio.Task[Any]] | None = self.__dict__.get("_background_tasks")
        if tasks is None:
            tasks = self.__dict__["_background_tasks"] = set()
        return tasks

    async def cancel_background(self) -> None:
        """Cancel page fetches still running for abandoned streams (part of ``aclose``)."""
        tasks = [task for task in self.__dict__.get("_background_tasks", ()) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def get(self, identifier: str) -> Item:
        """The item with this identifier; ``ItemNotFound`` if there is none.

        This default is the naive get: it scans the listing and stops at the first match.
        """
        return await self.naive_get(identifier)

    @property
    def cursor_key(self) -> bytes:
        """The key this repository's cursors are sealed with (see ``asyncrepo.cursors``):
        set per repository, else ``ASYNCREPO_CURSOR_KEY``, else this process's random key."""
        key: bytes | None = self.__dict__.get("_cursor_key")
        return key if key is not None else default_key()

    @cursor_key.setter
    def cursor_key(self, key: str | bytes) -> None:
        self.__dict__["_cursor_key"] = check_key(key)

    def scope(self) -> JSON:
        """What this repository is configured to see (bucket, project...). Cursors record
        it, so a cursor from one scope is refused by another."""
        return None

    async def aclose(self) -> None:
        """Release pooled resources (HTTP sessions, clients). Safe to call twice. Subclasses
        that hold resources override it and call ``await super().aclose()`` first."""
        await self.cancel_background()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the public interface, derived ------------------------------------------------------

    def list(
        self,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Item]:
        """Every item, streamed. See ``list_pages`` for the options."""
        plan = self._plan("list", None, page_size, since, cursor, order, options)
        return self._items(plan)

    def list_pages(
        self,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Page]:
        """Pages of ``page_size`` items (the last may be shorter; an empty listing gives one
        empty page). ``cursor`` resumes after the page that carried it. ``since`` keeps items
        created or updated at or after it (timezone-aware). ``order`` where supported."""
        plan = self._plan("list", None, page_size, since, cursor, order, options)
        return self._page_stream(plan, page_size, since, order, options)

    def search(
        self,
        query: str,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Item]:
        """Items matching ``query``, streamed (native search, or naive: see ``naive_match``)."""
        plan = self._plan("search", query, page_size, since, cursor, order, options)
        return self._items(plan)

    def search_pages(
        self,
        query: str,
        *,
        page_size: int | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        order: str | None = None,
        **options: Any,
    ) -> Stream[Page]:
        """Pages of search results; options as for ``list_pages``."""
        plan = self._plan("search", query, page_size, since, cursor, order, options)
        return self._page_stream(plan, page_size, since, order, options, query=query)

    def __aiter__(self) -> Stream[Item]:
        return self.list()

    async def naive_get(self, identifier: str) -> Item:
        """Scan the listing; return the first item whose identifier matches."""
        wanted = str(identifier)
        stream = self.list()
        try:
            async for item in stream:
                if item.identifier == wanted:
                    return item
        finally:
            await _aclose(stream)
        raise self.not_found(wanted)

    def not_found(self, identifier: str, reason: str | None = None) -> ItemNotFound:
        message = f"no item {identifier!r}" + (f": {reason}" if reason else "")
        return ItemNotFound(message, source=self.name, identifier=identifier)

    def __repr__(self) -> str:
        scope = self.scope()
        return f"<{type(self).__name__} {self.name}" + (f" {scope!r}>" if scope else ">")

    # -- machinery --------------------------------------------------------------------------

    def _plan(
        self,
        operation: Literal["list", "search"],
        query: str | None,
        page_size: int | None,
        since: datetime | None,
        cursor: str | None,
        order: str | None,
        options: dict[str, Any],
    ) -> _Plan:
        caps = self.capabilities
        source = self.name
        if operation == "search" and (not isinstance(query, str) or not query.strip()):
            raise InvalidQuery("search needs a non-empty query string", source=source)
        if page_size is None:
            page_size = self.default_page_size
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise InvalidQuery(
                f"page_size must be a positive integer, not {page_size!r}", source=source
            )
        if since is not None:
            if not isinstance(since, datetime) or since.tzinfo is None:
                raise InvalidQuery("since must be a timezone-aware datetime", source=source)
            if caps.since is None:
                raise UnsupportedOption(f"{source} cannot filter by date (since=)", source=source)
        if order is not None and order not in caps.orders:
            supported = ", ".join(sorted(caps.orders)) or "none"
            raise UnsupportedOption(
                f"{source} cannot order by {order!r} (supported: {supported})", source=source
            )
        unknown = set(options) - caps.options
        if unknown:
            accepted = ", ".join(sorted(caps.options)) or "none"
            raise UnsupportedOption(
                f"{source} does not accept option(s) {', '.join(sorted(unknown))} "
                f"(source options: {accepted})",
                source=source,
            )
        self.check_options(operation, options)

        native_search = operation == "search" and caps.search != "naive"
        terms = None
        if operation == "search" and (caps.search == "naive" or self.search_is_naive(options)):
            terms = search_terms(query or "")
        vendor_size = page_size
        if caps.max_page_size is not None:
            vendor_size = min(vendor_size, caps.max_page_size)
        request = PageRequest(
            query=query if native_search else None,
            page_size=vendor_size,
            since=since if caps.since == "native" else None,
            order=order,
            options=options,
            terms=terms,
        )
        if self.filters_search_terms:
            terms = None  # the source matches them itself
        fingerprint = _fingerprint(source, self.scope(), operation, query, since, order, options)
        start_state: JSON = None
        skip = 0
        if cursor is not None:
            start_state, skip, vendor_size = _decode_cursor(
                cursor, fingerprint, source, self.cursor_key
            )
            if caps.max_page_size is not None and vendor_size > caps.max_page_size:
                raise InvalidCursor(
                    "the cursor's page size is past the source's cap", source=source
                )
            # A resumed stream asks the vendor for pages of the size the cursor was made with:
            # a state (a page number, a token) may only mean the same items at that size.
            # The caller's page_size still shapes the pages it gets.
            request = replace(request, page_size=vendor_size)
        client_since = since if caps.since == "client" else None
        return _Plan(
            operation=operation,
            query=query,
            request=request,
            page_size=page_size,
            terms=terms,
            client_since=client_since,
            stop_early=client_since is not None and order == "-updated",
            fingerprint=fingerprint,
            key=self.cursor_key,
            start_state=start_state,
            skip=skip,
        )

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        """Validate source-specific option values; raise ``InvalidQuery`` if one is wrong."""

    def search_is_naive(self, options: Mapping[str, Any]) -> bool:
        """Whether this search call also needs the naive match (e.g. S3's contains mode)."""
        return False

    async def _selected(
        self, plan: _Plan
    ) -> AsyncIterator[tuple[JSON, Sequence[int], builtins.list[Item], JSON]]:
        """Per vendor page: its state, the items that pass the client-side filters with their
        indices in the page (a cursor is "page state + index"), and the next page's state."""
        terms = plan.terms
        since = plan.client_since
        skip = plan.skip
        seen = _SeenIdentifiers(self.dedupe_window) if self.dedupe_identifiers else None
        stalled = 0  # pages in a row that brought nothing new
        empty = 0  # empty pages in a row that promised more
        batches = self.stream(plan.request, plan.start_state)
        try:
            async for state, batch in batches:
                items = batch.items
                start, skip = skip, 0
                if items or batch.next_state is None:
                    empty = 0
                else:
                    empty += 1
                    if empty >= EMPTY_PAGES:
                        raise MalformedResponse(
                            f"{empty} empty pages in a row, each promising another: stopped "
                            "instead of following them forever",
                            source=self.name,
                        )
                if terms is None and since is None:
                    selection = items[start:] if start else items
                    # The common case: no filter, and (checked for the page at once, in C)
                    # no identifier seen before. Otherwise the item-by-item path below.
                    if seen is None or seen.add_all([i.identifier for i in selection]):
                        stalled = 0
                        yield state, range(start, len(items)), selection, batch.next_state
                        continue
                indices: list[int] = []
                selected: builtins.list[Item] = []
                stop = False
                fresh = 0
                for index in range(start, len(items)):
                    item = items[index]
                    if seen is not None:
                        if not seen.add(item.identifier):
                            continue  # listed already: the vendor shifted or repeated a page
                        fresh += 1
                    if since is not None:
                        stamp = item.updated_at or item.created_at
                        if stamp is not None and stamp < since:
                            if plan.stop_early:
                                stop = True
                                break
                            continue
                    if terms is not None and not naive_match(item, terms):
                        continue
                    indices.append(index)
                    selected.append(item)
                if seen is not None and len(items) > start and not fresh and not stop:
                    stalled += 1
                    if stalled >= STALLED_PAGES and batch.next_state is not None:
                        raise MalformedResponse(
                            f"{stalled} pages in a row repeated items already listed while the "
                            "vendor kept promising more: stopped instead of looping",
                            source=self.name,
                        )
                else:
                    stalled = 0
                yield state, indices, selected, None if stop else batch.next_state
                if stop:
                    return
        except ItemNotFound as exc:
            # A listing has no item to miss: a 404 here is a missing endpoint or scope.
            raise ConfigurationError(
                "the listing endpoint does not exist: check the base URL and the repository's "
                "scope (project, space, board, bucket...)",
                source=exc.source or self.name,
                method=exc.method,
                url=exc.url,
                status=exc.status,
                vendor_message=exc.vendor_message,
            ) from None
        finally:
            await _aclose(batches)

    async def _items(self, plan: _Plan) -> AsyncGenerator[Item, None]:
        selected = self._selected(plan)
        try:
            async for _state, _indices, items, _next in selected:
                for item in items:
                    yield item
        finally:
            await _aclose(selected)

    def _page_stream(
        self,
        plan: _Plan,
        page_size: int | None,
        since: datetime | None,
        order: str | None,
        options: dict[str, Any],
        query: str | None = None,
    ) -> Stream[Page]:
        def resume(cursor: str) -> AsyncIterator[Page]:
            fresh = self._plan(plan.operation, query, page_size, since, cursor, order, options)
            return self._pages(fresh)

        return _PageStream(self._pages(plan), resume)

    async def _pages(self, plan: _Plan) -> AsyncGenerator[Page, None]:
        size = plan.page_size
        buffer: builtins.list[Item] = []
        produced = False
        selected = self._selected(plan)
        try:
            async for state, indices, items, next_state in selected:
                if type(indices) is range:
                    # The common case, every item of the vendor page from one on: whole
                    # slices into the buffer (list.extend, in C) instead of item by item.
                    # The cursor rule is the same: a full page is given out only when an
                    # item follows it, and its cursor points at that item.
                    at, count = 0, len(items)
                    while at < count:
                        if len(buffer) == size:
                            yield Page(buffer, _encode_cursor(plan, state, indices[at]))
                            produced = True
                            buffer = []
                        take = min(size - len(buffer), count - at)
                        buffer += items[at : at + take] if take < count else items
                        at += take
                else:
                    for index, item in zip(indices, items, strict=True):
                        if len(buffer) == size:
                            # One item of look-ahead: the cursor points at the next page's
                            # first item, and a page has a cursor only if something follows.
                            yield Page(buffer, _encode_cursor(plan, state, index))
                            produced = True
                            buffer = []
                        buffer.append(item)
                if len(buffer) == size and next_state is not None:
                    # Full at the end of a vendor page: yield it now rather than wait for the
                    # next page's first item. Its cursor is the next page; should that page
                    # turn out empty, resuming gives one empty page.
                    yield Page(buffer, _encode_cursor(plan, next_state, 0))
                    produced = True
                    buffer = []
        finally:
            await _aclose(selected)
        if buffer or not produced:
            yield Page(buffer, None)


#: A listing fails after this many pages in a row that brought only identifiers it had
#: already given (one or two happen honestly: an insertion shifts an offset listing).
STALLED_PAGES = 3
#: A listing fails after this many empty pages in a row that each promise another. Some
#: vendors filter after paging (Slack's ``exclude_archived``), so a few are honest.
EMPTY_PAGES = 100


class _SeenIdentifiers:
    """The identifiers a listing gave recently, in bounded memory: two generations of sets;
    when the young one holds ``window / 2`` entries it becomes the old one. Every identifier
    of the last ``window / 2`` at least is remembered, exactly (no hashing, no false
    positives: an item is never dropped for resembling another)."""

    __slots__ = ("_half", "_old", "_young")

    def __init__(self, window: int) -> None:
        self._half = max(1, window // 2)
        self._young: set[str] = set()
        self._old: set[str] = set()

    def add_all(self, identifiers: builtins.list[str]) -> bool:
        """Remember every identifier and return True, if none was remembered already and none
        repeats; else remember nothing and return False (then ``add`` them one by one)."""
        fresh = set(identifiers)
        if (
            len(fresh) != len(identifiers)
            or not fresh.isdisjoint(self._young)
            or not fresh.isdisjoint(self._old)
        ):
            return False
        young = self._young
        young |= fresh
        if len(young) >= self._half:
            self._old, self._young = young, set()
        return True

    def add(self, identifier: str) -> bool:
        """Remember ``identifier``; False if it was remembered already."""
        if identifier in self._young or identifier in self._old:
            return False
        young = self._young
        young.add(identifier)
        if len(young) >= self._half:
            self._old, self._young = young, set()
        return True


# -- naive search ---------------------------------------------------------------------------


def search_terms(query: str) -> tuple[str, ...]:
    """Split a query into casefolded terms; quoted phrases stay one term."""
    try:
        parts = shlex.split(query)
    except ValueError:  # an unbalanced quote: take the words as they are
        parts = query.split()
    return tuple(p.casefold() for p in parts if p.strip()) or (query.casefold(),)


def naive_match(item: Item, terms: Iterable[str]) -> bool:
    """True when every term occurs, case-insensitively, in the item's raw values (at any
    depth) or its title, text, url or author."""
    strings: list[str] = []
    collect_strings(item.raw, strings)
    for name in ("title", "text", "url", "author"):
        value = getattr(item, name)
        if value:
            strings.append(value)
    haystack = "\x00".join(strings).casefold()
    return all(term in haystack for term in terms)


# -- cursors ----------------------------------------------------------------------------------


def _fingerprint(
    source: str,
    scope: JSON,
    operation: str,
    query: str | None,
    since: datetime | None,
    order: str | None,
    options: Mapping[str, Any],
) -> str:
    material = orjson.dumps(
        [source, scope, operation, query, since.isoformat() if since else None, order, options],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=repr,
    )
    return hashlib.sha256(material).hexdigest()[:16]


#: The largest numbers a cursor may hold: a vendor page is never bigger (a cursor past these
#: was not made by a listing of ours, whatever its signature says).
_MAX_SKIP = 10**9
_MAX_VENDOR_PAGE = 10**6


def _encode_cursor(plan: _Plan, state: JSON, skip: int) -> str:
    """Where the next item is: the state of its vendor page, its index there, and the vendor
    page size that state was fetched with; sealed with the repository's cursor key."""
    record = {"v": 2, "f": plan.fingerprint, "s": state, "k": skip, "n": plan.request.page_size}
    try:
        payload = orjson.dumps(record)
    except TypeError as exc:  # a connector bug: states must be JSON-serialisable
        raise TypeError(f"page state is not JSON-serialisable: {state!r}") from exc
    return seal(payload, plan.key)


def _decode_cursor(cursor: str, fingerprint: str, source: str, key: bytes) -> tuple[JSON, int, int]:
    payload = open_cursor(cursor, key, source=source)
    try:
        record = orjson.loads(payload)
        version, found, state = record["v"], record["f"], record["s"]
        skip, size = record["k"], record["n"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidCursor("not a cursor asyncrepo produced", source=source) from exc
    if version != 2:
        raise InvalidCursor("unsupported cursor version", source=source)
    if not (
        isinstance(skip, int)
        and not isinstance(skip, bool)
        and 0 <= skip <= _MAX_SKIP
        and isinstance(size, int)
        and not isinstance(size, bool)
        and 0 < size <= _MAX_VENDOR_PAGE
    ):
        raise InvalidCursor("a cursor with numbers out of range", source=source)
    if found != fingerprint:
        raise InvalidCursor(
            "this cursor belongs to another repository, operation, query or option set",
            source=source,
        )
    return state, skip, size


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    aclose: Callable[[], Awaitable[None]] | None = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
