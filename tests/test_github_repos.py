"""github.repos against the fake GitHub (tests/fakes/github.py)."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    RateLimited,
    RetryPolicy,
    UnsupportedOption,
)
from asyncrepo.cursors import seal
from asyncrepo.repositories.github.repos import Repos
from tests.fakes._common import serve
from tests.fakes.github import (
    GitHubState,
    _parse_query,
    exhaust_rate_limit,
    make_app,
    make_dataset,
    primary_rate_limit_fault,
    secondary_rate_limit_fault,
    server_error_fault,
)

TOKEN = "ghp_testtoken"
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, rate_limit_floor=0.05, jitter=0.0)


@pytest.fixture
def state() -> GitHubState:
    return make_dataset(400, seed=0)


@pytest.fixture
async def base(state: GitHubState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def repos(base: str, login_or_token: str | None = None, /, **kwargs: Any) -> Repos:
    kwargs.setdefault("retry", FAST)
    return Repos(login_or_token, base_url=base, **kwargs)


def visible(state: GitHubState, owner: str, login: str | None = "octocat") -> set[str]:
    return {r.full_name for r in state.repos_of(owner) if state.can_see(r, login)}


def epoch_of(stamp: datetime) -> float:
    return stamp.timestamp()


def wall(at: float) -> float:
    """A ``LoggedRequest.at`` (monotonic) as wall-clock time."""
    return at + (time.time() - time.monotonic())


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in iterator]


# -- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [7, 100])
async def test_list_org_every_repository_once(state, base, page_size) -> None:
    expected = visible(state, "acme")
    assert 200 < len(expected) <= 300
    async with repos(base, TOKEN, org="acme") as repo:
        pages = await collect(repo.list_pages(page_size=page_size))
    ids = [i.identifier for p in pages for i in p]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert all(len(p) == page_size for p in pages[:-1])
    per_page = {r.query.get("per_page") for r in state.controls.requests}
    assert per_page == {str(page_size)}


async def test_list_page_size_one_on_a_small_account(state, base) -> None:
    expected = visible(state, "hubot", None)  # /users/{u}/repos: public repositories
    async with repos(base, user="hubot") as repo:  # anonymous
        items = await collect(repo.list(page_size=1))
    assert [i.identifier for i in items] and len(items) == len(expected)
    assert {i.identifier for i in items} == expected
    assert state.controls.count("/") == len(expected)
    assert all("Authorization" not in r.headers for r in state.controls.requests)


async def test_300_repositories_in_three_requests(base) -> None:
    state = make_dataset(520, seed=4)
    acme = [r for r in state.repos if r.owner.login == "acme"]
    state.repos = [r for r in state.repos if r.owner.login != "acme"] + acme[:300]
    state.reindex()
    expected = visible(state, "acme")
    assert len(expected) == 300
    async with serve(make_app(state)) as url, repos(url, TOKEN, org="acme") as repo:
        items = await collect(repo.list())
    assert len(items) == len(expected) and {i.identifier for i in items} == expected
    assert len(state.controls.requests) == 3
    assert [r.status for r in state.controls.requests] == [200, 200, 200]


async def test_items_common_fields(state, base) -> None:
    async with repos(base, TOKEN, user="octocat") as repo:
        items = {i.identifier: i for i in await collect(repo.list())}
    for record in state.repos_of("octocat"):
        if record.private:
            continue
        item = items[record.full_name]
        assert item.title == record.full_name and item.text == record.description
        assert item.url == f"https://github.com/{record.full_name}"
        assert item.author == "octocat" and item.kind == "repository"
        assert epoch_of(item.created_at) == record.created_at
        assert epoch_of(item.updated_at) == max(record.updated_at, record.pushed_at)
        assert item.raw["full_name"] == record.full_name and item.source == "github.repos"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2011-01-26T19:01:12Z", datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)),
        ("2011-01-26T20:01:12+01:00", datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)),
        # No offset: UTC, never a naive datetime (``since`` compares with aware ones).
        ("2011-01-26T19:01:12", datetime(2011, 1, 26, 19, 1, 12, tzinfo=UTC)),
        (None, None),
    ],
)
def test_timestamps_are_timezone_aware(stamp: str | None, expected: datetime | None) -> None:
    repo = Repos("t", user="octocat", base_url="http://127.0.0.1:9")
    raw = {
        "full_name": "octocat/x",
        "owner": {"login": "octocat"},
        "created_at": stamp,
        "updated_at": stamp,
        "pushed_at": None,  # an empty repository was never pushed to
    }
    item = repo.to_item(raw)
    assert item.created_at == item.updated_at == expected
    if expected is not None:
        assert item.created_at is not None and item.created_at.tzinfo is not None


async def test_pages_are_fetched_concurrently_when_last_is_known(state) -> None:
    app = make_app(state)
    in_flight = peak = 0

    @web.middleware
    async def gauge(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)
            return await handler(request)
        finally:
            in_flight -= 1

    app.middlewares.insert(0, gauge)
    async with serve(app) as url, repos(url, TOKEN, org="acme") as repo:
        items = await collect(repo.list(page_size=20))
    assert len(items) == len(visible(state, "acme"))
    assert peak >= 3  # several following pages were in flight at once
    requests = state.controls.requests
    assert requests[0].query.get("page") is None  # page 1 alone, then the rest at once
    assert [r.query["page"] for r in requests[1:]] == [str(n) for n in range(2, len(requests) + 1)]


async def test_cursor_resumes_in_a_fresh_object(state, base) -> None:
    expected = visible(state, "acme")
    async with repos(base, TOKEN, org="acme") as repo:
        pages = repo.list_pages(page_size=30)
        first = await anext(pages)
        second = await first.next_page()
        assert second is not None and second.cursor
        await pages.aclose()
    seen = [i.identifier for i in first] + [i.identifier for i in second]
    async with repos(base, TOKEN, org="acme") as fresh:
        rest = await collect(fresh.list_pages(page_size=45, cursor=second.cursor))
    seen += [i.identifier for p in rest for i in p]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    async with repos(base, TOKEN, org="umbrella") as other:
        with pytest.raises(InvalidCursor):
            await collect(other.list_pages(cursor=second.cursor))


async def test_a_cursor_cannot_send_the_token_elsewhere(state, base) -> None:
    async with repos(base, TOKEN, org="acme") as repo:
        pages = repo.list_pages(page_size=30)
        page = await anext(pages)
        await pages.aclose()
    assert page.cursor
    body = page.cursor.partition(".")[0]
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["s"].startswith(base)
    payload["s"] = payload["s"].replace(base, "http://evil.example")
    # Sealed with the key (as by someone who has it): the origin check still refuses it.
    forged = seal(orjson.dumps(payload), repo.cursor_key)
    before = len(state.controls.requests)
    async with repos(base, TOKEN, org="acme") as repo:
        with pytest.raises(InvalidCursor):
            await collect(repo.list_pages(page_size=30, cursor=forged))
    assert len(state.controls.requests) == before


async def test_orders(state, base) -> None:
    async with repos(base, TOKEN, org="acme") as repo:
        newest = await collect(repo.list(order="-updated"))
        oldest = await collect(repo.list(order="created"))
        with pytest.raises(UnsupportedOption):
            repo.list(order="stars")
    stamps = [i.raw["updated_at"] for i in newest]
    assert stamps == sorted(stamps, reverse=True)
    created = [i.created_at for i in oldest]
    assert created == sorted(created)
    assert state.controls.requests[0].query["sort"] == "updated"
    assert state.controls.requests[0].query["direction"] == "desc"


def _recent(state: GitHubState, owner: str, since: datetime) -> set[str]:
    cut = since.timestamp()
    return {
        r.full_name
        for r in state.repos_of(owner)
        if state.can_see(r, "octocat") and max(r.updated_at, r.pushed_at, r.created_at) >= cut
    }


async def test_since_stops_early_and_misses_nothing(state, base) -> None:
    # Make some repositories pushed after their last update: only pass 2 finds them.
    cutoff = datetime(2025, 3, 1, tzinfo=UTC)
    pushed_only = [r for r in state.repos_of("acme") if r.updated_at < cutoff.timestamp()][:5]
    for r in pushed_only:
        r.pushed_at = int(cutoff.timestamp()) + 3600
    expected = _recent(state, "acme", cutoff)
    assert {r.full_name for r in pushed_only} <= expected
    async with repos(base, TOKEN, org="acme") as repo:
        items = await collect(repo.list(since=cutoff, page_size=10))
    ids = [i.identifier for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert all(i.updated_at >= cutoff for i in items)
    requests = state.controls.requests
    total_pages = math.ceil(len(visible(state, "acme")) / 10)
    assert len(requests) < total_pages  # stopped early
    assert [r.query.get("sort") for r in requests if "sort" in r.query] == (
        ["updated"] * sum(1 for r in requests if r.query.get("sort") == "updated")
        + ["pushed"] * sum(1 for r in requests if r.query.get("sort") == "pushed")
    )


async def test_since_with_an_order_filters(state, base) -> None:
    since = datetime(2024, 6, 1, tzinfo=UTC)
    async with repos(base, TOKEN, org="acme") as repo:
        items = await collect(repo.list(since=since, order="-created", page_size=20))
        pages = await collect(repo.list_pages(since=since, order="-created", page_size=3))
    assert {i.identifier for i in items} == _recent(state, "acme", since)
    created = [i.created_at for i in items]
    assert created == sorted(created, reverse=True)
    assert [i.identifier for p in pages for i in p] == [i.identifier for i in items]


async def test_token_listing_needs_a_token(state, base) -> None:
    async with repos(base, TOKEN) as mine:
        items = await collect(mine.list())
    owned = {r.full_name for r in state.repos_of("octocat")} | {
        r.full_name for r in state.repos_of("acme")
    }
    assert {i.identifier for i in items} == owned
    assert state.controls.requests[0].path == "/user/repos"
    async with repos(base) as anonymous:
        with pytest.raises(ConfigurationError):
            await collect(anonymous.list())


# -- get --------------------------------------------------------------------------------------


async def test_get_and_not_found(state, base) -> None:
    async with repos(base, TOKEN) as repo:
        item = await repo.get("OCTOCAT/OCTOCAT.GITHUB.IO")
        assert item.identifier == "octocat/octocat.github.io" and item.author == "octocat"
        with pytest.raises(ItemNotFound) as info:
            await repo.get("octocat/no-such-repo")
        assert info.value.status == 404 and info.value.identifier == "octocat/no-such-repo"
        for bad in ("octocat", "a/b/c", "../x", "octocat/..", ""):
            with pytest.raises(ItemNotFound):
                await repo.get(bad)
        hubot = next(r for r in state.repos_of("hubot") if not r.private)
        assert (await repo.get(hubot.full_name)).identifier == hubot.full_name  # no scope


async def test_get_outside_the_scope_is_not_found(state, base) -> None:
    hubot = next(r for r in state.repos_of("hubot") if not r.private)
    async with repos(base, TOKEN, org="acme") as repo:
        with pytest.raises(ItemNotFound):
            await repo.get(hubot.full_name)
        assert state.controls.requests == []  # refused without asking GitHub
        mine = await repo.get("ACME/.github")
        assert mine.identifier == "acme/.github"


async def test_fifty_concurrent_gets_share_one_session(state, base, monkeypatch) -> None:
    sessions = 0
    original = aiohttp.ClientSession.__init__

    def counting(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        nonlocal sessions
        sessions += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", counting)
    names = sorted(r.full_name for r in state.repos if state.can_see(r, "octocat"))[:50]
    async with repos(base, TOKEN) as repo:
        items = await asyncio.gather(*(repo.get(n) for n in names))
    assert [i.identifier for i in items] == names
    assert sessions == 1 and len(state.controls.requests) == 50


# -- search -----------------------------------------------------------------------------------


async def test_search_is_scoped_and_includes_forks(state, base) -> None:
    async with repos(base, TOKEN, user="hubot") as repo:
        items = await collect(repo.search("library", page_size=5))
    assert items and all(i.author == "hubot" for i in items)
    assert len({i.identifier for i in items}) == len(items)
    q = state.controls.requests[0].query["q"]
    assert q == '"library" user:hubot fork:true'
    forks = [r for r in state.repos_of("hubot") if r.fork and "library" in (r.description or "")]
    if forks:
        assert {r.full_name for r in forks} <= {i.identifier for i in items}


async def test_search_refuses_order_and_empty_text(base) -> None:
    async with repos(base, TOKEN, org="acme") as repo:
        with pytest.raises(UnsupportedOption):
            repo.search("x", order="-updated")
        with pytest.raises(InvalidQuery):
            repo.search('"" \\')


async def test_search_qualifiers_that_narrow_pass_through(state, base) -> None:
    async with repos(base, TOKEN, org="acme") as repo:
        assert repo.search_query("fast language:Go -deprecated user:hubot OR (x)") == (
            '"fast" language:Go -deprecated "user:hubot" "OR" "(x)" org:acme fork:true'
        )
        items = await collect(repo.search("language:Go"))
    expected = {r.full_name for r in state.repos_of("acme") if r.language == "Go"}
    assert {i.identifier for i in items} == expected


_PIECES = st.sampled_from(
    [
        "user:hubot",
        "org:umbrella",
        "-user:octocat",
        "-org:octocat",
        "repo:hubot/x",
        "user:",
        " OR ",
        " NOT ",
        " AND ",
        '"',
        "\\",
        "(",
        ")",
        '"user:hubot"',
        "fork:only",
        "is:private",
        "language:go",
        "-",
        "*",
        "..",
        ":",
        "library",
        "fast",
        " ",
    ]
)
_QUERIES = st.lists(_PIECES | st.text(max_size=4), min_size=1, max_size=8).map("".join)


@settings(max_examples=200, deadline=None)
@given(_QUERIES)
def test_escaped_queries_keep_the_scope(query: str) -> None:
    repo = Repos(user="octocat")
    if not query.strip():
        with pytest.raises(InvalidQuery):
            repo.search_query(query)
        return
    try:
        q = repo.search_query(query)
    except InvalidQuery:
        return
    parsed = _parse_query(q)
    assert parsed.users == ["octocat"]
    assert parsed.repos == [] and parsed.excluded == [] and parsed.fork == "true"
    assert q.endswith(" user:octocat fork:true")
    head = q.removesuffix(" user:octocat fork:true")
    # Every token of the caller's part is a quoted phrase, a narrowing qualifier or -word.
    for token in head.split('"'):
        assert "\\" not in token
    assert head.count('"') % 2 == 0


_SEARCH_STATE = make_dataset(300, seed=0)
_SEARCH_STATE.search_limit_authenticated = 1_000_000


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_QUERIES)
def test_search_never_leaks_outside_the_scope(query: str) -> None:
    async def run() -> None:
        async with serve(make_app(_SEARCH_STATE)) as url:
            for scope in ({"user": "octocat"}, {"org": "acme"}):
                async with repos(url, TOKEN, **scope) as repo:
                    try:
                        items = await collect(repo.search(query))
                    except InvalidQuery:
                        continue
                owner = next(iter(scope.values()))
                assert all(i.author == owner for i in items), query

    asyncio.run(run())


async def test_search_past_1000_results_is_split_by_creation_date() -> None:
    state = make_dataset(2600, seed=7)
    state.search_limit_authenticated = 100_000
    for r in state.repos:
        r.description = f"{r.description or ''} widget"
    expected = {r.full_name for r in state.repos if state.can_see(r, "octocat")}
    assert len(expected) > 2500
    async with serve(make_app(state)) as url, repos(url, TOKEN) as repo:
        items = await collect(repo.search("widget"))
        ids = [i.identifier for i in items]
        assert len(ids) == len(set(ids)) and set(ids) == expected
        assert all(r.status == 200 for r in state.controls.requests)  # never a 422
        queries = [r.query["q"] for r in state.controls.requests]
        assert queries[0] == '"widget" fork:true'
        assert any("created:" in q for q in queries)
        n_requests = len(state.controls.requests)
        assert n_requests <= math.ceil(len(expected) / 100) + 8


async def test_split_search_cursor_resumes_inside_its_slice(monkeypatch) -> None:
    # The same machinery with a cap of 100 (fake and connector), to keep it quick.
    state = make_dataset(400, seed=7)
    state.search_limit_authenticated = 100_000
    state.max_search_results = 100
    monkeypatch.setattr(Repos, "search_cap", 100)
    for r in state.repos[::2]:
        r.description = f"{r.description or ''} widget"
    expected = {r.full_name for r in state.repos_of("acme") if "widget" in (r.description or "")}
    assert len(expected) > 100
    async with serve(make_app(state)) as url, repos(url, TOKEN, org="acme") as repo:
        everything = await collect(repo.search("widget", page_size=10))
        assert sorted(i.identifier for i in everything) == sorted(expected)
        assert any("created:" in r.query["q"] for r in state.controls.requests)
        pages = repo.search_pages("widget", page_size=10)
        seen: list[str] = []
        page = None
        for _ in range(8):
            page = await anext(pages)
            seen += [i.identifier for i in page]
        await pages.aclose()
        assert page is not None and page.cursor
        async with repos(url, TOKEN, org="acme") as fresh:
            rest = await collect(fresh.search_pages("widget", page_size=10, cursor=page.cursor))
    seen += [i.identifier for p in rest for i in p]
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert all(r.status == 200 for r in state.controls.requests)


async def test_search_since_filters(state, base) -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    async with repos(base, TOKEN, org="acme") as repo:
        items = await collect(repo.search("library", since=since))
        everything = await collect(repo.search("library"))
    assert {i.identifier for i in items} == {
        i.identifier for i in everything if i.updated_at >= since
    }
    assert 0 < len(items) < len(everything)


# -- rate limits and retries ------------------------------------------------------------------


async def test_primary_rate_limit_waits_until_the_reset(state, base) -> None:
    reset = primary_rate_limit_fault(state, reset_in=0.2)
    async with repos(base, TOKEN) as repo:
        item = await repo.get("octocat/octocat.github.io")
    assert item.identifier == "octocat/octocat.github.io"
    first, retry = state.controls.requests
    assert first.status == 403 and retry.status == 200
    assert wall(retry.at) >= reset - 0.01


async def test_exhausted_bucket_waits_for_the_refill(state, base) -> None:
    bucket = exhaust_rate_limit(state, "core", reset_in=0.2)
    async with repos(base, TOKEN, org="acme") as repo:
        items = await collect(repo.list())
    assert len(items) == len(visible(state, "acme"))
    statuses = [r.status for r in state.controls.requests]
    assert statuses[0] == 403 and statuses.count(403) >= 1
    first_ok = next(r for r in state.controls.requests if r.status == 200)
    assert wall(first_ok.at) >= bucket.reset - 0.01


async def test_429_with_retry_after(state, base) -> None:
    state.controls.inject(429, headers={"Retry-After": "1"}, body={"message": "slow down"})
    async with repos(base, TOKEN) as repo:
        await repo.get("octocat/octocat.github.io")
    first, retry = state.controls.requests
    assert first.status == 429 and retry.status == 200
    assert retry.at - first.at >= 1.0


async def test_secondary_rate_limit_with_retry_after(state, base) -> None:
    secondary_rate_limit_fault(state, retry_after=1)
    async with repos(base, TOKEN) as repo:
        await repo.get("octocat/octocat.github.io")
    first, retry = state.controls.requests
    assert first.status == 403 and retry.status == 200
    assert retry.at - first.at >= 1.0


async def test_secondary_rate_limit_without_retry_after_backs_off_from_the_floor(
    state, base
) -> None:
    body = {
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits",
    }
    state.controls.inject(403, headers={"x-ratelimit-remaining": "4000"}, body=body, times=2)
    floor = 0.2
    retry = RetryPolicy(backoff=0.01, max_backoff=0.05, rate_limit_floor=floor, jitter=0.0)
    async with repos(base, TOKEN, retry=retry) as repo:
        await repo.get("octocat/octocat.github.io")
    a, b, c = state.controls.requests
    assert [a.status, b.status, c.status] == [403, 403, 200]
    assert b.at - a.at >= floor and c.at - b.at >= 2 * floor
    assert Repos().client.retry.rate_limit_floor == 60  # GitHub's default


@pytest.mark.parametrize("status", [502, 503])
async def test_server_errors_are_retried(state, base, status) -> None:
    server_error_fault(state, status, times=2)
    async with repos(base, TOKEN, org="acme") as repo:
        items = await collect(repo.list())
    assert len(items) == len(visible(state, "acme"))
    assert [r.status for r in state.controls.requests[:3]] == [status, status, 200]


async def test_a_reset_far_away_raises_at_once(state, base) -> None:
    reset = primary_rate_limit_fault(state, reset_in=3600)
    async with repos(base, TOKEN) as repo:
        with pytest.raises(RateLimited) as info:
            await repo.get("octocat/octocat.github.io")
    assert info.value.reset_at == datetime.fromtimestamp(reset, UTC)
    assert len(state.controls.requests) == 1


async def test_bad_token_never_shows(state, base, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "ghp_not_a_valid_token_0123456789"
    server_error_fault(state, 502)  # one retry, logged
    async with repos(base, secret, user="octocat") as repo:
        assert secret not in repr(repo) and secret not in repr(repo.client)
        with pytest.raises(AuthenticationError) as info:
            await collect(repo.list())
    error = info.value
    assert secret not in str(error) and secret not in repr(error)
    assert error.status == 401 and "Bad credentials" in str(error)
    assert state.controls.requests[1].headers["Authorization"] == f"Bearer {secret}"
    assert "retrying" in caplog.text and secret not in caplog.text


async def test_token_keyword_and_positional(state, base) -> None:
    async with repos(base, token=TOKEN, user="octocat") as repo:
        await repo.get("octocat/octocat.github.io")
    assert state.controls.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(ConfigurationError):
        Repos("a", token="b")
    with pytest.raises(ConfigurationError):
        Repos(user="octocat", org="acme")
    with pytest.raises(ConfigurationError):
        Repos(user="octo cat OR user:x")
    with pytest.raises(ConfigurationError):
        Repos(max_connections=101)


async def test_conditional_requests_with_the_cache(state, base) -> None:
    async with repos(base, TOKEN, org="acme", cache=True) as repo:
        first = await collect(repo.list())
        before = state.bucket("core", "octocat").remaining
        second = await collect(repo.list())
        after = state.bucket("core", "octocat").remaining
    assert [i.identifier for i in first] == [i.identifier for i in second]
    n = len(state.controls.requests) // 2
    replay = state.controls.requests[n:]
    assert [r.status for r in replay] == [304] * n
    assert all(r.headers.get("If-None-Match", "").startswith('W/"') for r in replay)
    assert after == before  # a 304 costs nothing


# -- URIs -------------------------------------------------------------------------------------


async def test_open_uri(state, base, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    repo = asyncrepo.open("github://users/octocat", base_url=base, retry=FAST)
    assert isinstance(repo, Repos) and repo.user == "octocat"
    async with repo:
        items = await collect(repo.list())
    assert {i.identifier for i in items} == visible(state, "octocat", None)
    assert state.controls.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    org = asyncrepo.open(f"github://orgs/acme?base_url={base}")
    assert isinstance(org, Repos) and org.org == "acme" and org.client.base_url == base
    mine = asyncrepo.open("github://user", token="explicit")
    assert isinstance(mine, Repos) and mine.owner is None
    assert mine.client.base_url == "https://api.github.com"
    monkeypatch.delenv("GITHUB_TOKEN")
    anonymous = asyncrepo.open("github://users/x")
    assert isinstance(anonymous, Repos) and not anonymous.client.authenticated
    for bad in ("github://users/octocat?token=x", "github://teams/x", "github://users"):
        with pytest.raises(ConfigurationError):
            asyncrepo.open(bad)
    for r in (org, mine):
        await r.aclose()
