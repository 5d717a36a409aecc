"""confluence.pages against the fake Confluence Cloud (tests/fakes/confluence.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    Page,
    PermissionDenied,
    RetryPolicy,
    UnsupportedOption,
)
from asyncrepo.convert import html_to_text
from asyncrepo.repositories.confluence import from_uri
from asyncrepo.repositories.confluence._client import cql_date, cql_string
from asyncrepo.repositories.confluence.blogs import Blogs
from asyncrepo.repositories.confluence.pages import Pages
from asyncrepo.repositories.confluence.spaces import Spaces
from tests.fakes._common import LoggedRequest, serve
from tests.fakes.confluence import (
    DEFAULT_EMAIL,
    DEFAULT_TOKEN,
    And,
    Clause,
    ConfluenceState,
    Content,
    analyze,
    inject_rate_limit,
    make_app,
    make_dataset,
)

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, attempts=8)
WORD = "kubernetes"  # in the fake's vocabulary: about 30% of the pages hold it
RARE = "kubernetes golang"  # both words: about 9% of the pages


@functools.cache
def dataset(n_pages: int = 2000, n_blogposts: int = 300) -> ConfluenceState:
    return make_dataset(n_pages=n_pages, n_blogposts=n_blogposts, seed=11)


def fresh_state(n_pages: int = 2000, n_blogposts: int = 300) -> ConfluenceState:
    """A new fake state (request log, faults) over one shared, read-only dataset."""
    base = dataset(n_pages, n_blogposts)
    state = ConfluenceState(
        users=base.users, people=base.people, spaces=base.spaces, content=base.content
    )
    state._text_cache = base._text_cache  # the analyzer's cache: the same texts
    return state


@pytest.fixture
def state() -> ConfluenceState:
    return fresh_state()


@pytest.fixture
async def origin(state: ConfluenceState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def make_pages(origin: str, **options: Any) -> Pages:
    return Pages(origin, DEFAULT_EMAIL, DEFAULT_TOKEN, retry=FAST, **options)


def pages_of(
    state: ConfluenceState, space: str | None = None, statuses: set[str] | None = None
) -> dict[str, Content]:
    statuses = statuses or {"current"}
    return {
        c.id: c
        for c in state.content.values()
        if c.type == "page" and c.status in statuses and (space is None or c.space_key == space)
    }


def matching(state: ConfluenceState, query: str, space: str | None = None) -> set[str]:
    """Current pages whose title or body holds every word of ``query`` (the fake's rule)."""
    words = analyze(query)
    out = set()
    for cid, c in pages_of(state, space).items():
        title, body = state.tokens(c)
        if all(word in title or word in body for word in words):
            out.add(cid)
    return out


def requests_to(state: ConfluenceState, prefix: str) -> list[LoggedRequest]:
    return [r for r in state.controls.requests if r.path.startswith(prefix)]


def assert_no_start(state: ConfluenceState) -> None:
    assert state.controls.requests
    assert not [r for r in state.controls.requests if "start" in r.query]


async def collect_pages(stream: AsyncIterator[Page]) -> list[list[str]]:
    return [[item.identifier for item in page] async for page in stream]


def check_pages(pages: list[list[str]], size: int, expected: set[str]) -> None:
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) == expected, "lost or extra items"
    assert all(len(page) == size for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= size


# ------------------------------------------------------------------------------ list


@pytest.mark.parametrize(("size", "space"), [(1, "HR"), (7, "HR"), (100, None), (250, "ENG")])
async def test_list_pages_every_page_once(size, space):
    state = fresh_state(n_pages=600, n_blogposts=60) if size == 1 else fresh_state()
    async with serve(make_app(state)) as origin:
        await _list_every_page_once(state, origin, size, space)


async def _list_every_page_once(state, origin, size, space):
    async with make_pages(origin, space=space) as repo:
        pages = await collect_pages(repo.list_pages(page_size=size))
    check_pages(pages, size, set(pages_of(state, space)))
    assert_no_start(state)
    listing = requests_to(state, "/wiki/api/v2/spaces/" if space else "/wiki/api/v2/pages")
    assert all(r.status == 200 for r in state.controls.requests)
    assert all(r.query["limit"] == str(size) for r in listing)
    assert all(r.query["status"] == "current" for r in listing)
    assert all(r.query["body-format"] == "storage" for r in listing)
    # v2 next links (/wiki/api/v2/...) were joined to the origin: no /wiki/wiki, no 404
    assert not [r for r in state.controls.requests if r.path.startswith("/wiki/wiki")]
    assert len(listing) == -(-len(pages_of(state, space)) // size)
    assert all("cursor" in r.query for r in listing[1:])


async def test_list_item_fields(state, origin):
    async with make_pages(origin, space="ENG") as repo:
        items = [item async for item in repo.list(page_size=250)]
    item = items[5]
    c = state.content[item.identifier]
    assert item.title == c.title
    assert item.kind == "page" and item.source == "confluence.pages"
    assert item.text is not None and item.url is not None
    assert item.text == html_to_text(c.body) and "<" not in item.text.replace("<tag>", "")
    assert "Hello world." in item.text
    assert item.url == f"{origin}/wiki/spaces/ENG/pages/{c.id}/" + item.url.rsplit("/", 1)[1]
    assert item.author == c.author_id
    assert abs(item.created_at - c.created_at) < timedelta(milliseconds=1)
    assert abs(item.updated_at - c.last_modified) < timedelta(milliseconds=1)


# ------------------------------------------------------------------------------ search


@pytest.mark.parametrize(
    ("size", "space", "query"), [(1, "HR", RARE), (7, "HR", WORD), (100, None, RARE)]
)
async def test_search_every_hit_once_by_cursor_links(state, origin, size, space, query):
    expected = matching(state, query, space)
    assert len(expected) > size
    async with make_pages(origin, space=space) as repo:
        pages = await collect_pages(repo.search_pages(query, page_size=size))
    check_pages(pages, size, expected)
    assert_no_start(state)
    searches = requests_to(state, "/wiki/rest/api/content/search")
    assert all(r.status == 200 for r in searches)
    assert "cursor" not in searches[0].query
    assert all("cursor" in r.query and r.query.get("next") == "true" for r in searches[1:])
    assert all(r.query["limit"] == str(min(size, 50)) for r in searches)
    assert all("body.storage" in r.query["expand"] for r in searches)


async def test_search_items_carry_plain_text_and_common_fields(state, origin):
    async with make_pages(origin, space="HR") as repo:
        found = [item async for item in repo.search(RARE, page_size=20)]
        listed = await repo.get(found[0].identifier)
    item = found[0]
    c = state.content[item.identifier]
    assert item.text == html_to_text(c.body)
    assert item.title is not None and item.text is not None
    assert set(analyze(RARE)) <= set(analyze(item.title + " " + item.text))
    for name in ("title", "text", "url", "author", "created_at", "updated_at", "kind"):
        assert getattr(item, name) == getattr(listed, name), name


async def test_search_cql_structure_and_escaping(state, origin):
    query = 'say "hi" C:\\temp (a AND b) OR c order by title'
    async with make_pages(origin, space="ENG") as repo:
        [_ async for _ in repo.search(query)]
    where = state.last_cql_ast.where
    assert isinstance(where, And)
    assert list(where.items) == [
        Clause("type", "=", "page"),
        Clause("space", "=", "ENG"),
        Clause("text", "~", query),
    ]
    assert state.last_cql_ast.order_by == ()


@pytest.fixture(scope="module")
def fuzz_site() -> Iterator[tuple[asyncio.Runner, ConfluenceState, Pages]]:
    """One server and one repository for every hypothesis example (sync: hypothesis drives
    the examples, each runs on this runner's loop)."""
    data = make_dataset(n_pages=150, n_blogposts=20, seed=5)
    with asyncio.Runner() as runner:
        server = serve(make_app(data))
        url = runner.run(server.__aenter__())
        repo = make_pages(url, space="OPS")
        try:
            yield runner, data, repo
        finally:
            runner.run(repo.aclose())
            runner.run(server.__aexit__(None, None, None))


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1).filter(str.strip))
@example('"')
@example("\\")
@example('a\\" OR type = blogpost OR text ~ "b')
@example('x" AND space = ENG order by title')
@example("'; \n\t\x00 \u2028 ✓ 😀")
def test_search_escaping_fuzz(fuzz_site, query):
    runner, data, repo = fuzz_site
    data.last_cql_ast = None

    async def first_page() -> None:
        stream = repo.search_pages(query, page_size=5)
        async for _ in stream:
            break
        await stream.aclose()

    runner.run(first_page())
    assert data.last_cql_ast is not None
    where = data.last_cql_ast.where
    assert isinstance(where, And)
    assert list(where.items) == [
        Clause("type", "=", "page"),
        Clause("space", "=", "OPS"),
        Clause("text", "~", query),
    ]
    assert data.last_cql_ast.order_by == ()


