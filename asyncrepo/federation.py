"""One repository over many: fan out, stream as results arrive, isolate failures.

``Federated({"jira": jira, "wiki": confluence})`` is itself a ``Repository``. Identifiers are
``"<name>:<identifier>"``; ``get`` routes to the named source. ``list``/``search`` run every
source concurrently (at most ``concurrency`` at once) and yield items as they arrive, so the
first item never waits for the slowest source. Pages interleave the sources round-robin
among those with results ready; ``order=`` instead merges the sources' natively ordered
streams (a k-way merge), and needs every source to support that order.

A source that fails or passes its deadline (``timeout=``: seconds the operation may spend
waiting for that source, its queue for a concurrency slot and the caller's own pace aside) is
left out and its error kept in ``federated.errors`` and ``page.errors``; ``strict=True``
raises instead. A federated cursor records where every source stands (a failed source is
retried from where it stood). Leaving an iterator early cancels every outstanding request.
Closing the federated repository closes its sources.

Sources are read through their public ``list_pages``/``search_pages`` (so a source's own
checks and overrides apply), in pages of the caller's ``page_size`` capped at the source's
``max_page_size``; a source's items therefore arrive a page at a time, and when a source
fails, the items of the page it was assembling are not delivered (a cursor still resumes
before them). Arguments are checked when ``list``/``search``... are called, as for any
repository: a bad option is an error, not a failure of every source.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from .cursors import open_cursor, seal
from .exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOption,
)
from .repository import Capabilities, Item, Page, Repository, Stream, _aclose, _PageStream

__all__ = ["Federated"]

_Position = Any  # "done", or [source cursor of the head page (None: the start), items handed out]


@dataclass
class _Feed:
    """One source's part in a federated operation.

    Its position is where its next item stands: the source cursor of the page that holds it
    (``start_cursor``; ``None`` for the first page) and how many items of that page come
    before it (``consumed``). On resume, the first pages that arrive hold ``skip`` items that
    were handed out before; they are dropped (``skip`` can span several pages when the caller
    asks for smaller pages than before).
    """

    name: str
    repository: Repository
    stream: AsyncIterator[Page]
    start_cursor: str | None = None
    consumed: int = 0
    skip: int = 0
    pages: deque[tuple[deque[Item], str | None]] = field(default_factory=deque)
    done: bool = False  # every item of this source has been handed out
    running: bool = True  # the source task has not reported its end yet
    index: int = 0  # place in the round-robin
    task: asyncio.Task[None] | None = None

    def add_page(self, items: Sequence[Item], cursor: str | None) -> None:
        queue = deque(items)
        if self.skip:
            dropped = min(self.skip, len(queue))
            for _ in range(dropped):
                queue.popleft()
            self.skip -= dropped
            if not queue:
                # The whole page was handed out before: the position moves past it.
                self.start_cursor, self.consumed = cursor, self.skip
                if cursor is None:
                    self.done = True
                return
        self.pages.append((queue, cursor))

    def has_item(self) -> bool:
        while self.pages and not self.pages[0][0]:
            self._finish_head()
        return bool(self.pages)

    def head(self) -> Item:
        return self.pages[0][0][0]

    def take(self) -> Item:
        items, _ = self.pages[0]
        item = items.popleft()
        self.consumed += 1
        if not items:
            self._finish_head()
        return item

    def _finish_head(self) -> None:
        _, cursor = self.pages.popleft()
        self.start_cursor, self.consumed = cursor, 0
        if cursor is None:
            self.done = True

    def position(self) -> _Position:
        return "done" if self.done else [self.start_cursor, self.consumed]


class _Expired(Exception):
    """A source spent its whole time budget."""


@dataclass
class _Operation:
    """A validated federated list or search: the sources' streams, not started yet."""

    fingerprint: str
    page_size: int
    order: str | None
    feeds: list[_Feed]
    finished: dict[str, _Position]  # sources the cursor says are done
    errors: dict[str, Exception] = field(default_factory=dict)


