"""One repository over many: fan out, stream as results arrive, isolate failures.

``Federated({"jira": jira, "wiki": confluence})`` is itself a ``Repository``. Identifiers are
``"<name>:<identifier>"``; ``get`` routes to the named source. ``list``/``search`` run every
source concurrently (at most ``concurrency`` at once) and yield items as they arrive, so the
first item never waits for the slowest source. Pages interleave the sources round-robin
among those with results ready; ``order=`` instead merges the sources' natively ordered
streams (a k-way merge), and needs every source to support that order.

A source that fails or passes its deadline (``timeout=`` seconds for the whole operation) is
left out and its error kept in ``federated.errors`` and ``page.errors``; ``strict=True``
raises instead. A federated cursor records where every source stands (a failed source is
retried from where it stood). Leaving an iterator early cancels every outstanding request.
Closing the federated repository closes its sources.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from .exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    SourceTimeout,
    UnsupportedOption,
)
from .repository import Capabilities, Item, Page, Repository, _aclose

__all__ = ["Federated"]

_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass
class _Feed:
    """One source's part in a federated operation."""

    name: str
    repository: Repository
    start_cursor: str | None  # where the head page starts (None: the beginning)
    consumed: int  # items of the head page already handed out
    skip: int = 0  # on resume: items of the first page that were handed out before
    pages: deque[tuple[deque[Item], str | None]] = field(default_factory=deque)
    done: bool = False  # every item of this source has been handed out
    failed: bool = False
    task: asyncio.Task[None] | None = None

    def add_page(self, items: Sequence[Item], cursor: str | None) -> None:
        queue = deque(items)
        for _ in range(min(self.skip, len(queue))):
            queue.popleft()
        self.skip = 0
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

    def position(self) -> Any:
        return "done" if self.done else [self.start_cursor, self.consumed]