def test_cql_string_escapes():
    assert cql_string('a"b\\c') == '"a\\"b\\\\c"'
    assert cql_string("line\nbreak\ttab\x01") == '"line\\nbreak\\ttab\\u0001"'
    assert cql_string("café ✓") == '"café ✓"'


# ------------------------------------------------------------------------------ cursors


async def test_list_cursor_resumes_in_a_fresh_repository(state, origin):
    seen: list[str] = []
    async with make_pages(origin, space="OPS") as repo:
        stream = repo.list_pages(page_size=7)
        cursor = None
        async for page in stream:
            seen.extend(item.identifier for item in page)
            cursor = page.cursor
            if len(seen) >= 21:
                break
        await stream.aclose()
    assert cursor is not None
    async with make_pages(origin, space="OPS") as fresh:
        pages = await collect_pages(fresh.list_pages(page_size=7, cursor=cursor))
    ids = seen + [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) and set(ids) == set(pages_of(state, "OPS"))
    assert_no_start(state)


async def test_search_cursor_resumes_in_a_fresh_repository(state, origin):
    async with make_pages(origin, space="HR") as repo:
        stream = repo.search_pages(WORD, page_size=30)
        first = await anext(stream)
        await stream.aclose()  # cancels the prefetch of the next page
    assert first.cursor is not None
    state.controls.requests.clear()
    async with make_pages(origin, space="HR") as fresh:
        rest = await collect_pages(fresh.search_pages(WORD, page_size=30, cursor=first.cursor))
        with pytest.raises(asyncrepo.InvalidCursor):
            fresh.search_pages("other", cursor=first.cursor)
    ids = [i.identifier for i in first] + [i for page in rest for i in page]
    assert len(ids) == len(set(ids)) and set(ids) == matching(state, WORD, "HR")
    resumed = requests_to(state, "/wiki/rest/api/content/search")
    assert "cursor" in resumed[0].query  # resumed from the vendor's own link
    assert_no_start(state)


