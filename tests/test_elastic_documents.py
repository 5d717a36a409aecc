"""elastic.documents against a real OpenSearch-compatible server (osmem-server) and the fake
Elasticsearch (tests/fakes/elastic.py: Elasticsearch's own ``_pit`` API and header)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asyncrepo import ItemNotFound, MalformedResponse, RetryPolicy
from asyncrepo.repositories.elastic.documents import Documents
from tests.fakes._common import serve
from tests.fakes.elastic import ElasticState, make_app, make_dataset
from tests.osmem_server import bulk_index, open_points_in_time, osmem_base_url

__all__ = ["osmem_base_url"]  # the session fixture, used through the backend fixture

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0, rate_limit_floor=0.01)
N = 120
START = datetime(2024, 1, 1, tzinfo=UTC)
_names = itertools.count()


def source(n: int) -> dict[str, Any]:
    """The fake's make_dataset documents, for loading into osmem."""
    animal = "cats" if n % 3 == 0 else "dogs"
    when = START + timedelta(hours=n)
    return {
        "title": f"Document {n} about {animal}",
        "body": f"A text on {animal}, number {n}.",
        "@timestamp": when.isoformat().replace("+00:00", "Z"),
        "n": n,
    }


def doc_id(n: int) -> str:
    return f"doc-{n:05d}"


@dataclass
class Backend:
    kind: str  # "osmem" or "fake"
    base: str
    index: str
    open_pits: Callable[[], Awaitable[int]]
    state: ElasticState | None = None

    def docs(self, index: str | None = None, **kwargs: Any) -> Documents:
        kwargs.setdefault("retry", FAST)
        return Documents(self.base, index or self.index, **kwargs)


MAPPINGS = {"properties": {"@timestamp": {"type": "date"}, "title": {"type": "text"}}}


async def load_osmem(base: str, index: str, n: int = N) -> None:
    await bulk_index(base, index, ((doc_id(i), source(i)) for i in range(n)), mappings=MAPPINGS)


