"""GitHub page concurrency: capped per token, following the rate-limit headers (the fake
GitHub's real headers), one page at a time after a secondary rate limit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from asyncrepo import ConfigurationError, RetryPolicy
from asyncrepo.repositories.github import _client
from asyncrepo.repositories.github._client import GitHubClient
from asyncrepo.repositories.github.code import Code
from asyncrepo.repositories.github.repos import Repos
from asyncrepo.wire import Response
from tests.fakes._common import serve
from tests.fakes.github import GitHubState, make_app, make_dataset, secondary_rate_limit_fault

TOKEN = "ghp_testtoken"
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, rate_limit_floor=0.05, jitter=0.0)


@pytest.fixture
def state() -> GitHubState:
    return make_dataset(400, seed=0)


class Gauge:
    """The most requests the server had in flight at once (each held ``hold`` seconds)."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold
        self.in_flight = self.peak = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold)
            return await handler(request)
        finally:
            self.in_flight -= 1


async def list_acme(state: GitHubState, **kwargs: Any) -> tuple[int, Gauge, Repos]:
    gauge = Gauge()
    app = make_app(state)
    app.middlewares.insert(0, gauge.middleware)
    async with serve(app) as url:
        repo = Repos(TOKEN, org="acme", base_url=url, retry=FAST, **kwargs)
        async with repo:
            count = len([item async for item in repo.list(page_size=10)])
    return count, gauge, repo


def expected(state: GitHubState) -> int:
    return len([r for r in state.repos_of("acme") if state.can_see(r, "octocat")])


async def test_plenty_of_requests_left_uses_the_cap_and_never_more(state) -> None:
    count, gauge, repo = await list_acme(state, page_concurrency=5)
    assert count == expected(state) and count > 60  # 7 pages or more after the first
    assert gauge.peak == 5
    assert repo.client.rate_remaining["core"] > 4000


async def test_few_requests_left_means_fewer_pages_at_once(state) -> None:
    state.core_limit_authenticated = 260  # 259 left after the first page: 2 at once
    count, gauge, _ = await list_acme(state, page_concurrency=8)
    assert count == expected(state)
    assert gauge.peak == 2


async def test_after_a_secondary_limit_pages_come_one_at_a_time(state) -> None:
    secondary_rate_limit_fault(state, retry_after=1)  # the first page is refused once
    count, gauge, repo = await list_acme(state, page_concurrency=8)
    assert count == expected(state)
    assert gauge.peak == 1
    statuses = [r.status for r in state.controls.requests]
    assert statuses[0] == 403 and set(statuses[1:]) == {200}
    assert repo.client.secondary_limited_at is not None


def response(headers: dict[str, str], status: int = 200, body: bytes = b"{}") -> Response:
    return Response(status, headers, "https://api.github.com/x", "GET", body, "github.repos")


def test_the_limit_follows_the_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    client = GitHubClient(source="github.repos", token=TOKEN)
    assert client.page_concurrency(8) == 8  # nothing seen yet: the cap
    for remaining, limit in [(5000, 8), (800, 8), (799, 7), (350, 3), (199, 1), (0, 1)]:
        client.classify(response({"X-RateLimit-Remaining": str(remaining)}))
        assert client.page_concurrency(8) == limit, remaining
    # per resource: the search bucket's 30 a minute do not slow the core listing down
    client.classify(response({"x-ratelimit-remaining": "5000", "x-ratelimit-resource": "core"}))
    client.classify(response({"X-RateLimit-Remaining": "29", "X-RateLimit-Resource": "search"}))
    assert (client.page_concurrency(8), client.page_concurrency(8, "search")) == (8, 1)
    client.classify(response({"X-RateLimit-Remaining": "lots"}))  # ignored
    assert client.page_concurrency(8) == 8
    # a secondary limit: one at a time for SECONDARY_COOLDOWN, then back to the headers
    body = b'{"message": "You have exceeded a secondary rate limit."}'
    assert client.classify(response({"X-RateLimit-Remaining": "4999"}, 403, body)) is not None
    assert client.page_concurrency(8) == 1
    later = time.monotonic() + _client.SECONDARY_COOLDOWN + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert client.page_concurrency(8) == 8


def test_page_concurrency_is_checked() -> None:
    bad: Any
    for bad in (0, 101, True, 2.5, "4"):
        with pytest.raises(ConfigurationError, match="page_concurrency"):
            Repos(TOKEN, org="acme", page_concurrency=bad)
        with pytest.raises(ConfigurationError, match="page_concurrency"):
            Code(TOKEN, org="acme", page_concurrency=bad)
    assert Repos(TOKEN).page_concurrency == _client.DEFAULT_PAGE_CONCURRENCY == 8


async def test_the_default_cap_stays_clear_of_the_fakes_secondary_limit(state) -> None:
    state.latency = 0.02  # every answer takes 20 ms, counted by the fake itself
    count, _, repo = await list_acme(state)
    assert count == expected(state)
    assert state.secondary_limit_hits == 0 and repo.client.secondary_limited_at is None
    assert 2 <= state.peak_in_flight <= _client.DEFAULT_PAGE_CONCURRENCY


async def test_a_concurrency_secondary_limit_drops_the_listing_to_one_page(state) -> None:
    state.latency = 0.05
    state.max_concurrent_requests = 3  # a stricter GitHub than the cap of 8 expects
    state.secondary_retry_after = 1
    count, _, repo = await list_acme(state, page_concurrency=8)
    assert count == expected(state)  # refused pages were retried
    assert state.secondary_limit_hits >= 1
    assert repo.client.secondary_limited_at is not None
    assert repo.client.page_concurrency(8) == 1