# ------------------------------------------------------------------------------ get


async def test_get_by_id_strict_type_and_scope(state, origin):
    page = next(c for c in pages_of(state, "ENG").values())
    blog = next(c for c in state.content.values() if c.type == "blogpost")
    other = next(c for c in pages_of(state, "HR").values())
    async with make_pages(origin) as repo:
        item = await repo.get(page.id)
        assert item.identifier == page.id and item.title == page.title
        assert item.text == html_to_text(page.body)
        with pytest.raises(ItemNotFound) as caught:
            await repo.get(blog.id)  # a blog post id asked of Pages
        assert caught.value.identifier == blog.id
        with pytest.raises(ItemNotFound):
            await repo.get("999999999")
        with pytest.raises(ItemNotFound):
            await repo.get("../spaces")
    async with make_pages(origin, space="ENG") as scoped:
        assert (await scoped.get(page.id)).identifier == page.id
        with pytest.raises(ItemNotFound, match="not in space"):
            await scoped.get(other.id)


# ------------------------------------------------------------------------------ space scope


async def test_space_key_resolved_once_and_unknown_space_is_configuration_error(state, origin):
    async with make_pages(origin, space="HR") as repo:
        listed = {item.identifier async for item in repo.list(page_size=250)}
        found = {item.identifier async for item in repo.search(RARE)}
        await repo.get(next(iter(listed)))
    assert listed == set(pages_of(state, "HR"))
    assert found == matching(state, RARE, "HR")
    lookups = [r for r in state.controls.requests if r.path == "/wiki/api/v2/spaces"]
    assert len(lookups) == 1 and lookups[0].query["keys"] == "HR"
    hr = state.space_by_key("HR")
    assert requests_to(state, f"/wiki/api/v2/spaces/{hr.id}/pages")
    async with make_pages(origin, space="NOPE") as repo:
        with pytest.raises(ConfigurationError, match="NOPE"):
            [_ async for _ in repo.list()]
        with pytest.raises(ConfigurationError, match="NOPE"):
            [_ async for _ in repo.search("x")]


# ------------------------------------------------------------------------------ archived


async def test_archived_excluded_by_default_and_included_when_asked(state, origin):
    archived = set(pages_of(state, "HR", statuses={"archived"}))
    current = set(pages_of(state, "HR"))
    assert archived
    async with make_pages(origin, space="HR") as repo:
        default = {i.identifier async for i in repo.list(page_size=250)}
        only = {i.identifier async for i in repo.list(page_size=250, status="archived")}
        both = {
            i.identifier async for i in repo.list(page_size=250, status=["current", "archived"])
        }
        found = {i.identifier async for i in repo.search("world", status="archived")}
        with pytest.raises(InvalidQuery):
            repo.list(status="bogus")
        with pytest.raises(UnsupportedOption):
            repo.search("world", status=["current", "trashed"])
        trashed = {i.identifier async for i in repo.list(page_size=250, status="trashed")}
        with pytest.raises(UnsupportedOption):
            repo.list(colour="red")
    assert default == current
    assert only == archived
    assert both == current | archived
    assert found == archived  # every body says "Hello world"
    assert trashed == set(pages_of(state, "HR", statuses={"trashed"}))