class Federated(Repository):
    """A repository that searches and lists many sources at once.

    ``sources``: a mapping of name -> repository, or a sequence (named after each
    repository's registry name, numbered when repeated). ``timeout``: per-source deadline in
    seconds for one operation: the time the operation spends waiting for that source (not
    the time it waits for a concurrency slot, nor for the caller to ask for more).
    ``strict``: raise a source's error instead of reporting it. ``concurrency``: how many
    sources run at once. ``dedupe``: ``"url"`` or ``"identifier"`` (the source's own
    identifier) to drop repeats across sources (within one run: a resumed run does not know
    what the earlier one handed out).
    """

    name = "federated"

    def __init__(
        self,
        sources: Mapping[str, Repository] | Sequence[Repository],
        *,
        timeout: float | None = None,
        strict: bool = False,
        concurrency: int = 16,
        dedupe: Literal["url", "identifier"] | None = None,
    ) -> None:
        if isinstance(sources, Mapping):
            named = dict(sources)
        else:
            named = {}
            for repository in sources:
                base = repository.name
                name = base
                for n in itertools.count(2):
                    if name not in named:
                        break
                    name = f"{base}{n}"
                named[name] = repository
        if not named:
            raise ConfigurationError("a federated repository needs at least one source")
        for name, repository in named.items():
            if not isinstance(name, str) or ":" in name or not name:
                raise ConfigurationError(f"source names cannot be empty or contain ':': {name!r}")
            if not isinstance(repository, Repository):
                raise ConfigurationError(f"source {name!r} is not a Repository")
        if dedupe not in (None, "url", "identifier"):
            raise ConfigurationError("dedupe is None, 'url' or 'identifier'")
        if timeout is not None and not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number, not {timeout!r}")
        self.sources = named
        self.timeout = timeout
        self.strict = strict
        self.concurrency = max(1, concurrency)
        self.dedupe = dedupe
        #: Errors of the sources that failed in the latest operation, by source name.
        self.errors: dict[str, Exception] = {}
        # What every source can do: orders they all honour, since if all support it.
        caps = [repository.capabilities for repository in named.values()]
        self.capabilities = Capabilities(  # type: ignore[misc]
            get="native",
            search="native",
            since="native" if all(c.since for c in caps) else None,
            orders=frozenset.intersection(*(c.orders for c in caps)),
        )

    def scope(self) -> Any:
        return sorted(self.sources)

    def __repr__(self) -> str:
        return f"<Federated {', '.join(self.sources)}>"

    async def aclose(self) -> None:
        await super().aclose()
        for repository in self.sources.values():
            await repository.aclose()

    # -- get --------------------------------------------------------------------------------

    async def get(self, identifier: str) -> Item:
        name, sep, inner = str(identifier).partition(":")
        source = self.sources.get(name) if sep else None
        if source is None:
            raise ItemNotFound(
                f"no item {identifier!r}: identifiers are '<source>:<id>' with a source among "
                f"{', '.join(self.sources)}",
                source=self.name,
                identifier=str(identifier),
            )
        return self._wrap(name, await source.get(inner))

    # -- list and search ---------------------------------------------------------------------
    # Arguments are checked when called (as for any repository), not at the first item.

    def list(self, **options: Any) -> Stream[Item]:
        return self._federated_items(self._prepare("list", None, options))

    def search(self, query: str, **options: Any) -> Stream[Item]:
        return self._federated_items(self._prepare("search", query, options))

    def list_pages(self, **options: Any) -> Stream[Page]:
        return self._page_stream_of("list", None, options)

    def search_pages(self, query: str, **options: Any) -> Stream[Page]:
        return self._page_stream_of("search", query, options)

    def _page_stream_of(
        self, operation: str, query: str | None, options: dict[str, Any]
    ) -> Stream[Page]:
        first = self._prepare(operation, query, options)

        def resume(cursor: str) -> AsyncIterator[Page]:
            return self._federated_pages(
                self._prepare(operation, query, {**options, "cursor": cursor})
            )

        return _PageStream(self._federated_pages(first), resume)

    async def _federated_items(self, operation: _Operation) -> AsyncGenerator[Item, None]:
        merged = self._merge(operation)
        try:
            async for item, _ in merged:
                yield item
        finally:
            await _aclose(merged)

    async def _federated_pages(self, operation: _Operation) -> AsyncGenerator[Page, None]:
        size = operation.page_size
        errors = operation.errors
        merged = self._merge(operation)
        buffer: list[Item] = []
        produced = False
        try:
            async for item, position in merged:
                if len(buffer) == size:
                    # One item of look-ahead: a page has a cursor only if something follows,
                    # and the cursor resumes at that item.
                    yield Page(buffer, position(), errors=dict(errors))
                    produced = True
                    buffer = []
                buffer.append(item)
        finally:
            await _aclose(merged)
        if buffer or not produced:
            yield Page(buffer, None, errors=dict(errors))

    def _prepare(self, operation: str, query: str | None, options: dict[str, Any]) -> _Operation:
        """Check the arguments and open (lazily) every source's page stream."""
        options = dict(options)
        cursor = options.pop("cursor", None)
        page_size = options.pop("page_size", None)
        if page_size is None:
            page_size = self.default_page_size
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise InvalidQuery(
                f"page_size must be a positive integer, not {page_size!r}", source=self.name
            )
        if operation == "search" and (not isinstance(query, str) or not query.strip()):
            raise InvalidQuery("search needs a non-empty query string", source=self.name)
        order = options.get("order")
        if order is not None:
            unable = [
                name
                for name, repository in self.sources.items()
                if order not in repository.capabilities.orders
            ]
            if unable:
                raise UnsupportedOption(
                    f"order={order!r} needs every source to support it natively; "
                    f"{', '.join(unable)} cannot",
                    source=self.name,
                )
        if options.get("since") is not None:
            unable = [
                name
                for name, repository in self.sources.items()
                if not repository.capabilities.since
            ]
            if unable:
                raise UnsupportedOption(
                    f"since= is not supported by {', '.join(unable)}", source=self.name
                )
        fingerprint = self._fingerprint(operation, query, options)
        positions = self._decode(cursor, fingerprint) if cursor is not None else {}
        feeds: list[_Feed] = []
        finished: dict[str, _Position] = {}
        for name, repository in self.sources.items():
            where = positions.get(name, [None, 0])
            if where == "done":
                finished[name] = where
                continue
            start, skip = where
            # Any page size resumes a source cursor; a source's vendor cap keeps its pages
            # (and so its first items) small.
            size = min(page_size, repository.capabilities.max_page_size or page_size)
            # Opening the stream checks the source's own options now (UnsupportedOption,
            # InvalidQuery, InvalidCursor); nothing is fetched until it is iterated.
            if operation == "search":
                assert query is not None
                stream = repository.search_pages(query, page_size=size, cursor=start, **options)
            else:
                stream = repository.list_pages(page_size=size, cursor=start, **options)
            feed = _Feed(name, repository, stream, start, skip, skip=skip, index=len(feeds))
            feeds.append(feed)
        return _Operation(fingerprint, page_size, order, feeds, finished)

    async def _merge(
        self, operation: _Operation
    ) -> AsyncIterator[tuple[Item, Callable[[], str | None]]]:
        """Items, each with a function giving the cursor that resumes *at* it (computed only
        when a page needs it)."""
        feeds = operation.feeds
        errors = operation.errors
        self.errors = errors
        arrivals: asyncio.Queue[tuple[_Feed, Page | Exception | None]] = asyncio.Queue()
        semaphore = asyncio.Semaphore(self.concurrency)
        backpressure = {feed.name: asyncio.Semaphore(2) for feed in feeds}  # unread pages
        timeout = self.timeout
        loop = asyncio.get_running_loop()

        async def pull(feed: _Feed) -> None:
            stream = feed.stream
            budget = timeout
            gate = backpressure[feed.name]
            try:
                while True:
                    if budget is None:
                        page = await anext(stream, None)
                    else:
                        started = loop.time()
                        try:
                            async with asyncio.timeout(budget) as deadline:
                                page = await anext(stream, None)
                        except TimeoutError:
                            if deadline.expired():
                                raise _Expired from None
                            raise
                        budget -= loop.time() - started
                    if page is None:
                        return
                    await gate.acquire()  # the caller's pace: not counted in the budget
                    arrivals.put_nowait((feed, page))
            finally:
                await _aclose(stream)

        async def feed_source(feed: _Feed) -> None:
            outcome: Exception | None = None
            try:
                async with semaphore:
                    await pull(feed)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the operation is over
                outcome = SourceUnavailable(
                    f"source {feed.name} cancelled its own request", source=feed.name
                )
            except _Expired:
                outcome = SourceTimeout(
                    f"source {feed.name} passed its {timeout}s deadline", source=feed.name
                )
            except Exception as error:  # isolate any failure of one source
                outcome = error
            arrivals.put_nowait((feed, outcome))

        def handle(feed: _Feed, message: Page | Exception | None) -> None:
            if isinstance(message, Page):
                backpressure[feed.name].release()
                feed.add_page(message.items, message.cursor)
                return
            feed.running = False
            if message is None:  # the stream ended; its last page had no cursor
                if not feed.pages:
                    feed.done = True
                return
            if self.strict:
                raise message
            errors[feed.name] = message

        async def receive() -> None:
            """Wait for one message, then take every other one already there."""
            handle(*await arrivals.get())
            drain()

        def drain() -> None:
            while not arrivals.empty():
                handle(*arrivals.get_nowait())

        def cursor_at(feed: _Feed, before: _Position) -> Callable[[], str | None]:
            def position() -> str | None:
                state: dict[str, _Position] = dict(operation.finished)
                for other in feeds:
                    state[other.name] = other.position()
                state[feed.name] = before
                if all(where == "done" for where in state.values()):
                    return None
                return self._encode(operation.fingerprint, state)

            return position

        seen: set[Any] = set()
        order = operation.order
        pick = _picker(order) if order is not None else None
        last = -1  # round-robin: index of the feed served last
        for feed in feeds:
            feed.task = asyncio.create_task(feed_source(feed), name=f"asyncrepo:{feed.name}")
        try:
            while True:
                drain()
                if pick is None:
                    ready = [f for f in feeds if f.has_item()]
                    if not ready:
                        if not any(f.running for f in feeds):
                            return
                        await receive()
                        continue
                    # The first ready feed after the one served last.
                    chosen = min(ready, key=lambda f: (f.index <= last, f.index))
                    last = chosen.index
                else:
                    # k-way merge: every live source must show its next item first.
                    if any(f.running and not f.has_item() for f in feeds):
                        await receive()
                        continue
                    ready = [f for f in feeds if f.has_item()]
                    if not ready:
                        return
                    chosen = pick(ready)
                before = chosen.position()
                item = chosen.take()
                if self.dedupe is not None:
                    key = item.url if self.dedupe == "url" else item.identifier
                    if key is not None:
                        if key in seen:
                            continue
                        seen.add(key)
                yield self._wrap(chosen.name, item), cursor_at(chosen, before)
        finally:
            tasks = [feed.task for feed in feeds if feed.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _wrap(name: str, item: Item) -> Item:
        return Item(
            f"{name}:{item.identifier}",
            item.raw,
            item.repository,
            title=item.title,
            text=item.text,
            url=item.url,
            created_at=item.created_at,
            updated_at=item.updated_at,
            author=item.author,
            kind=item.kind,
        )

    def _fingerprint(self, operation: str, query: str | None, options: dict[str, Any]) -> str:
        sources = [
            [name, repository.name, repository.scope()]
            for name, repository in sorted(self.sources.items())
        ]
        material = orjson.dumps(
            [sources, operation, query, options],
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
            default=repr,
        )
        return hashlib.sha256(material).hexdigest()[:16]

    def _encode(self, fingerprint: str, state: dict[str, Any]) -> str:
        payload = orjson.dumps({"v": 2, "fed": fingerprint, "s": state})
        return seal(payload, self.cursor_key)

    def _decode(self, cursor: str, fingerprint: str) -> dict[str, _Position]:
        sealed = open_cursor(cursor, self.cursor_key, source=self.name)
        try:
            payload = orjson.loads(sealed)
            version, found, state = payload["v"], payload["fed"], payload["s"]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidCursor("not a federated cursor", source=self.name) from exc
        if version != 2 or not isinstance(state, dict):
            raise InvalidCursor("not a federated cursor", source=self.name)
        if found != fingerprint:
            raise InvalidCursor(
                "this cursor belongs to another federation, operation, query or option set",
                source=self.name,
            )
        for where in state.values():
            if where == "done":
                continue
            if not (
                isinstance(where, list)
                and len(where) == 2
                and (where[0] is None or isinstance(where[0], str))
                and isinstance(where[1], int)
                and not isinstance(where[1], bool)
                and 0 <= where[1] <= 10**9
            ):
                raise InvalidCursor("not a federated cursor", source=self.name)
        return state


def _picker(order: str) -> Callable[[list[_Feed]], _Feed]:
    """Chooses, among feeds that show their next item, the one whose item comes first in
    ``order`` (items without the field come last; ties go to the earlier source)."""
    descending = order.startswith("-")
    name = order.lstrip("-")
    field_name = f"{name}_at" if name in ("created", "updated") else name

    def value(feed: _Feed) -> Any:
        found = getattr(feed.head(), field_name, None)
        if found is None and isinstance(feed.head().raw, dict):
            found = feed.head().raw.get(name)
        if isinstance(found, datetime):
            return found.timestamp()  # aware and naive alike
        return found

    def pick(ready: list[_Feed]) -> _Feed:
        valued = [(value(feed), feed) for feed in ready]
        present = [(v, feed) for v, feed in valued if v is not None]
        if not present:
            return ready[0]
        best_value, best = present[0]
        for v, feed in present[1:]:
            if (v > best_value) if descending else (v < best_value):
                best_value, best = v, feed
        return best

    return pick
