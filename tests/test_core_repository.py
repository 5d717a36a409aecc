"""The Repository contract over an in-memory source: pages, cursors, naive search and get,
option checking, items."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from asyncrepo import (
    Batch,
    Capabilities,
    InvalidCursor,
    InvalidQuery,
    Item,
    ItemNotFound,
    Page,
    PageRequest,
    Repository,
    UnsupportedOption,
)
from asyncrepo.repository import plain_items

START = datetime(2024, 1, 1, tzinfo=UTC)


def make_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "title": f"Note {i}",
            "body": "Hello World" if i % 5 == 0 else "nothing to see",
            "tags": ["deep", {"nested": "Needle" if i == 42 else "hay"}],
            "updated": (START + timedelta(hours=i)).isoformat(),
        }
        for i in range(n)
    ]


class Notes(Repository):
    """The README's custom repository, nearly verbatim: one page method and a get."""

    name = "example.notes"
    capabilities = Capabilities(since="client", orders=frozenset({"-updated"}))

    def __init__(self, records: list[dict[str, Any]], vendor_page: int = 10) -> None:
        self.records = records
        self.vendor_page = vendor_page
        self.calls: list[Any] = []

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        self.calls.append(state)
        records = self.records
        if request.order == "-updated":
            records = list(reversed(records))
        offset = state or 0
        rows = records[offset : offset + self.vendor_page]
        end = offset + len(rows)
        items = [self.to_item(r) for r in rows]
        return Batch(items, end if end < len(records) else None)

    def to_item(self, record: dict[str, Any]) -> Item:
        return Item(
            str(record["id"]),
            record,
            self,
            title=record["title"],
            updated_at=datetime.fromisoformat(record["updated"]),
        )


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_pages_have_every_item_once(page_size: int) -> None:
    repo = Notes(make_records(53))
    pages = await collect(repo.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert ids == [str(i) for i in range(53)]
    assert all(len(p) == page_size for p in pages[:-1])
    assert 0 < len(pages[-1]) <= page_size
    assert pages[-1].cursor is None
    assert all(p.cursor for p in pages[:-1])


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_cursor_resumes_in_a_fresh_repository(page_size: int) -> None:
    records = make_records(53)
    pages = await collect(Notes(records).list_pages(page_size=page_size))
    for index, page in enumerate(pages[:-1]):
        # The cursor survives JSON and a new repository object.
        cursor = orjson.loads(orjson.dumps(page.cursor))
        rest = await collect(Notes(records).list_pages(page_size=page_size, cursor=cursor))
        expected = [i.identifier for p in pages[index + 1 :] for i in p]
        assert [i.identifier for p in rest for i in p] == expected
        if index > 3:
            break


@pytest.mark.parametrize("page_size", [1, 3, 9, 10, 11, 20, 53, 100])
async def test_pages_by_slices_match_pages_item_by_item(page_size: int) -> None:
    # Without a client-side filter a vendor page's items go into the pages a slice at a
    # time; with one (a ``since`` every item passes) item by item: the same pages, and
    # every cursor resumes at the same item.
    records = make_records(53)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    sliced = await collect(Notes(records).list_pages(page_size=page_size))
    one_by_one = await collect(Notes(records).list_pages(page_size=page_size, since=epoch))
    assert [[i.identifier for i in p] for p in sliced] == [
        [i.identifier for i in p] for p in one_by_one
    ]
    assert [p.cursor is None for p in sliced] == [p.cursor is None for p in one_by_one]
    for a, b in zip(sliced[:-1], one_by_one[:-1], strict=True):
        resumed = await collect(Notes(records).list(cursor=a.cursor))
        resumed_b = await collect(Notes(records).list(since=epoch, cursor=b.cursor))
        assert [i.identifier for i in resumed] == [i.identifier for i in resumed_b]
        assert resumed and resumed[0].identifier == str(sliced.index(a) * page_size + page_size)


async def test_cursor_works_with_another_page_size() -> None:
    records = make_records(53)
    first = await anext(Notes(records).list_pages(page_size=7))
    rest = await collect(Notes(records).list_pages(page_size=20, cursor=first.cursor))
    assert [i.identifier for p in rest for i in p] == [str(i) for i in range(7, 53)]
    assert [len(p) for p in rest] == [20, 20, 6]


async def test_cursor_resume_fetches_only_from_its_vendor_page() -> None:
    records = make_records(53)
    pages = await collect(Notes(records).list_pages(page_size=7))
    fresh = Notes(records)
    await anext(fresh.list_pages(page_size=7, cursor=pages[2].cursor))  # item 21 is on page 20
    assert fresh.calls[0] == 20


async def test_cursor_is_refused_by_another_query_or_operation() -> None:
    repo = Notes(make_records(30))
    page = await anext(repo.search_pages("hello", page_size=2))
    assert page.cursor
    with pytest.raises(InvalidCursor):
        repo.search_pages("other", cursor=page.cursor)
    with pytest.raises(InvalidCursor):
        repo.list_pages(cursor=page.cursor)
    with pytest.raises(InvalidCursor):
        repo.list_pages(cursor="not a cursor")


async def test_next_page_continues_and_resumes() -> None:
    repo = Notes(make_records(25))
    first = await anext(repo.list_pages(page_size=10))
    second = await first.next_page()
    assert second is not None
    assert [i.identifier for i in second] == [str(i) for i in range(10, 20)]
    # Asking the first page again resumes from its cursor.
    again = await first.next_page()
    assert again is not None and [i.identifier for i in again] == [i.identifier for i in second]
    third = await second.next_page()
    assert third is not None and len(third) == 5 and third.cursor is None
    assert await third.next_page() is None


async def test_empty_listing_gives_one_empty_page() -> None:
    pages = await collect(Notes([]).list_pages())
    assert len(pages) == 1 and len(pages[0]) == 0 and pages[0].cursor is None


async def test_naive_search_matches_raw_values_at_any_depth() -> None:
    repo = Notes(make_records(60))
    hits = await collect(repo.search("hello"))
    assert [i.identifier for i in hits] == [str(i) for i in range(0, 60, 5)]
    assert [i.identifier for i in await collect(repo.search("NEEDLE"))] == ["42"]
    # Every term must match (quoted phrases stay one term).
    assert [i.identifier for i in await collect(repo.search('"hello world" "note 1"'))] == [
        "10",
        "15",
    ]


@pytest.mark.parametrize("page_size", [1, 3, 100])
async def test_naive_search_pages_and_cursor(page_size: int) -> None:
    records = make_records(60)
    pages = await collect(Notes(records).search_pages("hello", page_size=page_size))
    ids = [i.identifier for p in pages for i in p]
    assert ids == [str(i) for i in range(0, 60, 5)]
    if len(pages) > 1:
        rest = await collect(
            Notes(records).search_pages("hello", page_size=page_size, cursor=pages[0].cursor)
        )
        assert [i.identifier for p in rest for i in p] == ids[page_size:]


async def test_naive_get_stops_at_the_first_match() -> None:
    repo = Notes(make_records(100))
    item = await repo.get("12")
    assert item.title == "Note 12"
    assert len(repo.calls) == 2  # pages 0-9 and 10-19 (plus no more than one prefetch)


async def test_get_missing_raises_item_not_found() -> None:
    with pytest.raises(ItemNotFound) as caught:
        await Notes(make_records(5)).get("99")
    assert caught.value.identifier == "99"
    assert "example.notes" in str(caught.value)
    assert isinstance(caught.value, LookupError)


async def test_since_filters_client_side() -> None:
    repo = Notes(make_records(50))
    since = START + timedelta(hours=45)
    ids = [i.identifier for i in await collect(repo.list(since=since))]
    assert ids == ["45", "46", "47", "48", "49"]


async def test_since_with_newest_first_stops_early() -> None:
    repo = Notes(make_records(100))
    since = START + timedelta(hours=95)
    ids = [i.identifier for i in await collect(repo.list(since=since, order="-updated"))]
    assert ids == ["99", "98", "97", "96", "95"]
    assert len(repo.calls) <= 2  # did not read the whole listing


async def test_options_that_cannot_be_honoured_are_refused() -> None:
    class Plain(Notes):
        capabilities = Capabilities()

    repo = Plain(make_records(3))
    with pytest.raises(UnsupportedOption, match="since"):
        repo.list(since=START)
    with pytest.raises(UnsupportedOption, match="order"):
        repo.list(order="created")
    with pytest.raises(UnsupportedOption, match="colour"):
        repo.list(colour="blue")
    with pytest.raises(InvalidQuery):
        Notes([]).list(since=datetime(2024, 1, 1))  # naive datetime
    with pytest.raises(InvalidQuery):
        Notes([]).list(page_size=0)
    with pytest.raises(InvalidQuery):
        Notes([]).search("   ")


async def test_async_for_over_the_repository_lists() -> None:
    repo = Notes(make_records(12))
    assert len([item async for item in repo]) == 12


async def test_item_is_slotted_and_serialisable() -> None:
    repo = Notes(make_records(1))
    item = await repo.get("0")
    assert not hasattr(item, "__dict__")
    data = item.to_dict()
    assert data["source"] == "example.notes"
    assert data["updated_at"] == "2024-01-01T00:00:00+00:00"
    assert orjson.loads(orjson.dumps(data))["raw"]["title"] == "Note 0"
    # An item costs little beyond its raw dict.
    assert sys.getsizeof(item) < 150


def test_plain_items_are_items_like_any_other() -> None:
    repo = Notes(make_records(1))
    raws = [{"n": 1}, {"n": 2}]
    fast = list(plain_items(["a", "b", "ignored"], raws, repo))
    slow = [Item("a", raws[0], repo), Item("b", raws[1], repo)]
    assert len(fast) == 2 and all(type(item) is Item for item in fast)
    for made, expected in zip(fast, slow, strict=True):
        # Every slot is set (no AttributeError), to what Item() would set it to.
        assert {n: getattr(made, n) for n in Item.__slots__} == {
            n: getattr(expected, n) for n in Item.__slots__
        }
    assert fast[1].raw is raws[1] and fast[0].to_dict() == slow[0].to_dict()


async def test_page_is_a_sequence() -> None:
    page = Page([Item("a", {}), Item("b", {})])
    assert len(page) == 2 and page[1].identifier == "b"
    assert [i.identifier for i in page] == ["a", "b"]
    with pytest.raises(InvalidCursor):
        await Page([], cursor="x").next_page()


async def test_context_manager_closes() -> None:
    closed = []

    class Closing(Notes):
        async def aclose(self) -> None:
            closed.append(True)

    async with Closing([]) as repo:
        assert isinstance(repo, Closing)
    assert closed == [True]


async def test_large_user_pages_are_assembled_from_capped_vendor_pages() -> None:
    class Capped(Notes):
        capabilities = Capabilities(max_page_size=10)

        async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
            assert request.page_size <= 10
            return await super().fetch_page(request, state)

    pages = await collect(Capped(make_records(95)).list_pages(page_size=40))
    assert [len(p) for p in pages] == [40, 40, 15]


class Repeating(Repository):
    """Pages of identifiers as given: repeats within a page and across pages."""

    name = "test.repeating"

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        index = state or 0
        following = index + 1 if index + 1 < len(self.pages) else None
        return Batch([Item(i, {"i": i}, self) for i in self.pages[index]], following)


@pytest.mark.parametrize("page_size", [1, 2, 100])
async def test_a_listing_gives_each_identifier_once(page_size: int) -> None:
    repo = Repeating([["a", "b", "a"], ["c", "b"], ["d", "e"], ["e", "f", "f"]])
    pages = [page async for page in repo.list_pages(page_size=page_size)]
    assert [i.identifier for p in pages for i in p] == ["a", "b", "c", "d", "e", "f"]
    # Resuming from any cursor continues without loss (a fresh listing: its own memory).
    for page in pages[:-1]:
        assert page.cursor is not None
        rest = [i.identifier async for i in repo.list(cursor=page.cursor, page_size=page_size)]
        assert rest and rest[-1] == "f"


def test_seen_identifiers_remember_at_least_half_the_window() -> None:
    from asyncrepo.repository import _SeenIdentifiers

    seen = _SeenIdentifiers(10)
    assert seen.add_all(["a", "b"]) and not seen.add_all(["c", "a"]) and seen.add("c")
    assert not seen.add_all(["x", "x"])  # a repeat within the page: item by item instead
    for n in range(100):
        assert seen.add(f"n{n}")
    assert all(not seen.add(f"n{n}") for n in range(95, 100))
    assert seen.add("a")  # long forgotten: the memory is bounded