# ------------------------------------------------------------------------------ since, order


async def test_since_is_exact_for_list_and_search(state, origin):
    since = datetime(2023, 5, 17, 13, 42, 27, 500000, tzinfo=UTC)
    recent = {cid for cid, c in pages_of(state, "ENG").items() if c.last_modified >= since}
    assert 20 < len(recent) < len(pages_of(state, "ENG")) // 2
    async with make_pages(origin, space="ENG") as repo:
        listed = [i async for i in repo.list(since=since, page_size=10)]
        state.controls.requests.clear()
        found = {i.identifier async for i in repo.search("world", since=since)}
    assert {i.identifier for i in listed} == recent and len(listed) == len(recent)
    assert found == recent
    # the CQL literal is at or before since in every time zone (UTC-12 .. UTC+14)
    dates = [c for c in state.last_cql_ast.clauses() if c.field == "lastmodified"]
    assert dates == [Clause("lastmodified", ">=", "2023-05-16 23:42")]
    literal = datetime.strptime(dates[0].value, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert literal + timedelta(hours=12) <= since
    assert cql_date(since) == '"2023-05-16 23:42"'


async def test_list_since_stops_at_the_first_older_page(state, origin):
    since = datetime(2024, 6, 1, tzinfo=UTC)
    recent = {cid for cid, c in pages_of(state).items() if c.last_modified >= since}
    async with make_pages(origin) as repo:
        listed = {i.identifier async for i in repo.list(since=since, page_size=25)}
    assert listed == recent
    listing = requests_to(state, "/wiki/api/v2/pages")
    assert all(r.query["sort"] == "-modified-date" for r in listing)
    assert len(listing) <= len(recent) // 25 + 2  # not the whole site


async def test_order(state, origin):
    async with make_pages(origin, space="HR") as repo:
        newest = [i async for i in repo.list(order="-updated", page_size=50)]
        oldest = [i async for i in repo.search("world", order="created", page_size=50)]
        with pytest.raises(UnsupportedOption):
            repo.list(order="title")
    stamps = [i.updated_at for i in newest if i.updated_at is not None]
    assert len(stamps) == len(newest)
    assert stamps == sorted(stamps, reverse=True) and len(newest) == len(pages_of(state, "HR"))
    created = [i.created_at for i in oldest if i.created_at is not None]
    assert len(created) == len(oldest)
    assert created == sorted(created) and len(oldest) == len(pages_of(state, "HR"))
    assert state.last_cql_ast.order_by == (("created", "asc"),)


# ------------------------------------------------------------------------------ errors, retries


async def test_wrong_password_is_authentication_error_without_the_secret(state, origin):
    secret = "s3cr3t-wrong-token"
    repo = Pages(origin, DEFAULT_EMAIL, secret, retry=FAST)
    async with repo:
        with pytest.raises(AuthenticationError) as caught:
            [_ async for _ in repo.list()]
        with pytest.raises(AuthenticationError):
            [_ async for _ in repo.search("x")]
    error = caught.value
    assert error.status == 403
    for text in (str(error), repr(error), repr(repo), repr(repo.client)):
        assert secret not in text and DEFAULT_TOKEN not in text
    assert len(state.controls.requests) == 2  # not retried


async def test_other_403_is_permission_denied(state, origin):
    state.controls.inject(
        403, body={"message": "You are not allowed to view this space", "statusCode": 403}
    )
    async with make_pages(origin) as repo:
        with pytest.raises(PermissionDenied) as caught:
            [_ async for _ in repo.list()]
    assert not isinstance(caught.value, AuthenticationError)


async def test_flaky_search_500s_are_retried_to_completion(state, origin):
    state.flaky_500_rate = 0.3
    expected = matching(state, WORD, "HR")
    async with make_pages(origin, space="HR") as repo:
        found = [i.identifier async for i in repo.search(WORD, page_size=10)]
    assert len(found) == len(set(found)) and set(found) == expected
    searches = requests_to(state, "/wiki/rest/api/content/search")
    failures = [r for r in searches if r.status == 500]
    successes = [r for r in searches if r.status == 200]
    assert failures and len(failures) + len(successes) == len(searches)
    assert len(successes) == -(-len(expected) // 10)


async def test_injected_429_with_retry_after_zero_is_retried(state, origin):
    hr = state.space_by_key("HR")
    inject_rate_limit(state.controls, retry_after=0, times=2, path_prefix="/wiki/api/v2/spaces/")
    inject_rate_limit(state.controls, retry_after=0, path_prefix="/wiki/rest/api/content/search")
    async with make_pages(origin, space="HR") as repo:
        listed = {i.identifier async for i in repo.list(page_size=100)}
        found = {i.identifier async for i in repo.search(WORD, page_size=50)}
    assert listed == set(pages_of(state, "HR"))
    assert found == matching(state, WORD, "HR")
    listing = requests_to(state, f"/wiki/api/v2/spaces/{hr.id}/pages")
    assert [r.status for r in listing[:2]] == [429, 429]
    assert len(listing) == 2 + -(-len(listed) // 100)
    searches = requests_to(state, "/wiki/rest/api/content/search")
    assert searches[0].status == 429
    assert len(searches) == 1 + -(-len(found) // 50)


# ------------------------------------------------------------------------------ open, config


async def test_open_uri(state, origin, monkeypatch):
    port = urlsplit(origin).port
    repo = asyncrepo.open(
        f"confluence+http://127.0.0.1:{port}/wiki?space=ENG",
        username=DEFAULT_EMAIL,
        password=DEFAULT_TOKEN,
        retry=FAST,
    )
    assert isinstance(repo, Pages) and repo.space == "ENG"
    async with repo:
        ids = {i.identifier async for i in repo.list(page_size=250)}
    assert ids == set(pages_of(state, "ENG"))

    blogs = asyncrepo.open(
        f"confluence+http://127.0.0.1:{port}/wiki?space=ENG&type=blogpost",
        username=DEFAULT_EMAIL,
        api_token=DEFAULT_TOKEN,
    )
    assert isinstance(blogs, Blogs) and blogs.space == "ENG"
    await blogs.aclose()

    monkeypatch.setenv("CONFLUENCE_USERNAME", DEFAULT_EMAIL)
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", DEFAULT_TOKEN)
    spaces = asyncrepo.open(f"confluence+http://127.0.0.1:{port}/wiki?resource=spaces")
    assert isinstance(spaces, Spaces)
    async with spaces:
        assert {s.title async for s in spaces} == {s.name for s in state.spaces.values()}


def test_from_uri_configuration(monkeypatch):
    monkeypatch.delenv("CONFLUENCE_USERNAME", raising=False)
    monkeypatch.delenv("CONFLUENCE_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        asyncrepo.open("confluence+https://example.atlassian.net/wiki?space=ENG")
    assert "CONFLUENCE_USERNAME" in str(caught.value)
    assert "CONFLUENCE_API_TOKEN" in str(caught.value)
    creds = {"username": "a@example.com", "password": "tok"}
    repo = from_uri(urlsplit("confluence+https://example.atlassian.net"), dict(creds))
    assert isinstance(repo, Pages) and repo.client.base_url == "https://example.atlassian.net/wiki"
    root = from_uri(urlsplit("confluence+https://wiki.example.com/?resource=spaces"), dict(creds))
    assert isinstance(root, Spaces) and root.client.base_url == "https://wiki.example.com"
    for bad in (
        "confluence+https://example.atlassian.net/wiki?type=whiteboard",
        "confluence+https://example.atlassian.net/wiki?colour=red",
        "confluence+https://example.atlassian.net/wiki?resource=spaces&space=ENG",
        "confluence+https://a%40b.com:tok@example.atlassian.net/wiki",
    ):
        with pytest.raises(ConfigurationError):
            from_uri(urlsplit(bad), dict(creds))
    assert "tok" not in repr(repo) and "tok" not in repr(root)
    with pytest.raises(ConfigurationError):
        Pages("https://example.atlassian.net", "a@example.com", "")
    with pytest.raises(ConfigurationError):
        Pages("https://example.atlassian.net/confluence", "a@example.com", "t")
    same = Pages("https://example.atlassian.net/wiki/", "a@example.com", "t")
    assert same.client.base_url == "https://example.atlassian.net/wiki"


def test_capabilities():
    caps = Pages.capabilities.describe()
    assert caps["get"] == "native" and caps["search"] == "native" and caps["since"] == "native"
    assert caps["orders"] == ["-created", "-updated", "created", "updated"]
    assert caps["options"] == ["status"] and caps["max_page_size"] == 250
    assert asyncrepo.registry.get_class("confluence.pages") is Pages
    assert asyncrepo.registry.get_class("confluence.blogs") is Blogs
    assert asyncrepo.registry.get_class("confluence.spaces") is Spaces
