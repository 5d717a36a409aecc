"""Federated search and listing over several sources (``asyncrepo.federation``).

The sources are small in-test repositories (in memory, with a per-page latency or a gate,
optional failure after N pages) and CSV files served over HTTP by a local aiohttp server.
Assertions are on order of arrival and counts, never on wall-clock time: where an order
must be deterministic, a source waits on an ``asyncio.Event`` the test controls.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from typer.testing import CliRunner

from asyncrepo.cli import app
from asyncrepo.exceptions import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    SourceTimeout,
    SourceUnavailable,
    UnsupportedOption,
)
from asyncrepo.federation import Federated
from asyncrepo.http import RetryPolicy
from asyncrepo.repositories.file.csv_rows import CSVRows
from asyncrepo.repository import Batch, Capabilities, Item, Page, PageRequest, Repository
from tests.fakes._common import serve

# An unawaited coroutine is a bug here, not a warning.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

BASE = datetime(2024, 1, 1, tzinfo=UTC)


# -- test sources ---------------------------------------------------------------------------


class Tracker:
    """Counts fetches in flight across sources (for the concurrency bound)."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.peak_sources = 0
        self.started: list[str] = []
        self._changed = asyncio.Event()

    def enter(self, label: str) -> None:
        self.active[label] = self.active.get(label, 0) + 1
        self.started.append(label)
        self._changed.set()
        self.peak_sources = max(self.peak_sources, sum(1 for n in self.active.values() if n))

    def leave(self, label: str) -> None:
        self.active[label] -= 1

    async def wait_started(self, count: int) -> None:
        while len(self.started) < count:
            self._changed.clear()
            await self._changed.wait()


class Memory(Repository):
    """``count`` items in vendor pages of ``vendor_page``; ``latency`` seconds per page, or
    wait for ``gate`` before the first page (``gate_every``: before every page); raise
    ``SourceUnavailable`` when asked for page number ``fail_at`` (0-based)."""

    name = "test.memory"
    capabilities: ClassVar[Capabilities] = Capabilities(since="client")

    def __init__(
        self,
        label: str,
        count: int,
        *,
        vendor_page: int = 3,
        latency: float = 0.0,
        gate: asyncio.Event | None = None,
        gate_every: bool = False,
        fail_at: int | None = None,
        tracker: Tracker | None = None,
        step: timedelta = timedelta(hours=1),
        offset: timedelta = timedelta(0),
        url_of: Any = None,
        ident_of: Any = None,
    ) -> None:
        self.label = label
        self.vendor_page = vendor_page
        self.latency = latency
        self.gate = gate
        self.gate_every = gate_every
        self.fail_at = fail_at
        self.tracker = tracker
        self.fetches = 0
        self.cancelled = 0
        self.closed = 0
        self.items = [
            Item(
                ident_of(i) if ident_of else f"{label}-{i}",
                {"label": label, "n": i, "text": f"item {i} of {label}"},
                self,
                title=f"{label} {i}",
                url=url_of(i) if url_of else f"https://example.test/{label}/{i}",
                updated_at=BASE + offset + step * i,
            )
            for i in range(count)
        ]

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        offset = int(state or 0)
        page_number = offset // self.vendor_page
        if self.tracker is not None:
            self.tracker.enter(self.label)
        try:
            self.fetches += 1
            if self.gate is not None and (page_number == 0 or self.gate_every):
                await self.gate.wait()
            if self.latency:
                await asyncio.sleep(self.latency)
            else:
                await asyncio.sleep(0)
            if self.fail_at is not None and page_number >= self.fail_at:
                raise SourceUnavailable(f"{self.label} is down", source=self.name)
            items = self.data(request)[offset : offset + self.vendor_page]
            following = offset + self.vendor_page
            return Batch(items, following if following < len(self.items) else None)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            if self.tracker is not None:
                self.tracker.leave(self.label)

    def data(self, request: PageRequest) -> list[Item]:
        return self.items

    async def get(self, identifier: str) -> Item:
        for item in self.items:
            if item.identifier == identifier:
                return item
        raise self.not_found(identifier)

    async def aclose(self) -> None:
        await super().aclose()
        self.closed += 1


class Ordered(Memory):
    """A source that orders by ``updated`` natively (either way)."""

    name = "test.ordered"
    capabilities: ClassVar[Capabilities] = Capabilities(
        since="client", orders=frozenset({"-updated", "updated"})
    )

    def data(self, request: PageRequest) -> list[Item]:
        stamp = lambda item: item.updated_at  # noqa: E731
        return sorted(self.items, key=stamp, reverse=request.order == "-updated")