class Federated(Repository):
    """A repository that searches and lists many sources at once.

    ``sources``: a mapping of name -> repository, or a sequence (named after each
    repository's registry name, numbered when repeated). ``timeout``: per-source deadline in
    seconds for one operation. ``strict``: raise a source's error instead of reporting it.
    ``concurrency``: how many sources run at once. ``dedupe``: ``"url"`` or ``"identifier"``
    (the source's own identifier) to drop repeats across sources.
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
            if ":" in name or not name:
                raise ConfigurationError(f"source names cannot be empty or contain ':': {name!r}")
            if not isinstance(repository, Repository):
                raise ConfigurationError(f"source {name!r} is not a Repository")
        if dedupe not in (None, "url", "identifier"):
            raise ConfigurationError("dedupe is None, 'url' or 'identifier'")
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

    def list(self, **options: Any) -> AsyncIterator[Item]:
        return self._federated_items("list", None, options)

    def search(self, query: str, **options: Any) -> AsyncIterator[Item]:
        return self._federated_items("search", query, options)

    def list_pages(self, **options: Any) -> AsyncIterator[Page]:
        return self._federated_pages("list", None, options)

    def search_pages(self, query: str, **options: Any) -> AsyncIterator[Page]:
        return self._federated_pages("search", query, options)

    async def _federated_items(
        self, operation: str, query: str | None, options: dict[str, Any]
    ) -> AsyncIterator[Item]:
        merged = self._merge(operation, query, options)
        try:
            async for item, _ in merged:
                yield item
        finally:
            await _aclose(merged)

    async def _federated_pages(
        self, operation: str, query: str | None, options: dict[str, Any]
    ) -> AsyncIterator[Page]:
        page_size = options.get("page_size") or self.default_page_size
        merged = self._merge(operation, query, options)
        buffer: list[Item] = []
        produced = False
        try:
            async for item, position in merged:
                if len(buffer) == page_size:
                    yield Page(buffer, position(), errors=dict(self.errors))
                    produced = True
                    buffer = []
                buffer.append(item)
        finally:
            await _aclose(merged)
        if buffer or not produced:
            yield Page(buffer, None, errors=dict(self.errors))

    def _check(self, operation: str, query: str | None, options: dict[str, Any]) -> None:
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

    async def _merge(
        self, operation: str, query: str | None, options: dict[str, Any]
    ) -> AsyncIterator[tuple[Item, Callable[[], str | None]]]:
        """Items, each with a function giving the cursor that resumes right after it
        (computed only when a page needs it)."""
        options = dict(options)
        cursor = options.pop("cursor", None)
        self._check(operation, query, options)
        fingerprint = self._fingerprint(operation, query, options)
        positions = self._decode(cursor, fingerprint) if cursor else {}
        feeds = []
        for name, repository in self.sources.items():
            where = positions.get(name, [None, 0])
            if where == "done":
                continue
            feeds.append(_Feed(name, repository, where[0], where[1], skip=where[1]))
        self.errors = {}
        arrivals: asyncio.Queue[tuple[_Feed, Any]] = asyncio.Queue()
        semaphore = asyncio.Semaphore(self.concurrency)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout if self.timeout is not None else None
        page_size = options.get("page_size") or self.default_page_size
        source_options = {k: v for k, v in options.items() if k != "page_size"}

        async def feed_source(feed: _Feed) -> None:
            backpressure = asyncio.Semaphore(2)  # at most two unread pages per source
            try:
                async with semaphore, asyncio.timeout_at(deadline):
                    repository = feed.repository
                    if operation == "search":
                        assert query is not None
                        stream = repository.search_pages(
                            query,
                            page_size=page_size,
                            cursor=feed.start_cursor,
                            **source_options,
                        )
                    else:
                        stream = repository.list_pages(
                            page_size=page_size, cursor=feed.start_cursor, **source_options
                        )
                    try:
                        async for page in stream:
                            await backpressure.acquire()
                            await arrivals.put((feed, (page, backpressure)))
                    finally:
                        await _aclose(stream)
            except TimeoutError:
                error = SourceTimeout(
                    f"source {feed.name} passed its {self.timeout}s deadline", source=feed.name
                )
                await arrivals.put((feed, error))
            except Exception as error:  # isolate any failure of one source
                await arrivals.put((feed, error))
            else:
                await arrivals.put((feed, None))

        for feed in feeds:
            feed.task = asyncio.create_task(feed_source(feed), name=f"asyncrepo:{feed.name}")

        def position() -> str | None:
            state = {feed.name: feed.position() for feed in feeds}
            for name, where in positions.items():
                state.setdefault(name, where)
            if all(where == "done" for where in state.values()):
                return None
            return self._encode(fingerprint, state)

        seen: set[Any] = set()
        order = options.get("order")
        pending = {feed.name for feed in feeds}  # feeds whose task has not ended

        async def receive() -> None:
            feed, message = await arrivals.get()
            if message is None:  # the source's stream ended; its last page had no cursor
                pending.discard(feed.name)
                if not feed.pages:
                    feed.done = True
                return
            if isinstance(message, Exception):
                pending.discard(feed.name)
                feed.failed = True
                if self.strict:
                    raise message
                self.errors[feed.name] = message
                return
            page, backpressure = message
            backpressure.release()
            feed.add_page(page.items, page.cursor)

        def ready_feeds() -> list[_Feed]:
            return [f for f in feeds if f.has_item()]

        try:
            rotation = 0
            while True:
                ready = ready_feeds()
                if order is None:
                    if not ready:
                        if not pending:
                            return
                        await receive()
                        continue
                    feed = ready[rotation % len(ready)]
                    rotation += 1
                else:
                    # k-way merge: wait until every live source shows its next item.
                    waiting = [f for f in feeds if f.name in pending and not f.has_item()]
                    if waiting:
                        await receive()
                        continue
                    if not ready:
                        return
                    feed = min(ready, key=_order_key(order))
                item = feed.take()
                if self.dedupe is not None:
                    key = item.url if self.dedupe == "url" else item.identifier
                    if key is not None:
                        if key in seen:
                            continue
                        seen.add(key)
                yield self._wrap(feed.name, item), position
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
        material = orjson.dumps(
            [
                sorted(self.sources),
                operation,
                query,
                {k: v for k, v in options.items() if k != "page_size"},
            ],
            option=orjson.OPT_SORT_KEYS,
            default=str,
        )
        return hashlib.sha256(material).hexdigest()[:16]

    @staticmethod
    def _encode(fingerprint: str, state: dict[str, Any]) -> str:
        payload = orjson.dumps({"v": 1, "fed": fingerprint, "s": state})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def _decode(self, cursor: str, fingerprint: str) -> dict[str, Any]:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            found, state = payload["fed"], payload["s"]
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidCursor("not a federated cursor", source=self.name) from exc
        if found != fingerprint or not isinstance(state, dict):
            raise InvalidCursor(
                "this cursor belongs to another federation, operation or query",
                source=self.name,
            )
        return state


def _order_key(order: str) -> Callable[[_Feed], Any]:
    descending = order.startswith("-")
    name = order.lstrip("-")
    field_name = f"{name}_at" if name in ("created", "updated") else name

    def key(feed: _Feed) -> Any:
        value = getattr(feed.head(), field_name, None)
        if isinstance(value, datetime):
            stamp = value.timestamp()
            return (0, -stamp if descending else stamp)
        if value is None:
            return (1, 0)
        return (0, value)

    return key
