"""Servers that lie cannot hang a listing, exhaust memory, duplicate items, take a credential
off its origin, or make asyncrepo raise anything but its own errors.

Each test points a real connector (or the core's transport) at a server that misbehaves on
purpose: a real vendor fake with one detail falsified (``tests.fakes.hostile.tamper``), or a
small standalone app. Each failed before the fix it pins (issue #12).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import pytest
from aiohttp import web

from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    Item,
    MalformedResponse,
    PageRequest,
    RateLimited,
    RetryPolicy,
    SourceTimeout,
)
from asyncrepo.cursors import seal
from asyncrepo.http import BearerAuth, HTTPClient
from asyncrepo.pagination import LinkHeader, PageNumber, PaginationLoop
from asyncrepo.repositories.confluence.pages import Pages
from asyncrepo.repositories.file.csv_rows import CSVRows
from asyncrepo.repositories.github.repos import Repos
from asyncrepo.repositories.greenhouse.jobs import Jobs
from asyncrepo.repositories.jira.issues import Issues
from asyncrepo.rest import Endpoint, RESTRepository
from tests.fakes import confluence, github, greenhouse, jira
from tests.fakes._common import serve
from tests.fakes.hostile import (
    Recorded,
    echo_app,
    endless_app,
    json_body,
    page_count_app,
    redirect_app,
    retry_after_app,
    set_json_body,
    sink_app,
    tamper,
    trickle_app,
)

FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, jitter=0.0, max_wait=5.0)
ONCE = RetryPolicy(attempts=1)
TOKEN = "ghp_testtoken"  # the GitHub fake's
SECRET_HEADER = "x-api-key-0123456789abcdef"
#: No test here may take long: a listing that loops or a read that never ends fails this
#: bound instead of hanging the suite.
BOUND = 60


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    async with asyncio.timeout(BOUND):
        return [x async for x in stream]


def with_query(url: str, **changes: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in changes.items()})
    return parts._replace(query=urlencode(query)).geturl()


# -- memory: an absurd page count or total is never planned whole -------------------------


async def test_github_last_page_of_a_trillion_lists_only_the_real_pages() -> None:
    state = github.make_dataset(400, seed=0)
    expected = {r.full_name for r in state.repos_of("acme") if state.can_see(r, "octocat")}

    async def lie(request: web.Request, response: web.Response) -> None:
        links = response.headers.get("Link")
        if links and 'rel="last"' in links:
            parts = [p for p in links.split(",") if 'rel="last"' not in p]
            last = next(p for p in links.split(",") if 'rel="last"' in p)
            url = last[last.index("<") + 1 : last.index(">")]
            parts.append(f' <{with_query(url, page=10**12)}>; rel="last"')
            response.headers["Link"] = ",".join(parts)

    async with (
        serve(tamper(github.make_app(state), lie)) as base,
        Repos(TOKEN, org="acme", base_url=base, retry=FAST) as repo,
    ):
        items = await collect(repo.list(page_size=100))
    assert {i.raw["full_name"] for i in items} == expected
    assert len(items) == len(expected)
    # The real pages, plus at most the window of pages fetched ahead past the end.
    assert state.controls.count("/orgs/acme/repos") <= len(expected) // 100 + 1 + 4 + 1


async def test_page_number_with_a_trillion_pages_stops_at_the_first_empty_page() -> None:
    class Numbered(RESTRepository):
        name = "test.numbered"

        def __init__(self, base_url: str) -> None:
            self.client = HTTPClient(base_url, source=self.name, retry=ONCE)

        def endpoint(self, request: PageRequest) -> Endpoint:
            return Endpoint("/pages", records="values", paginator=PageNumber(pages_field="pages"))

        def to_item(self, raw: Any) -> Item:
            return Item(str(raw["id"]), raw, self)

    async with (
        serve(page_count_app(real_pages=3, per_page_items=5)) as base,
        Numbered(base) as repo,
    ):
        items = await collect(repo.list(page_size=5))
    assert [i.identifier for i in items] == [str(n) for n in range(15)]


def jira_dc(n: int = 120) -> jira.JiraState:
    return jira.make_dataset(n, deployment="datacenter", seed=0)


async def test_jira_dc_total_of_a_trillion_ends_with_the_real_issues() -> None:
    state = jira_dc()

    async def lie(request: web.Request, response: web.Response) -> None:
        if request.path.startswith("/rest/api/2/search") and response.status == 200:
            body = json_body(response)
            body["total"] = 10**12
            set_json_body(response, body)

    async with (
        serve(tamper(jira.make_app(state), lie)) as base,
        Issues(
            base, "me@example.com", "api-token-123", deployment="datacenter", retry=FAST
        ) as repo,
    ):
        items = await collect(repo.list(page_size=50))
    assert len(items) == len({i.identifier for i in items}) == 120


# -- hangs: loops and repeats end in MalformedResponse ---------------------------------------


@pytest.mark.parametrize("shape", ["self", "cycle"])
async def test_github_next_link_loop_is_detected(shape: str) -> None:
    state = github.make_dataset(400, seed=0)
    first_url: dict[str, str] = {}

    async def lie(request: web.Request, response: web.Response) -> None:
        links = response.headers.get("Link")
        if not links or request.path != "/orgs/acme/repos":
            return
        here = str(request.url)
        first_url.setdefault("url", here)
        target = here if shape == "self" else first_url["url"]
        if shape == "cycle" and here == first_url["url"]:
            target = with_query(here, page=2)
        response.headers["Link"] = f'<{target}>; rel="next"'  # no rel="last": follow next

    async with (
        serve(tamper(github.make_app(state), lie)) as base,
        Repos(TOKEN, org="acme", base_url=base, retry=FAST) as repo,
    ):
        with pytest.raises(PaginationLoop, match="already served"):
            await collect(repo.list(page_size=30))
    assert state.controls.count("/orgs/acme/repos") <= 3


async def test_confluence_next_link_cycling_a_b_a_is_detected() -> None:
    state = confluence.make_dataset(n_pages=120, n_blogposts=0, seed=11)
    seen: list[str] = []

    async def lie(request: web.Request, response: web.Response) -> None:
        if response.status != 200 or not request.path.endswith("/pages"):
            return
        body = json_body(response)
        if not isinstance(body, dict) or "_links" not in body:
            return
        seen.append(request.path_qs)
        if len(seen) >= 2:  # B's next leads back to A
            body["_links"]["next"] = seen[0]
            response.headers.popall("Link", None)
            set_json_body(response, body)

    async with (
        serve(tamper(confluence.make_app(state), lie)) as base,
        Pages(base, confluence.DEFAULT_EMAIL, confluence.DEFAULT_TOKEN, retry=FAST) as repo,
    ):
        with pytest.raises(MalformedResponse):
            await collect(repo.list(page_size=25))
    assert len(seen) <= 4


async def test_jira_dc_same_issues_whatever_start_at_fails_instead_of_looping() -> None:
    state = jira_dc()
    first: dict[str, Any] = {}

    async def lie(request: web.Request, response: web.Response) -> None:
        if request.path.startswith("/rest/api/2/search") and response.status == 200:
            body = json_body(response)
            first.setdefault("issues", body["issues"])
            body["issues"], body["total"] = first["issues"], 10**12
            set_json_body(response, body)

    async with (
        serve(tamper(jira.make_app(state), lie)) as base,
        Issues(
            base, "me@example.com", "api-token-123", deployment="datacenter", retry=FAST
        ) as repo,
    ):
        with pytest.raises(MalformedResponse, match="repeated items"):
            await collect(repo.list(page_size=50))
    assert state.controls.count("/rest/api/2/search") < 50


async def test_a_page_that_repeats_a_few_items_loses_and_duplicates_nothing() -> None:
    """An honest shift (an item inserted while listing by offset) repeats one item on the
    next page: it is dropped, nothing else is."""
    state = jira_dc()
    shifted = {"done": False}

    async def lie(request: web.Request, response: web.Response) -> None:
        if request.path.startswith("/rest/api/2/search") and response.status == 200:
            body = json_body(response)
            if body["startAt"] == 50 and not shifted["done"]:
                shifted["done"] = True
                previous = await_previous[0]
                body["issues"] = [previous, *body["issues"]]
                set_json_body(response, body)
            elif body["startAt"] == 0:
                await_previous[0] = body["issues"][-1]

    await_previous: list[Any] = [None]
    async with (
        serve(tamper(jira.make_app(state), lie)) as base,
        Issues(
            base, "me@example.com", "api-token-123", deployment="datacenter", retry=FAST
        ) as repo,
    ):
        repo.page_concurrency = 1
        items = await collect(repo.list(page_size=50))
    assert shifted["done"]
    ids = [i.identifier for i in items]
    assert len(ids) == len(set(ids)) == 120


# -- credentials never leave their origin ----------------------------------------------------


async def test_csv_url_redirected_to_another_origin_keeps_its_headers_home() -> None:
    elsewhere, home = Recorded(), Recorded()
    async with serve(sink_app(elsewhere)) as other, serve(redirect_app(other, home)) as base:
        repo = CSVRows(f"{base}/data.csv", headers={"X-Api-Key": SECRET_HEADER}, retry=FAST)
        async with repo:
            rows = await collect(repo.list())
    assert [r.raw["name"] for r in rows] == ["a", "b"]
    assert home.headers_seen()[0].get("X-Api-Key") == SECRET_HEADER  # sent where it belongs
    for headers in elsewhere.headers_seen():
        assert "X-Api-Key" not in headers and "Authorization" not in headers


async def test_same_origin_redirect_keeps_the_credentials() -> None:
    """The control: a redirect within the origin still authenticates."""
    recorded = Recorded()

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/new" + request.path_qs)

    async def new(request: web.Request) -> web.Response:
        recorded.requests.append((request.path_qs, dict(request.headers)))
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/new/{tail:.*}", new)
    app.router.add_get("/{tail:.*}", moved)
    async with serve(app) as base:
        client = HTTPClient(base, source="test", auth=BearerAuth(TOKEN), retry=ONCE)
        async with client:
            await client.get_json("/list")
    assert recorded.headers_seen()[0]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("status", [302, 307])
async def test_greenhouse_redirect_to_another_origin_sends_no_caller_header(status: int) -> None:
    state = greenhouse.make_dataset("acme", n_jobs=5, seed=0)
    home = Recorded()
    async with (
        serve(greenhouse.make_app(state)) as real,
        serve(redirect_app(real, home, status=status)) as base,
        Jobs("acme", base, headers={"X-Api-Key": SECRET_HEADER}, retry=FAST) as repo,
    ):
        jobs = await collect(repo.list())
    assert len(jobs) == 5
    assert home.headers_seen()[0]["X-Api-Key"] == SECRET_HEADER
    assert state.controls.requests, "the redirect was followed"
    for request in state.controls.requests:
        assert "X-Api-Key" not in request.headers and "Authorization" not in request.headers


async def test_a_redirect_loop_ends_in_our_error() -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.path_qs)

    app = web.Application()
    app.router.add_get("/{tail:.*}", loop)
    async with serve(app) as base, HTTPClient(base, source="test", retry=ONCE) as client:
        with pytest.raises(Exception) as caught:
            await client.get_json("/x")
    assert "redirects" in str(caught.value)
    assert type(caught.value).__module__.startswith("asyncrepo")


async def test_a_body_echoing_the_request_never_shows_the_token() -> None:
    async with serve(echo_app()) as base:
        client = HTTPClient(
            base,
            source="test",
            auth=BearerAuth(TOKEN),
            headers={"X-Api-Key": SECRET_HEADER},
            retry=ONCE,
        )
        async with client:
            with pytest.raises(MalformedResponse) as caught:
                await client.get_json("/x")
    text = str(caught.value) + repr(caught.value)
    assert "not JSON" in text and "ECHO" in text
    assert TOKEN not in text and SECRET_HEADER not in text
    assert TOKEN[:12] not in text  # not even a cut-off piece of it


# -- cursors cannot widen what a repository reads --------------------------------------------


class Listing(RESTRepository):
    name = "test.listing"

    def __init__(self, base_url: str) -> None:
        self.client = HTTPClient(base_url, source=self.name, retry=ONCE)

    def endpoint(self, request: PageRequest) -> Endpoint:
        return Endpoint("/pages", records="values", paginator=PageNumber(pages_field="pages"))

    def to_item(self, raw: Any) -> Item:
        return Item(str(raw["id"]), raw, self)


async def test_an_edited_cursor_is_refused() -> None:
    async with (
        serve(page_count_app(real_pages=3, per_page_items=5, claimed_pages=3)) as base,
        Listing(base) as repo,
    ):
        pages = repo.list_pages(page_size=5)
        first = await anext(pages)
        await pages.aclose()
        assert first.cursor
        body, _, mac = first.cursor.partition(".")
        record = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        record["s"] = 3  # skip a page
        edited = base64.urlsafe_b64encode(orjson.dumps(record)).decode().rstrip("=")
        with pytest.raises(InvalidCursor):
            repo.list(cursor=f"{edited}.{mac}")
        with pytest.raises(InvalidCursor):
            repo.list(cursor=first.cursor[:-2])
        # A skip of a trillion, even sealed with the right key, is out of range.
        record["s"], record["k"] = 2, 10**12
        with pytest.raises(InvalidCursor, match="out of range"):
            repo.list(cursor=seal(orjson.dumps(record), repo.cursor_key))
        # Another repository with another key refuses the genuine cursor.
        other = Listing(base)
        other.cursor_key = b"another key, 16 bytes or more"
        with pytest.raises(InvalidCursor):
            other.list(cursor=first.cursor)
        # The same key (a service's workers sharing ASYNCREPO_CURSOR_KEY) accepts it.
        same = Listing(base)
        same.cursor_key = repo.cursor_key
        rest = await collect(same.list(cursor=first.cursor))
        await other.aclose()
        await same.aclose()
    assert [i.identifier for i in rest] == [str(n) for n in range(5, 15)]


# -- vendor numbers and bodies never raise anything but our errors ---------------------------


@pytest.mark.parametrize(
    "value", ["1e20", "inf", "nan", "-5", "999999999999999", "Fri, 31 Dec 99999 23:59:59 GMT"]
)
async def test_absurd_retry_after_is_a_sane_rate_limit(value: str) -> None:
    async with serve(retry_after_app(value)) as base:
        policy = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02, max_wait=1.0, jitter=0.0)
        async with HTTPClient(base, source="test", retry=policy) as client:
            with pytest.raises(RateLimited) as caught:
                async with asyncio.timeout(BOUND):
                    await client.get_json("/x")
    error = caught.value
    assert error.retry_after is None or 0 <= error.retry_after <= 7 * 24 * 3600
    if error.reset_at is not None:
        assert error.reset_at <= datetime.now(UTC) + timedelta(days=8)


async def test_a_listing_endpoint_that_does_not_exist_is_a_configuration_error() -> None:
    app = web.Application()
    async with serve(app) as base, Listing(base) as repo:
        with pytest.raises(ConfigurationError) as caught:
            await collect(repo.list())
    assert "/pages" in str(caught.value) and "404" in str(caught.value)


async def test_a_body_trickling_forever_ends_at_the_request_deadline() -> None:
    async with serve(trickle_app(interval=0.2)) as base:
        client = HTTPClient(base, source="test", retry=ONCE, timeout=5.0, request_timeout=1.0)
        async with client:
            with pytest.raises(SourceTimeout, match="no complete answer within 1s"):
                async with asyncio.timeout(BOUND):
                    await client.get_json("/x")


async def test_an_endless_page_fails_at_the_size_cap() -> None:
    async with serve(endless_app()) as base:
        client = HTTPClient(base, source="test", retry=ONCE, max_response_bytes=2 * 1024 * 1024)
        async with client:
            with pytest.raises(MalformedResponse, match="larger than max_response_bytes"):
                async with asyncio.timeout(BOUND):
                    await client.get_json("/x")


async def test_endless_empty_pages_with_new_next_links_end_in_our_error() -> None:
    async def empty(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        link = f'<{request.url.with_query(page=page + 1)}>; rel="next"'
        return web.json_response([], headers={"Link": link})

    class Links(RESTRepository):
        name = "test.links"

        def __init__(self, base_url: str) -> None:
            self.client = HTTPClient(base_url, source=self.name, retry=ONCE)

        def endpoint(self, request: PageRequest) -> Endpoint:
            return Endpoint("/empty", paginator=LinkHeader(page_size_param=None))

        def to_item(self, raw: Any) -> Item:
            return Item(str(raw["id"]), raw, self)

    app = web.Application()
    app.router.add_get("/empty", empty)
    async with serve(app) as base, Links(base) as repo:
        with pytest.raises(MalformedResponse, match="empty pages in a row"):
            await collect(repo.list())


async def test_a_csv_url_trickling_forever_ends_at_the_download_timeout() -> None:
    async with serve(trickle_app(interval=0.2)) as base:
        repo = CSVRows(f"{base}/slow.csv", download_timeout=1.0, retry=ONCE, reject_html=False)
        async with repo:
            with pytest.raises(SourceTimeout, match="within 1s"):
                await collect(repo.list())