class NoSince(Memory):
    name = "test.nosince"
    capabilities: ClassVar[Capabilities] = Capabilities()


def ids(items: list[Item]) -> list[str]:
    return [item.identifier for item in items]


def expected(sources: dict[str, Memory]) -> list[str]:
    return sorted(f"{name}:{item.identifier}" for name, s in sources.items() for item in s.items)


async def collect(stream: AsyncIterator[Item]) -> list[Item]:
    return [item async for item in stream]


async def collect_pages(stream: AsyncIterator[Page]) -> list[Page]:
    return [page async for page in stream]


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current}


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[None]:
    """Every test ends with no task left behind and no "Task was destroyed" report."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    try:
        yield
        await asyncio.sleep(0)
        gc.collect()
        assert not [t for t in other_tasks() if not t.done()], other_tasks()
        assert not reports, reports
    finally:
        loop.set_exception_handler(previous)


# -- completeness, arrival, fairness ----------------------------------------------------------


async def test_list_yields_every_item_once_with_prefixed_identifiers() -> None:
    sources = {
        "a": Memory("a", 10, latency=0.01),
        "b": Memory("b", 7, vendor_page=2),
        "c": Memory("c", 0),
        "d": Memory("d", 1, latency=0.02),
    }
    federated = Federated(sources)
    items = await collect(federated.list())
    assert sorted(ids(items)) == expected(sources)
    assert len(items) == 18
    assert federated.errors == {}
    # The source's own items are untouched; the federated copies keep their fields.
    by_id = {item.identifier: item for item in items}
    assert by_id["b:b-3"].title == "b 3"
    assert by_id["b:b-3"].url == "https://example.test/b/3"
    assert by_id["b:b-3"].repository is sources["b"]
    assert sources["b"].items[3].identifier == "b-3"
    # Within one source, items keep the source's order.
    for name in sources:
        mine = [i for i in ids(items) if i.startswith(f"{name}:")]
        assert mine == [f"{name}:{item.identifier}" for item in sources[name].items]


async def test_search_fans_out_and_matches_in_every_source() -> None:
    sources = {"a": Memory("a", 12), "b": Memory("b", 12, latency=0.01)}
    federated = Federated(sources)
    items = await collect(federated.search("item 1"))  # naive search: "item 1", "item 10"...
    assert sorted(ids(items)) == sorted(f"{s}:{s}-{n}" for s in ("a", "b") for n in (1, 10, 11))


async def test_a_sequence_of_sources_is_named_automatically() -> None:
    first, second, third = Memory("x", 2), Memory("y", 1), NoSince("z", 1)
    federated = Federated([first, second, third])
    assert list(federated.sources) == ["test.memory", "test.memory2", "test.nosince"]
    items = await collect(federated.list())
    assert sorted(ids(items)) == [
        "test.memory2:y-0",
        "test.memory:x-0",
        "test.memory:x-1",
        "test.nosince:z-0",
    ]


async def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        Federated({})
    with pytest.raises(ConfigurationError):
        Federated({"a:b": Memory("a", 1)})
    # Deliberately wrong types below: the runtime checks must refuse them.
    with pytest.raises(ConfigurationError):
        Federated({"a": object()})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError):
        Federated({"a": Memory("a", 1)}, dedupe="title")  # type: ignore[arg-type]


async def test_fastest_source_arrives_first_and_does_not_wait_for_the_slowest() -> None:
    slow_gate, medium_gate = asyncio.Event(), asyncio.Event()
    sources = {
        "slow": Memory("slow", 4, gate=slow_gate),
        "medium": Memory("medium", 4, gate=medium_gate),
        "fast": Memory("fast", 4),
    }
    federated = Federated(sources)
    stream = federated.list()
    seen: list[str] = []
    try:
        async for item in stream:
            seen.append(item.identifier)
            if len(seen) == 1:
                # The first item came while the slower sources had produced nothing.
                assert item.identifier == "fast:fast-0"
                medium_gate.set()
            if item.identifier.startswith("medium:") and not slow_gate.is_set():
                slow_gate.set()
    finally:
        await stream.aclose()
    assert sorted(seen) == expected(sources)
    first = {name: min(seen.index(i) for i in seen if i.startswith(name)) for name in sources}
    assert first["fast"] < first["medium"] < first["slow"]


async def test_search_runs_sources_concurrently() -> None:
    # The whole search takes as long as the slowest source, not the sum: every source is in
    # flight at the same time (asserted on the count, not on the clock).
    tracker = Tracker()
    sources = {n: Memory(n, 3, latency=0.02, tracker=tracker) for n in ("a", "b", "c")}
    items = await collect(Federated(sources).search("item"))
    assert len(items) == 9
    assert tracker.peak_sources == 3


async def test_concurrency_bound_runs_sources_one_at_a_time() -> None:
    tracker = Tracker()
    sources = {n: Memory(n, 5, vendor_page=2, tracker=tracker) for n in ("a", "b", "c")}
    items = await collect(Federated(sources, concurrency=1).list())
    assert tracker.peak_sources == 1
    # One source at a time: each source's items come in one run.
    labels = [item.identifier.split(":")[0] for item in items]
    assert labels == ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    assert tracker.started == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


async def test_concurrency_bound_two() -> None:
    tracker = Tracker()
    sources = {n: Memory(n, 4, latency=0.01, tracker=tracker) for n in ("a", "b", "c", "d")}
    items = await collect(Federated(sources, concurrency=2).list())
    assert len(items) == 16
    assert tracker.peak_sources == 2


async def start_together(
    stream: AsyncIterator[Any], gate: asyncio.Event, tracker: Tracker, count: int
) -> asyncio.Future[Any]:
    """Ask for the first result; open the gate once ``count`` sources wait at it, so that
    they all answer together."""
    first = asyncio.ensure_future(anext(stream))
    await tracker.wait_started(count)
    gate.set()
    return first


async def test_pages_interleave_sources_round_robin() -> None:
    gate, tracker = asyncio.Event(), Tracker()
    sources = {
        "a": Memory("a", 6, vendor_page=6, gate=gate, tracker=tracker),
        "b": Memory("b", 6, vendor_page=6, gate=gate, tracker=tracker),
        "c": Memory("c", 3, gate=gate, tracker=tracker),
    }
    federated = Federated(sources)
    stream = federated.list_pages(page_size=6)
    first = await start_together(stream, gate, tracker, 3)
    pages = [await first] + await collect_pages(stream)
    assert [len(page) for page in pages] == [6, 6, 3]
    assert ids(pages[0].items) == ["a:a-0", "b:b-0", "c:c-0", "a:a-1", "b:b-1", "c:c-1"]
    assert ids(pages[1].items) == ["a:a-2", "b:b-2", "c:c-2", "a:a-3", "b:b-3", "a:a-4"]
    assert ids(pages[2].items) == ["b:b-4", "a:a-5", "b:b-5"]
    assert [page.cursor is None for page in pages] == [False, False, True]
    assert all(page.errors == {} for page in pages)


async def test_round_robin_stays_fair_when_a_source_runs_out() -> None:
    # Once "b" has nothing more, "a" and "c" alternate: no source is served twice in a row.
    gate, tracker = asyncio.Event(), Tracker()
    sources = {
        "a": Memory("a", 4, vendor_page=4, gate=gate, tracker=tracker),
        "b": Memory("b", 1, gate=gate, tracker=tracker),
        "c": Memory("c", 4, vendor_page=4, gate=gate, tracker=tracker),
    }
    stream = Federated(sources).list()
    first = await start_together(stream, gate, tracker, 3)
    seen = [(await first).identifier, *ids(await collect(stream))]
    assert seen == ["a:a-0", "b:b-0", "c:c-0", "a:a-1", "c:c-1", "a:a-2", "c:c-2", "a:a-3", "c:c-3"]


async def test_empty_federation_result_is_one_empty_page() -> None:
    federated = Federated({"a": Memory("a", 0), "b": Memory("b", 0)})
    pages = await collect_pages(federated.list_pages(page_size=5))
    assert [(len(page), page.cursor) for page in pages] == [(0, None)]


# -- cursors ----------------------------------------------------------------------------------


def fresh_sources() -> dict[str, Memory]:
    # Vendor pages of 3 and 4: federated page boundaries fall inside source pages.
    return {
        "a": Memory("a", 10, vendor_page=3),
        "b": Memory("b", 25, vendor_page=4, latency=0.001),
        "c": Memory("c", 1),
        "d": Memory("d", 0),
        "e": Memory("e", 8, vendor_page=8),
    }


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_cursor_resumes_every_source_in_a_fresh_federation(page_size: int) -> None:
    everything = expected(fresh_sources())
    seen: list[str] = []
    cursor: str | None = None
    rounds = 0
    while True:
        rounds += 1
        federated = Federated(fresh_sources())  # a new process, as it were
        stream = federated.list_pages(page_size=page_size, cursor=cursor)
        try:
            page = await anext(stream)
        finally:
            await stream.aclose()
        assert len(page) == min(page_size, len(everything) - len(seen))
        seen.extend(ids(page.items))
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == everything
    assert len(seen) == len(set(seen)) == 44
    assert rounds == -(-44 // page_size)


async def test_cursor_resumes_with_another_page_size() -> None:
    everything = expected(fresh_sources())
    seen: list[str] = []
    cursor: str | None = None
    sizes = iter([9, 2, 5, 1, 100])
    while True:
        stream = Federated(fresh_sources()).list_pages(page_size=next(sizes), cursor=cursor)
        try:
            page = await anext(stream)
        finally:
            await stream.aclose()
        seen.extend(ids(page.items))
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == everything
    assert len(seen) == len(set(seen))


async def test_search_cursor_resumes_and_live_next_page_continues() -> None:
    def sources() -> dict[str, Memory]:
        return {"a": Memory("a", 20), "b": Memory("b", 20, vendor_page=7)}

    federated = Federated(sources())
    stream = federated.search_pages("item", page_size=6)
    pages = [await anext(stream)]
    while (following := await pages[-1].next_page()) is not None:
        pages.append(following)
    await stream.aclose()
    assert [len(p) for p in pages] == [6] * 6 + [4]
    live = [i for p in pages for i in ids(p.items)]
    assert sorted(live) == expected(sources())
    # The third page's cursor, in a fresh federation, gives the rest: what pages 4-7 had.
    # (Which items share a page depends on arrival; the rest, as a whole, does not.)
    resumed = Federated(sources()).search_pages("item", page_size=6, cursor=pages[2].cursor)
    rest = [i for p in await collect_pages(resumed) for i in ids(p.items)]
    assert sorted(rest) == sorted(i for p in pages[3:] for i in ids(p.items))
    # An older page's next_page() resumes from its cursor (the live stream has moved on).
    again = await pages[1].next_page()
    assert again is not None and len(again) == 6
    assert set(ids(again.items)) <= {i for p in pages[2:] for i in ids(p.items)}


async def test_cursor_is_checked() -> None:
    federated = Federated({"a": Memory("a", 5), "b": Memory("b", 5)})
    stream = federated.list_pages(page_size=2)
    page = await anext(stream)
    await stream.aclose()
    assert page.cursor is not None
    with pytest.raises(InvalidCursor):
        await collect(federated.search("item", cursor=page.cursor))  # another operation
    with pytest.raises(InvalidCursor):
        other = Federated({"a": Memory("a", 5), "z": Memory("z", 5)})
        await collect(other.list(cursor=page.cursor))  # another federation
    for junk in ("nonsense", "", "e30", "W10"):  # not base64 JSON, {}, []
        with pytest.raises(InvalidCursor):
            await collect(federated.list(cursor=junk or "=="))


# -- errors -----------------------------------------------------------------------------------


def failing_sources(healthy: bool = False) -> dict[str, Memory]:
    return {
        "good": Memory("good", 9, latency=0.005),
        # Vendor pages of 5: pages 0 and 1 arrive (each handed out as soon as it is full),
        # page 2 fails.
        "bad": Memory("bad", 15, vendor_page=5, fail_at=None if healthy else 2),
        "other": Memory("other", 4),
    }


async def test_a_failing_source_is_reported_and_the_others_complete() -> None:
    federated = Federated(failing_sources())
    pages = await collect_pages(federated.list_pages(page_size=5))
    items = [i for p in pages for i in ids(p.items)]
    assert sorted(items) == sorted(
        [f"good:good-{n}" for n in range(9)]
        + [f"other:other-{n}" for n in range(4)]
        + [f"bad:bad-{n}" for n in range(10)]
    )
    assert set(federated.errors) == {"bad"}
    assert isinstance(federated.errors["bad"], SourceUnavailable)
    assert "bad is down" in str(federated.errors["bad"])
    assert set(pages[-1].errors) == {"bad"}
    assert pages[-1].errors["bad"] is federated.errors["bad"]
    assert pages[-1].cursor is None
    # A new operation starts with a clean slate.
    await collect(federated.search("item 1"))
    assert federated.errors == {"bad": federated.errors["bad"]}
    ok = Federated({"good": Memory("good", 2)})
    await collect(ok.list())
    assert ok.errors == {}


async def test_a_cursor_retries_a_failed_source_where_it_stood() -> None:
    pages = await collect_pages(Federated(failing_sources()).list_pages(page_size=5))
    resume_from = pages[-2]
    before = [i for p in pages[: pages.index(resume_from) + 1] for i in ids(p.items)]
    # Later, the source is back.
    again = Federated(failing_sources(healthy=True))
    after = [
        i
        for p in await collect_pages(again.list_pages(cursor=resume_from.cursor))
        for i in ids(p.items)
    ]
    assert sorted(before + after) == expected(failing_sources(healthy=True))
    assert again.errors == {}


async def test_errors_show_on_the_pages_that_follow_the_failure() -> None:
    gate = asyncio.Event()
    sources = {
        "bad": Memory("bad", 1, fail_at=0),
        "slow": Memory("slow", 6, vendor_page=1, gate=gate, gate_every=True),
    }
    federated = Federated(sources)
    stream = federated.list_pages(page_size=2)
    gate.set()
    pages = await collect_pages(stream)
    assert [len(p) for p in pages] == [2, 2, 2]
    assert all(set(p.errors) == {"bad"} for p in pages)


async def test_errors_are_kept_per_operation() -> None:
    # Two operations on one federation at once: each page reports its own operation's errors.
    federated = Federated({"a": Memory("a", 3), "b": Memory("b", 3, fail_at=0)})
    listing = federated.list_pages(page_size=10)
    first = await anext(listing)
    assert set(first.errors) == {"b"}
    search = federated.search_pages("item 1", page_size=10)
    hit = await anext(search)
    assert ids(hit.items) == ["a:a-1"]
    await listing.aclose()
    await search.aclose()


async def test_timeout_on_a_hanging_source_is_reported() -> None:
    never = asyncio.Event()
    sources = {"hang": Memory("hang", 3, gate=never), "ok": Memory("ok", 5)}
    federated = Federated(sources, timeout=0.2)
    items = await collect(federated.list())
    assert sorted(ids(items)) == [f"ok:ok-{n}" for n in range(5)]
    assert set(federated.errors) == {"hang"}
    error = federated.errors["hang"]
    assert isinstance(error, SourceTimeout)
    assert error.source == "hang"
    assert sources["hang"].cancelled == 1  # its request was cancelled, not left running


async def test_timeout_does_not_count_the_time_the_consumer_takes() -> None:
    # A source that answers at once must not pass its deadline because the caller was slow
    # to ask for the next page.
    federated = Federated({"a": Memory("a", 40, vendor_page=2)}, timeout=0.05)
    pages = federated.list_pages(page_size=2)
    first = await anext(pages)
    await asyncio.sleep(0.15)  # the caller thinks for longer than the deadline
    rest = [p async for p in pages]
    assert len(first) + sum(len(p) for p in rest) == 40
    assert federated.errors == {}


async def test_strict_raises_the_source_error_and_cancels_the_rest() -> None:
    never = asyncio.Event()
    sources = {
        "bad": Memory("bad", 3, fail_at=0),
        "hang": Memory("hang", 3, gate=never),
        "ok": Memory("ok", 2),
    }
    federated = Federated(sources, strict=True)
    with pytest.raises(SourceUnavailable, match="bad is down"):
        await collect(federated.list())
    assert sources["hang"].cancelled == 1
    assert not [t for t in other_tasks() if not t.done()]


async def test_strict_raises_timeouts_too() -> None:
    never = asyncio.Event()
    federated = Federated({"hang": Memory("hang", 3, gate=never)}, strict=True, timeout=0.05)
    with pytest.raises(SourceTimeout):
        await collect(federated.search("item"))


async def test_a_source_cancelling_itself_is_an_error_not_a_hang() -> None:
    class SelfCancelling(Memory):
        async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
            raise asyncio.CancelledError  # e.g. a library cancelling its own future

    federated = Federated({"x": SelfCancelling("x", 2), "ok": Memory("ok", 2)})
    items = await asyncio.wait_for(collect(federated.list()), 5)
    assert ids(items) == ["ok:ok-0", "ok:ok-1"]
    assert set(federated.errors) == {"x"}


# -- cancellation -----------------------------------------------------------------------------


async def test_leaving_early_cancels_outstanding_requests() -> None:
    never = asyncio.Event()
    sources = {"blocked": Memory("blocked", 3, gate=never), "fast": Memory("fast", 3000)}
    federated = Federated(sources)
    stream = federated.list()
    first = await anext(stream)
    assert first.identifier == "fast:fast-0"
    assert other_tasks()  # the sources are running
    await stream.aclose()
    assert sources["blocked"].cancelled == 1
    assert other_tasks() == set()
    # The fast source was not read to the end.
    assert sources["fast"].fetches < 1000


async def test_break_out_of_pages_cancels_too() -> None:
    never = asyncio.Event()
    sources = {"blocked": Memory("blocked", 3, gate=never), "fast": Memory("fast", 30)}
    stream = Federated(sources).list_pages(page_size=4)
    async for page in stream:
        assert len(page) == 4
        break
    await stream.aclose()
    assert sources["blocked"].cancelled == 1
    assert other_tasks() == set()


async def test_cancelling_the_consumer_task_cancels_the_sources() -> None:
    never = asyncio.Event()
    sources = {"blocked": Memory("blocked", 3, gate=never), "also": Memory("also", 3, gate=never)}
    federated = Federated(sources)
    started = asyncio.Event()

    async def consume() -> None:
        stream = federated.list()
        try:
            started.set()
            async for _ in stream:
                pass
        finally:
            await stream.aclose()

    task = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sources["blocked"].cancelled == 1
    assert sources["also"].cancelled == 1
    assert other_tasks() == set()


async def test_aclose_closes_every_source() -> None:
    sources = {"a": Memory("a", 1), "b": Memory("b", 1)}
    async with Federated(sources) as federated:
        await collect(federated.list())
    assert [s.closed for s in sources.values()] == [1, 1]


# -- order, since, dedupe -------------------------------------------------------------------


def ordered_sources(
    latencies: tuple[float, float, float] = (0.003, 0.0, 0.001),
) -> dict[str, Memory]:
    # Interleaved timestamps: x at 0h, 3h, 6h...; y at 1h, 4h...; z at 2h, 5h... (plus ties).
    step = timedelta(hours=3)
    return {
        "x": Ordered("x", 9, step=step, latency=latencies[0], vendor_page=2),
        "y": Ordered("y", 5, step=step, offset=timedelta(hours=1), latency=latencies[1]),
        "z": Ordered("z", 7, step=step, offset=timedelta(hours=2), latency=latencies[2]),
        "tie": Ordered("tie", 2, step=step, latency=latencies[1], vendor_page=1),
    }


@pytest.mark.parametrize("order", ["-updated", "updated"])
async def test_order_merges_sources_into_one_sorted_stream(order: str) -> None:
    sources = ordered_sources()
    federated = Federated(sources)
    assert federated.capabilities.orders == frozenset({"-updated", "updated"})
    items = await collect(federated.list(order=order))
    assert sorted(ids(items)) == expected(sources)
    stamps = [item.updated_at for item in items if item.updated_at is not None]
    assert len(stamps) == len(items)
    assert stamps == sorted(stamps, reverse=order == "-updated")


async def test_order_merge_pages_and_cursor() -> None:
    seen: list[Item] = []
    cursor: str | None = None
    while True:
        federated = Federated(ordered_sources())
        stream = federated.search_pages("item", order="-updated", page_size=4, cursor=cursor)
        page = await anext(stream)
        await stream.aclose()
        seen.extend(page.items)
        if (cursor := page.cursor) is None:
            break
    assert sorted(ids(seen)) == expected(ordered_sources())
    stamps = [item.updated_at for item in seen if item.updated_at is not None]
    assert len(stamps) == len(seen)
    assert stamps == sorted(stamps, reverse=True)


async def test_order_waits_for_the_slow_source_before_choosing() -> None:
    gate = asyncio.Event()
    sources = ordered_sources()
    sources["x"].gate = gate  # x has the newest item; nothing may come before it
    stream = Federated(sources).list(order="-updated")
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.02)
    assert not task.done()
    gate.set()
    first = await task
    assert first.identifier == "x:x-8"
    await stream.aclose()


async def test_order_unsupported_by_a_source_names_it() -> None:
    sources: dict[str, Memory] = {**ordered_sources(), "plain": Memory("plain", 3)}
    federated = Federated(sources)
    assert federated.capabilities.orders == frozenset()
    with pytest.raises(UnsupportedOption, match="plain") as caught:
        await collect(federated.list(order="-updated"))
    assert "x" not in str(caught.value).split("cannot")[-1]
    with pytest.raises(UnsupportedOption, match="plain"):
        await collect_pages(federated.search_pages("item", order="updated"))
    with pytest.raises(UnsupportedOption):
        await collect(Federated(ordered_sources()).list(order="-created"))


async def test_since_is_passed_to_every_source() -> None:
    sources = {"a": Memory("a", 10), "b": Memory("b", 4, step=timedelta(hours=2))}
    federated = Federated(sources)
    since = BASE + timedelta(hours=6)
    items = await collect(federated.list(since=since))
    assert sorted(ids(items)) == sorted(
        [f"a:a-{n}" for n in range(6, 10)] + ["b:b-3"]  # b: 0h, 2h, 4h, 6h
    )
    with pytest.raises(InvalidQuery):
        await collect(federated.list(since=datetime(2024, 1, 1)))  # naive datetime


async def test_since_unsupported_by_a_source_names_it() -> None:
    federated = Federated({"a": Memory("a", 3), "nodates": NoSince("n", 3)})
    assert federated.capabilities.since is None
    with pytest.raises(UnsupportedOption, match="nodates"):
        await collect(federated.search("item", since=BASE))
    # Without since= the same federation works.
    assert len(await collect(federated.list())) == 6


async def test_bad_arguments_raise_instead_of_failing_every_source() -> None:
    federated = Federated({"a": Memory("a", 3), "b": Memory("b", 3)})
    with pytest.raises(InvalidQuery):
        await collect(federated.search("  "))
    with pytest.raises(InvalidQuery):
        await collect_pages(federated.list_pages(page_size=0))
    with pytest.raises(UnsupportedOption):
        await collect(federated.list(colour="red"))
    # Checked at the call, before any iteration, as for any repository.
    with pytest.raises(UnsupportedOption):
        federated.search_pages("item", order="-updated")
    with pytest.raises(InvalidQuery):
        federated.list(page_size=-1)
    with pytest.raises(InvalidCursor):
        federated.list_pages(cursor="garbage")


async def test_a_federation_of_federations() -> None:
    inner = Federated({"a": Memory("a", 4), "b": Memory("b", 3)})
    outer = Federated({"in": inner, "c": Memory("c", 2)})
    items = await collect(outer.list())
    assert sorted(ids(items)) == sorted(
        [f"in:a:a-{n}" for n in range(4)] + [f"in:b:b-{n}" for n in range(3)] + ["c:c-0", "c:c-1"]
    )
    assert (await outer.get("in:b:b-2")).identifier == "in:b:b-2"
    seen: list[str] = []
    cursor: str | None = None
    while True:
        fresh = Federated(
            {"in": Federated({"a": Memory("a", 4), "b": Memory("b", 3)}), "c": Memory("c", 2)}
        )
        stream = fresh.list_pages(page_size=2, cursor=cursor)
        page = await anext(stream)
        await stream.aclose()
        seen.extend(ids(page.items))
        if (cursor := page.cursor) is None:
            break
    assert sorted(seen) == sorted(ids(items))


async def test_dedupe_by_url() -> None:
    shared = lambda i: f"https://example.test/shared/{i % 4}"  # noqa: E731
    sources = {
        "a": Memory("a", 6, url_of=shared),  # urls 0 1 2 3 0 1
        "b": Memory("b", 3, url_of=shared, latency=0.01),  # urls 0 1 2
        "c": Memory("c", 2, url_of=lambda i: None),  # no url: never dropped
    }
    federated = Federated(sources, dedupe="url")
    items = await collect(federated.list())
    urls = [item.url for item in items if item.url is not None]
    assert sorted(urls) == [f"https://example.test/shared/{n}" for n in range(4)]
    assert len(items) == 6
    assert {"c:c-0", "c:c-1"} <= set(ids(items))
    # The first arrival wins: a's items came before the slower b's.
    assert not any(i.startswith("b:") for i in ids(items))
    # Without dedupe, everything.
    assert len(await collect(Federated(sources).list())) == 11


async def test_dedupe_by_identifier() -> None:
    same = lambda i: f"doc-{i}"  # noqa: E731
    sources = {
        "a": Memory("a", 3, ident_of=same),
        "b": Memory("b", 5, ident_of=same, latency=0.01),
    }
    items = await collect(Federated(sources, dedupe="identifier").list())
    assert sorted(ids(items)) == ["a:doc-0", "a:doc-1", "a:doc-2", "b:doc-3", "b:doc-4"]
    pages = await collect_pages(Federated(sources, dedupe="identifier").list_pages(page_size=2))
    assert [len(p) for p in pages] == [2, 2, 1]


# -- get --------------------------------------------------------------------------------------


async def test_get_routes_to_the_named_source() -> None:
    sources = {"a": Memory("a", 3), "b": Memory("b", 3)}
    federated = Federated(sources)
    item = await federated.get("b:b-2")
    assert item.identifier == "b:b-2"
    assert item.title == "b 2"
    assert item.repository is sources["b"]
    assert (await federated.get("a:a-0")).identifier == "a:a-0"
    for missing in ("zz:a-1", "a-1", "", "b:a-1"):
        with pytest.raises(ItemNotFound):
            await federated.get(missing)
    with pytest.raises(ItemNotFound, match="a, b"):
        await federated.get("nope:1")


async def test_identifiers_with_colons_round_trip() -> None:
    sources = {"a": Memory("a", 2, ident_of=lambda i: f"urn:x:{i}")}
    federated = Federated(sources)
    items = await collect(federated.list())
    assert ids(items) == ["a:urn:x:0", "a:urn:x:1"]
    assert (await federated.get(items[1].identifier)).identifier == "a:urn:x:1"


# -- HTTP sources -----------------------------------------------------------------------------


def csv_text(label: str, rows: int) -> str:
    lines = ["id,title"] + [f"{label}{n},{label} row {n}" for n in range(rows)]
    return "\n".join(lines) + "\n"


def csv_app(gates: dict[str, asyncio.Event]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        label = request.match_info["label"]
        if label == "missing":
            return web.Response(status=404, text="no such file")
        if label in gates:
            await gates[label].wait()
        return web.Response(text=csv_text(label, 30), content_type="text/csv")

    app = web.Application()
    app.router.add_get("/{label}.csv", handler)
    return app


def http_csv(base: str, label: str) -> CSVRows:
    return CSVRows(f"{base}/{label}.csv", identifier="id", retry=RetryPolicy(attempts=1))


async def test_http_sources_with_memory_sources_and_a_failing_one() -> None:
    gates = {"slow": asyncio.Event()}
    async with serve(csv_app(gates)) as base:
        sources: dict[str, Repository] = {
            "fast": http_csv(base, "fast"),
            "slow": http_csv(base, "slow"),
            "missing": http_csv(base, "missing"),
            "memory": Memory("memory", 5, latency=0.01),
        }
        async with Federated(sources) as federated:
            seen: list[str] = []
            stream = federated.search("row")
            try:
                async for item in stream:
                    seen.append(item.identifier)
                    if len(seen) == 30:
                        # Everything so far is the fast file's: the slow one is served only
                        # now, and nobody waited for it.
                        assert all(i.startswith("fast:") for i in seen)
                        gates["slow"].set()
            finally:
                await stream.aclose()
        assert seen == [f"fast:fast{n}" for n in range(30)] + [f"slow:slow{n}" for n in range(30)]
        assert set(federated.errors) == {"missing"}  # "memory" matched nothing, but is fine
        assert isinstance(federated.errors["missing"], ConfigurationError)  # a 404 file
        assert "404" in str(federated.errors["missing"])


def asyncrepo_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in other_tasks() if t.get_name().startswith("asyncrepo:")]


async def test_http_sources_leave_early_cleanly() -> None:
    gates = {"slow": asyncio.Event()}
    async with serve(csv_app(gates)) as base:
        federated = Federated({"fast": http_csv(base, "fast"), "slow": http_csv(base, "slow")})
        async with federated:
            stream = federated.list_pages(page_size=4)
            page = await anext(stream)
            assert ids(page.items) == [f"fast:fast{n}" for n in range(4)]
            assert len(asyncrepo_tasks()) == 2
            await stream.aclose()
            assert asyncrepo_tasks() == []
        gates["slow"].set()  # let the server's own handler finish


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def csv_files(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    first, second = tmp_path / "one.csv", tmp_path / "two.csv"
    first.write_text("id,title\n1,apple pie\n2,banana\n3,apple juice\n")
    second.write_text("id,title\n10,green apple\n11,cherry\n")
    yield str(first), str(second), str(tmp_path / "missing.csv")


def test_cli_search_over_several_files_reports_a_failing_one(
    csv_files: tuple[str, str, str],
) -> None:
    first, second, missing = csv_files
    result = CliRunner().invoke(app, ["search", "apple", first, second, missing, "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    # Each result carries its source's own identifier (what `asyncrepo get URI ID` takes)
    # and a readable source name.
    assert sorted((r["federated_source"], r["identifier"]) for r in records) == [
        ("one.csv", "0"),
        ("one.csv", "2"),
        ("two.csv", "0"),
    ]
    assert "warning" in result.stderr
    assert "missing.csv" in result.stderr
    assert "no such file" in result.stderr


def test_cli_search_strict_fails(csv_files: tuple[str, str, str]) -> None:
    first, _, missing = csv_files
    result = CliRunner().invoke(app, ["search", "apple", first, missing, "--strict"])
    assert result.exit_code != 0
    assert "missing.csv" in result.stderr


def test_cli_search_with_timeout_and_limit(csv_files: tuple[str, str, str]) -> None:
    first, second, _ = csv_files
    result = CliRunner().invoke(
        app, ["search", "apple", first, second, "--timeout", "30", "-n", "2", "-f", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""
