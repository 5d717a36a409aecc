"""Every pagination strategy over a local HTTP API: no loss, no duplicate, cursors, and
concurrent fetches where the pages are known up front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from asyncrepo import Item, MalformedResponse, PageRequest
from asyncrepo.http import HTTPClient, Response
from asyncrepo.pagination import (
    LinkHeader,
    NextToken,
    NextURL,
    OffsetTotal,
    PageNumber,
    Paginator,
    parse_link_header,
)
from asyncrepo.rest import Endpoint, RESTRepository
from tests.fakes._common import serve
from tests.fakes.generic_api import GenericState, make_app, make_state


class Records(RESTRepository):
    """A connector as configuration: one endpoint, one paginator, one mapping."""

    name = "test.records"

    def __init__(self, base_url: str, path: str, paginator: Paginator, records: Any) -> None:
        self.client = HTTPClient(base_url, source=self.name)
        self.path, self.paginator, self.where = path, paginator, records

    def endpoint(self, request: PageRequest) -> Endpoint:
        return Endpoint(self.path, records=self.where, paginator=self.paginator)

    def to_item(self, raw: Any) -> Item:
        return Item(str(raw["id"]), raw, self, title=raw["name"])


STRATEGIES = {
    "link": ("/link", LinkHeader(), None),
    "link-without-last": ("/link?nolast=1", LinkHeader(), None),
    "token": ("/token", NextToken(token_field="nextPageToken"), "values"),
    "next-url-v1": ("/v1/search", NextURL(base_field="_links.base"), "results"),
    "next-url-v2": ("/v2/items", NextURL(), "results"),
    "offset-total": ("/offset", OffsetTotal(), "values"),
    "page-number": ("/numbered", PageNumber(), None),
}


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, GenericState]]:
    state = make_state(250)
    async with serve(make_app(state)) as base_url:
        yield base_url, state


def repo_for(base_url: str, strategy: str) -> Records:
    path, paginator, where = STRATEGIES[strategy]
    return Records(base_url, path, paginator, where)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_no_loss_no_duplicate(
    api: tuple[str, GenericState], strategy: str, page_size: int
) -> None:
    base_url, _state = api
    async with repo_for(base_url, strategy) as repo:
        pages = [page async for page in repo.list_pages(page_size=page_size)]
    ids = [item.identifier for page in pages for item in page]
    assert ids == [str(i) for i in range(250)]
    assert all(len(page) == page_size for page in pages[:-1])
    if pages[-1].cursor is not None:
        # Only where the vendor's last page was full and its paginator could not tell it was
        # the last (page numbers without a total): the cursor then leads to one empty page.
        assert strategy == "page-number" and 250 % page_size == 0
        async with repo_for(base_url, strategy) as again:
            rest = [p async for p in again.list_pages(cursor=pages[-1].cursor)]
        assert [len(p) for p in rest] == [0] and rest[0].cursor is None


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_cursor_resumes_in_a_fresh_repository(
    api: tuple[str, GenericState], strategy: str
) -> None:
    base_url, _state = api
    async with repo_for(base_url, strategy) as repo:
        stream = repo.list_pages(page_size=7)
        first = await anext(stream)
        second = await anext(stream)
        await stream.aclose()
    assert [i.identifier for i in second] == [str(i) for i in range(7, 14)]
    async with repo_for(base_url, strategy) as fresh:
        rest = [i.identifier async for i in fresh.list(page_size=7, cursor=first.cursor)]
    assert rest == [str(i) for i in range(7, 250)]


async def test_link_header_with_last_fetches_pages_concurrently(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    state.controls.latency = 0.05
    async with repo_for(base_url, "link") as repo:
        repo.page_concurrency = 4
        items = [i async for i in repo.list(page_size=10)]
    assert len(items) == 250
    assert state.max_in_flight > 1
    assert state.controls.count("/link") == 25  # one request per page, no more


async def test_offset_total_trusts_the_server_cap_and_goes_concurrent(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    state.controls.latency = 0.05
    async with repo_for(base_url, "offset-total") as repo:
        ids = [i.identifier async for i in repo.list(page_size=100)]  # server caps at 50
    assert ids == [str(i) for i in range(250)]
    assert state.controls.count("/offset") == 5
    assert state.max_in_flight > 1
    starts = sorted(int(r.query["startAt"]) for r in state.controls.requests)
    assert starts == [0, 50, 100, 150, 200]


async def test_without_known_pages_the_next_page_is_prefetched(
    api: tuple[str, GenericState],
) -> None:
    base_url, state = api
    async with repo_for(base_url, "token") as repo:
        stream = repo.list_pages(page_size=10)
        await anext(stream)
        # While the caller holds page 1, page 2 is already on its way (and no further).
        for _ in range(20):
            if state.controls.count("/token") == 2:
                break
            import asyncio

            await asyncio.sleep(0.01)
        assert state.controls.count("/token") == 2
        await stream.aclose()


async def test_a_repeated_token_is_a_malformed_response(api: tuple[str, GenericState]) -> None:
    base_url, _ = api
    async with Records(base_url, "/repeat", NextToken(), "values") as repo:
        with pytest.raises(MalformedResponse, match="repeated"):
            _ = [i async for i in repo.list(page_size=2)]


async def test_records_in_the_wrong_place_are_a_malformed_response(
    api: tuple[str, GenericState],
) -> None:
    base_url, _ = api
    async with Records(base_url, "/token", NextToken(), "nothing.here") as repo:
        with pytest.raises(MalformedResponse, match="list of records"):
            _ = [i async for i in repo.list()]


async def test_a_record_missing_a_field_is_a_malformed_response(
    api: tuple[str, GenericState],
) -> None:
    base_url, _ = api

    class Strict(Records):
        def to_item(self, raw: Any) -> Item:
            return Item(str(raw["missing"]), raw, self)

    async with Strict(base_url, "/numbered", PageNumber(), None) as repo:
        with pytest.raises(MalformedResponse, match="missing") as caught:
            _ = [i async for i in repo.list()]
    assert caught.value.source == "test.records"
    assert "/numbered" in (caught.value.url or "")


async def test_leaving_early_cancels_outstanding_fetches(
    api: tuple[str, GenericState],
) -> None:
    import asyncio

    base_url, state = api
    state.controls.latency = 0.05

    def fetches() -> list[asyncio.Task[Any]]:
        names = ("fetch_page", "fetch_records")
        return [t for t in asyncio.all_tasks() if any(n in repr(t.get_coro()) for n in names)]

    async with repo_for(base_url, "link") as repo:
        stream = repo.list(page_size=10)
        async for _ in stream:
            assert fetches()  # the following pages are on their way
            break
        await stream.aclose()
        assert not fetches()
        # A plain `break` without aclose(): the event loop's async-generator finaliser
        # closes the stream as soon as it is garbage, a few loop turns later.
        async for _ in repo.list(page_size=10):
            break
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert not fetches()


def test_parse_link_header() -> None:
    header = (
        '<https://api.example.com/x?page=2>; rel="next", '
        '<https://api.example.com/x?page=5>; rel="last", <https://e.com/b>; rel="base prev"'
    )
    links = parse_link_header(header)
    assert links["next"].endswith("page=2")
    assert links["last"].endswith("page=5")
    assert links["base"] == links["prev"] == "https://e.com/b"
    assert parse_link_header(None) == {}
    assert parse_link_header("garbage") == {}


@pytest.mark.parametrize(
    ("next_url", "last_url", "expected"),
    [
        # GitHub's shape: the page parameter last; the URLs of pages 2 to 4.
        (
            "https://h/r?per_page=100&sort=created&page=2",
            "https://h/r?per_page=100&sort=created&page=4",
            [f"https://h/r?per_page=100&sort=created&page={n}" for n in (2, 3, 4)],
        ),
        # The page parameter first, encoded values, a fragment: each kept as it was.
        (
            "https://h/r?page=3&q=a+b%26c&x=#frag",
            "https://h/r?q=a+b%26c&x=&page=4#frag",
            ["https://h/r?q=a+b%26c&x=&page=3#frag", "https://h/r?q=a+b%26c&x=&page=4#frag"],
        ),
        # Pages that differ by more than their number are not planned (fetched one by one).
        ("https://h/r?page=2&sort=a", "https://h/r?page=9&sort=b", []),
        ("https://h/r?page=2", "https://h/other?page=9", []),
        ("https://h/r?page=5", "https://h/r?page=4", []),
        ("https://h/r?page=x", "https://h/r?page=4", []),
    ],
)
def test_link_header_plans_the_following_pages(
    next_url: str, last_url: str, expected: list[str]
) -> None:
    response = Response(
        status=200,
        headers={"Link": f'<{next_url}>; rel="next", <{last_url}>; rel="last"'},
        url="https://h/r",
        method="GET",
        body=b"[]",
        source="test",
    )
    next_state, following = LinkHeader().advance(response, [], [], None, 100)
    assert next_state == next_url
    assert callable(following)
    planned = following()
    assert (list(planned) if planned is not None else []) == expected


async def test_aclose_cancels_the_prefetch_of_an_abandoned_stream(
    api: tuple[str, GenericState],
) -> None:
    import asyncio

    base_url, state = api
    state.controls.latency = 0.1
    repo = repo_for(base_url, "token")
    stream = repo.list_pages(page_size=10)
    await anext(stream)  # page 2 is being prefetched now
    await repo.aclose()  # the caller never closes the stream
    await asyncio.sleep(0.3)  # the prefetch would have finished by now
    assert repo.client._session is None  # cancelled, so it never reopened a session
    await stream.aclose()


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize(("first_size", "next_size"), [(100, 7), (7, 100), (30, 1)])
async def test_a_cursor_resumes_exactly_whatever_the_next_page_size(
    api: tuple[str, GenericState], strategy: str, first_size: int, next_size: int
) -> None:
    base_url, _ = api
    async with repo_for(base_url, strategy) as repo:
        stream = repo.list_pages(page_size=first_size)
        first = await anext(stream)
        await stream.aclose()
    async with repo_for(base_url, strategy) as fresh:
        pages = [p async for p in fresh.list_pages(page_size=next_size, cursor=first.cursor)]
    assert [i.identifier for p in pages for i in p] == [str(i) for i in range(first_size, 250)]
    assert all(len(p) == next_size for p in pages[:-1])


@pytest.mark.parametrize("strategy", ["link", "next-url-v2"])
async def test_a_forged_cursor_cannot_send_credentials_elsewhere(
    api: tuple[str, GenericState], strategy: str
) -> None:
    import base64

    import orjson

    from asyncrepo import InvalidCursor
    from asyncrepo.cursors import seal

    base_url, state = api
    async with repo_for(base_url, strategy) as repo:
        stream = repo.list_pages(page_size=7)
        first = await anext(stream)
        await stream.aclose()
        assert first.cursor is not None
        body, _, _signature = first.cursor.partition(".")
        record = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        assert record["s"].startswith(base_url)
        record["s"] = record["s"].replace(base_url, "http://attacker.example")
        edited = base64.urlsafe_b64encode(orjson.dumps(record)).decode().rstrip("=")
        # Edited under the old signature: refused before anything is sent.
        with pytest.raises(InvalidCursor, match="not made by this repository"):
            _ = [i async for i in repo.list(page_size=7, cursor=f"{edited}.{_signature}")]
        # Even re-sealed by someone who has the key, a page URL must stay on the origin.
        resealed = seal(orjson.dumps(record), repo.cursor_key)
        with pytest.raises(InvalidCursor, match="another host"):
            _ = [i async for i in repo.list(page_size=7, cursor=resealed)]
    assert all(r.path != "/attacker" for r in state.controls.requests)