@pytest.fixture(params=["osmem", "fake"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "osmem":
        base = request.getfixturevalue("osmem_base_url")
        index = f"docs-{next(_names)}"
        await load_osmem(base, index)

        async def osmem_pits() -> int:
            return len(await open_points_in_time(base))

        yield Backend("osmem", base, index, osmem_pits)
        return
    state = make_dataset(N)
    async with serve(make_app(state)) as base:

        async def fake_pits() -> int:
            return state.open_pits()

        yield Backend("fake", base, "docs", fake_pits, state)


ALL = {doc_id(n) for n in range(N)}


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_list_pages_lose_nothing(backend: Backend, page_size: int) -> None:
    async with backend.docs() as repo:
        pages = [
            [i.identifier for i in page] async for page in repo.list_pages(page_size=page_size)
        ]
        assert await repo.flavour() == (
            "opensearch" if backend.kind == "osmem" else "elasticsearch"
        )
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) == N
    assert set(ids) == ALL
    assert all(len(page) == page_size for page in pages[:-1])
    assert await backend.open_pits() == 0  # the walk closed its point in time
    if backend.state is not None:
        state = backend.state
        assert state.pits_opened == state.pits_closed == 1
        assert all(body["size"] == page_size for _, _, body in state.searches)
        assert all("from" not in body for _, _, body in state.searches)
        # one request per page; a short last page ends the walk without another
        assert len(state.searches) == -(-N // page_size) + (N % page_size == 0)


async def test_items_are_mapped(backend: Backend) -> None:
    async with backend.docs() as repo:
        items = {i.identifier: i async for i in repo.list()}
    item = items[doc_id(3)]
    assert item.title == "Document 3 about cats"
    assert item.text == "A text on cats, number 3."
    assert item.created_at == START + timedelta(hours=3)
    assert item.url == f"{backend.base}/{backend.index}/_doc/{doc_id(3)}"
    assert item.raw["_source"]["n"] == 3
    assert item.kind == "document"


async def test_stream_closed_early_closes_the_point_in_time(backend: Backend) -> None:
    async with backend.docs() as repo:
        stream = repo.list(page_size=10)
        first = [await anext(stream) for _ in range(3)]
        assert len(first) == 3
        assert await backend.open_pits() == 1
        await stream.aclose()
        assert await backend.open_pits() == 0


async def test_cancelled_consumer_closes_the_point_in_time(backend: Backend) -> None:
    async with backend.docs() as repo:
        started = asyncio.Event()

        async def consume() -> None:
            async with aclosing(repo.list(page_size=5)) as stream:
                async for _ in stream:
                    started.set()
                    await asyncio.Event().wait()  # stuck until cancelled

        task = asyncio.create_task(consume())
        await started.wait()
        assert await backend.open_pits() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await backend.open_pits() == 0


async def test_aclose_closes_the_points_in_time_of_abandoned_streams(backend: Backend) -> None:
    repo = backend.docs()
    stream = repo.list(page_size=5)
    await anext(stream)
    assert await backend.open_pits() == 1
    await repo.aclose()
    assert await backend.open_pits() == 0
    await stream.aclose()  # later: nothing left to do, no new session
    assert await backend.open_pits() == 0


async def test_cursor_resumes_in_a_fresh_repository(backend: Backend) -> None:
    async with backend.docs() as first:
        pages = first.list_pages(page_size=25)
        head = [await anext(pages), await anext(pages)]
        await pages.aclose()
    cursor = head[1].cursor
    assert cursor is not None
    assert await backend.open_pits() == 0  # the cursor does not need the old PIT
    async with backend.docs() as second:
        rest = [i.identifier async for page in second.list_pages(cursor=cursor) for i in page]
    ids = [i.identifier for page in head for i in page] + rest
    assert len(ids) == len(set(ids)) == N


async def test_search_is_native_with_highlights(backend: Backend) -> None:
    cats = {doc_id(n) for n in range(N) if n % 3 == 0}
    async with backend.docs() as repo:
        # osmem compares a float32 score with the search_after value as a float64 and
        # repeats the first page (see the README): one page there, several on the fake
        page_size = 500 if backend.kind == "osmem" else 7
        items = [i async for i in repo.search("cats", page_size=page_size, highlight=True)]
    assert {i.identifier for i in items} == cats
    assert len(items) == len(cats)
    assert all(i.text and "<em>cats</em>" in i.text for i in items)


async def test_search_pages_by_date_order(backend: Backend) -> None:
    async with backend.docs() as repo:
        items = [i async for i in repo.search("dogs", page_size=9, order="-created")]
    dogs = sorted((n for n in range(N) if n % 3), reverse=True)
    assert [i.identifier for i in items] == [doc_id(n) for n in dogs]


async def test_since_and_order_are_native(backend: Backend) -> None:
    since = START + timedelta(hours=100)
    async with backend.docs() as repo:
        newest = [i.identifier async for i in repo.list(since=since, order="-created", page_size=6)]
        oldest = [i.identifier async for i in repo.list(order="created", page_size=50)]
    assert newest == [doc_id(n) for n in range(N - 1, 99, -1)]
    assert oldest == [doc_id(n) for n in range(N)]


async def test_get(backend: Backend) -> None:
    async with backend.docs() as repo:
        item = await repo.get(doc_id(42))
        assert item.identifier == doc_id(42)
        assert item.title == "Document 42 about cats"
        with pytest.raises(ItemNotFound) as caught:
            await repo.get("doc-99999")
        assert caught.value.identifier == "doc-99999"


async def test_a_pattern_spans_indexes_with_qualified_ids(backend: Backend) -> None:
    prefix = f"multi{next(_names)}"
    if backend.kind == "osmem":
        await load_osmem(backend.base, f"{prefix}-a", 10)
        await load_osmem(backend.base, f"{prefix}-b", 5)
    else:
        assert backend.state is not None
        for n in range(10):
            backend.state.add(f"{prefix}-a", doc_id(n), source(n))
        for n in range(5):
            backend.state.add(f"{prefix}-b", doc_id(n), source(n))
    async with backend.docs(f"{prefix}-*") as repo:
        ids = [i.identifier async for i in repo.list(page_size=4)]
        assert sorted(ids) == sorted(
            [f"{prefix}-a/{doc_id(n)}" for n in range(10)]
            + [f"{prefix}-b/{doc_id(n)}" for n in range(5)]
        )
        item = await repo.get(f"{prefix}-b/{doc_id(4)}")
        assert item.identifier == f"{prefix}-b/{doc_id(4)}"
        with pytest.raises(ItemNotFound):
            await repo.get(f"{backend.index}/{doc_id(4)}")  # outside the pattern
        with pytest.raises(ItemNotFound):
            await repo.get(doc_id(4))  # not qualified
    assert await backend.open_pits() == 0


async def test_osmem_relevance_pages_end_in_our_exception_or_complete(
    osmem_base_url: str,
) -> None:
    # osmem-server 0.1.6 compares a float32 score with the search_after value as a float64
    # and serves the same page again: the walk must stop with our error, never loop; a
    # server that pages correctly must give every hit once.
    index = f"docs-{next(_names)}"
    await load_osmem(osmem_base_url, index)
    cats = {doc_id(n) for n in range(N) if n % 3 == 0}
    async with Documents(osmem_base_url, index, retry=FAST) as repo:
        try:
            found = [i.identifier async for i in repo.search("cats", page_size=7)]
        except MalformedResponse as exc:
            assert "did not advance" in str(exc)
        else:
            assert sorted(found) == sorted(cats)
    assert len(await open_points_in_time(osmem_base_url)) == 0


async def test_osmem_pattern_matching_nothing_lists_nothing(osmem_base_url: str) -> None:
    # osmem answers a PIT over a pattern that matches no index with a 400: the walk falls
    # back to search_after on _id, which finds nothing
    async with Documents(osmem_base_url, "nothing-here-*", retry=FAST) as repo:
        assert [i async for i in repo.list()] == []
