"""The fake GitHub speaks GitHub's protocol: checked over the wire with raw aiohttp."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.fakes._common import serve
from tests.fakes.github import (
    GitHubState,
    exhaust_rate_limit,
    make_app,
    make_dataset,
    primary_rate_limit_fault,
    secondary_rate_limit_fault,
    server_error_fault,
)

TOKEN = "ghp_testtoken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def state() -> GitHubState:
    return make_dataset(300, seed=0)


@pytest.fixture
async def api(state: GitHubState) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with serve(make_app(state)) as base, aiohttp.ClientSession() as session:
        yield base, session


async def fetch(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with session.get(url, **kwargs) as response:
        body = await response.read()
        data = await response.json() if body else None
        return response.status, data, response.headers


def links(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("Link", "").split(","):
        if not part.strip():
            continue
        url, _, rel = part.partition(";")
        out[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip()[1:-1]
    return out


def public(state: GitHubState, owner: str) -> list[Any]:
    return [r for r in state.repos_of(owner) if not r.private]


async def test_user_repos_link_headers_and_following_next(state, api) -> None:
    base, session = api
    expected = sorted(public(state, "octocat"), key=lambda r: r.full_name.lower())
    assert len(expected) > 14
    status, items, headers = await fetch(session, f"{base}/users/octocat/repos?per_page=7")
    assert status == 200 and len(items) == 7
    rels = links(headers)
    assert set(rels) == {"next", "last"}
    # GitHub rewrites the username into the account id, keeps the caller's parameters.
    assert rels["next"] == f"{base}/user/583231/repos?per_page=7&page=2"
    assert (
        rels["last"] == f"{base}/user/583231/repos?per_page=7&page={math.ceil(len(expected) / 7)}"
    )
    assert headers["Link"].startswith(f'<{base}/user/583231/repos?per_page=7&page=2>; rel="next", ')

    seen: list[str] = [r["full_name"] for r in items]
    url: str | None = rels["next"]
    last_headers = headers
    while url:
        status, items, last_headers = await fetch(session, url)
        assert status == 200 and 0 < len(items) <= 7
        seen += [r["full_name"] for r in items]
        url = links(last_headers).get("next")
    assert seen == [r.full_name for r in expected]  # every repo once, sorted by full_name
    final = links(last_headers)
    assert set(final) == {"prev", "first"}
    assert final["first"].endswith("per_page=7&page=1")


async def test_single_page_has_no_link_and_minimal_repository_shape(state, api) -> None:
    base, session = api
    status, items, headers = await fetch(session, f"{base}/users/hubot/repos?per_page=100")
    assert status == 200 and "Link" not in headers
    assert len(items) == len(public(state, "hubot"))
    item = items[0]
    for key in (
        "id",
        "node_id",
        "name",
        "full_name",
        "private",
        "owner",
        "html_url",
        "description",
        "fork",
        "url",
        "created_at",
        "updated_at",
        "pushed_at",
        "language",
        "stargazers_count",
        "visibility",
        "default_branch",
        "topics",
    ):
        assert key in item
    assert item["owner"]["login"] == "hubot" and item["owner"]["type"] == "User"
    assert item["url"] == f"{base}/repos/{item['full_name']}"
    assert item["html_url"] == f"https://github.com/{item['full_name']}"
    assert "permissions" not in item  # anonymous caller
    datetime.strptime(item["created_at"], "%Y-%m-%dT%H:%M:%SZ")


async def test_org_repos_sort_and_link_path(state, api) -> None:
    base, session = api
    status, items, headers = await fetch(session, f"{base}/orgs/acme/repos?per_page=50")
    assert status == 200
    created = [i["created_at"] for i in items]
    assert created == sorted(created, reverse=True)  # default sort=created, desc
    assert all(i["owner"]["login"] == "acme" for i in items)
    assert links(headers)["next"] == f"{base}/organizations/9919001/repos?per_page=50&page=2"
    status, _, _ = await fetch(session, f"{base}/orgs/octocat/repos")  # a user, not an org
    assert status == 404


async def test_get_repo_and_not_found(state, api) -> None:
    base, session = api
    repo = state.repos[0]
    status, data, headers = await fetch(session, f"{base}/repos/{repo.full_name.upper()}")
    assert status == 200 and data["id"] == repo.id and data["full_name"] == repo.full_name
    assert "subscribers_count" in data and data["organization"]["login"] == "acme"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    status, data, _ = await fetch(session, f"{base}/repos/octocat/no-such-repo")
    assert status == 404
    assert data == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
        "status": "404",
    }
    private = next(r for r in state.repos if r.private and r.owner.login == "acme")
    status, _, _ = await fetch(session, f"{base}/repos/{private.full_name}")
    assert status == 404  # hidden from anonymous callers
    status, data, _ = await fetch(session, f"{base}/repos/{private.full_name}", headers=AUTH)
    assert status == 200 and data["private"] is True and data["permissions"]["admin"] is True


async def test_search_cap_at_1000_results() -> None:
    state = make_dataset(1300, seed=1)
    async with serve(make_app(state)) as base, aiohttp.ClientSession() as session:
        url = f"{base}/search/repositories?q=created%3A%3E2000-01-01&per_page=100"
        status, data, headers = await fetch(session, url, headers=AUTH)
        assert status == 200
        total = data["total_count"]
        assert total > 1000 and data["incomplete_results"] is False
        assert len(data["items"]) == 100 and all("score" in i for i in data["items"])
        # Never beyond result 1000; the caller's other parameters are kept as sent.
        assert links(headers)["last"].startswith(f"{base}/search/repositories?q=created")
        assert links(headers)["last"].endswith("&per_page=100&page=10")
        status, data, headers = await fetch(session, f"{url}&page=10", headers=AUTH)
        assert status == 200 and len(data["items"]) == 100
        assert "next" not in links(headers) and "last" not in links(headers)
        status, data, _ = await fetch(session, f"{url}&page=11", headers=AUTH)
        assert status == 422
        assert data == {
            "message": "Only the first 1000 search results are available",
            "documentation_url": "https://docs.github.com/v3/search/",
            "status": "422",
        }
        # At 30 a page, page 34 (results 991-1020) is served, page 35 starts past the cap.
        url30 = f"{base}/search/repositories?q=created%3A%3E2000-01-01"
        _, data, headers = await fetch(session, url30, headers=AUTH)
        assert links(headers)["last"].endswith("&page=34")
        status, data, _ = await fetch(session, f"{url30}&page=34", headers=AUTH)
        assert status == 200 and len(data["items"]) == 30
        status, _, _ = await fetch(session, f"{url30}&page=35", headers=AUTH)
        assert status == 422


async def test_search_scoping_never_leaks(state, api) -> None:
    base, session = api
    for qualifier, owner in (("user:octocat", "octocat"), ("org:acme", "acme")):
        q = f"{qualifier} created:>2000-01-01"
        status, data, _ = await fetch(
            session, f"{base}/search/repositories", params={"q": q, "per_page": "100"}
        )
        assert status == 200
        expected = [r for r in public(state, owner) if not r.fork]
        assert data["total_count"] == len(expected)
        assert {i["owner"]["login"] for i in data["items"]} == {owner}
    status, data, _ = await fetch(
        session, f"{base}/search/repositories", params={"q": "repo:acme/.github"}
    )
    assert data["total_count"] == 1 and data["items"][0]["full_name"] == "acme/.github"
    status, data, _ = await fetch(
        session, f"{base}/search/repositories", params={"q": "user:nobody-here"}
    )
    assert status == 422 and data["message"] == "Validation Failed"
    assert data["errors"][0]["code"] == "invalid" and data["errors"][0]["field"] == "q"
    status, data, _ = await fetch(session, f"{base}/search/repositories", params={"q": ""})
    assert status == 422 and data["errors"] == [
        {"resource": "Search", "field": "q", "code": "missing"}
    ]


async def test_search_free_text_and_created_ranges(state, api) -> None:
    base, session = api

    async def search(q: str) -> dict[str, Any]:
        status, data, _ = await fetch(
            session, f"{base}/search/repositories", params={"q": q, "per_page": "100"}
        )
        assert status == 200 and isinstance(data, dict)
        return data

    visible = [r for r in state.repos if not r.private and not r.fork]
    data = await search("LIBRARY org:acme")
    assert data["total_count"] > 0
    for item in data["items"]:
        assert "library" in (item["description"] or "").lower() or "library" in item["name"].lower()

    def epoch(text: str) -> int:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())

    cases = {
        "created:2015-01-01..2015-12-31": lambda t: (
            epoch("2015-01-01T00:00:00Z") <= t < epoch("2016-01-01T00:00:00Z")
        ),
        "created:>=2020-01-01": lambda t: t >= epoch("2020-01-01T00:00:00Z"),
        "created:>2020-01-01": lambda t: t >= epoch("2020-01-02T00:00:00Z"),
        "created:<2014-06-01T12:00:00Z": lambda t: t < epoch("2014-06-01T12:00:00Z"),
        "created:<=2014-06-01": lambda t: t < epoch("2014-06-02T00:00:00Z"),
    }
    for q, keep in cases.items():
        data = await search(f"org:acme {q}")
        expected = [r for r in visible if r.owner.login == "acme" and keep(r.created_at)]
        assert data["total_count"] == len(expected), q
        assert data["total_count"] > 0, q


async def test_rate_limit_headers_decrement_then_403(state, api) -> None:
    base, session = api
    state.core_limit_unauthenticated = 3
    remaining = []
    for _ in range(3):
        status, _, headers = await fetch(session, f"{base}/users/octocat")
        assert status == 200
        assert headers["x-ratelimit-limit"] == "3" and headers["x-ratelimit-resource"] == "core"
        assert int(headers["x-ratelimit-reset"]) > time.time()
        assert headers["x-github-request-id"]
        remaining.append(int(headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    assert headers["x-ratelimit-used"] == "3"
    status, data, headers = await fetch(session, f"{base}/users/octocat")
    assert status == 403 and headers["x-ratelimit-remaining"] == "0"
    assert data["message"].startswith("API rate limit exceeded for ")
    assert data["documentation_url"].startswith("https://docs.github.com/rest/")
    # /rate_limit is free and reports the same numbers; search has its own bucket.
    status, data, _ = await fetch(session, f"{base}/rate_limit")
    assert status == 200 and data["resources"]["core"]["remaining"] == 0
    assert data["rate"] == data["resources"]["core"]
    status, _, headers = await fetch(session, f"{base}/search/repositories?q=fast")
    assert status == 200 and headers["x-ratelimit-resource"] == "search"
    assert headers["x-ratelimit-limit"] == "10"
    # An authenticated caller has its own 5000/h bucket.
    status, _, headers = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 200 and headers["x-ratelimit-limit"] == "5000"


async def test_conditional_request_304_does_not_spend_quota(state, api) -> None:
    base, session = api
    url = f"{base}/repos/{state.repos[0].full_name}"
    status, _, headers = await fetch(session, url, headers=AUTH)
    etag = headers["ETag"]
    assert status == 200 and etag.startswith('W/"')
    before = int(headers["x-ratelimit-remaining"])
    async with session.get(url, headers={**AUTH, "If-None-Match": etag}) as response:
        assert response.status == 304
        assert await response.read() == b""
        assert int(response.headers["x-ratelimit-remaining"]) == before
        assert response.headers["ETag"] == etag
    status, _, headers = await fetch(session, url, headers={**AUTH, "If-None-Match": '"other"'})
    assert status == 200 and int(headers["x-ratelimit-remaining"]) == before - 1


async def test_bad_token_and_requires_authentication(api) -> None:
    base, session = api
    status, data, headers = await fetch(
        session, f"{base}/users/octocat", headers={"Authorization": "token nope"}
    )
    assert status == 401
    assert data == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    assert "x-ratelimit-limit" in headers
    status, data, _ = await fetch(session, f"{base}/user/repos")
    assert status == 401 and data["message"] == "Requires authentication"
    status, data, _ = await fetch(session, f"{base}/user/repos?per_page=100", headers=AUTH)
    assert status == 200 and {r["owner"]["login"] for r in data} <= {"octocat", "acme"}
    assert all("permissions" in r for r in data)


async def test_contents_base64(state, api) -> None:
    base, session = api
    repo = state.repos[0]
    url = f"{base}/repos/{repo.full_name}/contents/README.md"
    status, data, _ = await fetch(session, url)
    assert status == 200 and data["type"] == "file" and data["encoding"] == "base64"
    lines = data["content"].split("\n")
    assert lines[-1] == "" and all(len(line) <= 60 for line in lines)
    assert base64.b64decode(data["content"]) == repo.files["README.md"]
    assert data["size"] == len(repo.files["README.md"])
    assert data["path"] == "README.md" and len(data["sha"]) == 40
    assert data["_links"]["self"] == data["url"]
    binary = repo.files["assets/logo.png"]
    status, data, _ = await fetch(
        session, f"{base}/repos/{repo.full_name}/contents/assets/logo.png"
    )
    assert status == 200 and base64.b64decode(data["content"]) == binary
    status, data, _ = await fetch(session, f"{base}/repos/{repo.full_name}/contents")
    assert status == 200 and {e["name"] for e in data} >= {"README.md", "src", "assets"}
    status, data, _ = await fetch(session, f"{base}/repos/{repo.full_name}/contents/nope.txt")
    assert status == 404 and data["message"] == "Not Found"


async def test_code_search(state, api) -> None:
    base, session = api
    status, data, _ = await fetch(session, f"{base}/search/code", params={"q": "fetch_items"})
    assert status == 401 and data["message"] == "Requires authentication"
    status, data, headers = await fetch(
        session, f"{base}/search/code", params={"q": "fetch_items org:acme"}, headers=AUTH
    )
    assert status == 200 and data["total_count"] > 0
    assert headers["x-ratelimit-resource"] == "code_search"
    assert headers["x-ratelimit-limit"] == "10"
    item = data["items"][0]
    assert {"name", "path", "sha", "url", "git_url", "html_url", "repository", "score"} <= set(item)
    assert {i["repository"]["owner"]["login"] for i in data["items"]} == {"acme"}
    status, content, _ = await fetch(session, item["url"], headers=AUTH)
    assert status == 200 and b"fetch_items" in base64.b64decode(content["content"])


async def test_canned_faults(state, api) -> None:
    base, session = api
    reset = primary_rate_limit_fault(state, reset_in=1.0)
    status, data, headers = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 403 and headers["x-ratelimit-remaining"] == "0"
    assert headers["x-ratelimit-reset"] == str(reset)
    assert data["message"].startswith("API rate limit exceeded for user ID 583231")
    secondary_rate_limit_fault(state, retry_after=2)
    status, data, headers = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 403 and headers["retry-after"] == "2"
    assert data["message"].startswith("You have exceeded a secondary rate limit")
    server_error_fault(state, 503)
    status, _, _ = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 503
    status, _, _ = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 200
    bucket = exhaust_rate_limit(state, "core")
    status, _, _ = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 403
    bucket.reset = 0  # the window ends: the bucket refills
    status, _, headers = await fetch(session, f"{base}/users/octocat", headers=AUTH)
    assert status == 200 and headers["x-ratelimit-remaining"] == "4999"


def test_dataset_is_deterministic_and_scales() -> None:
    start = time.perf_counter()
    big = make_dataset(5000, seed=3)
    assert time.perf_counter() - start < 2.0
    assert len(big.repos) == 5000
    again = make_dataset(500, seed=3)
    assert [r.full_name for r in again.repos] == [
        r.full_name for r in make_dataset(500, seed=3).repos
    ]
    years = {datetime.fromtimestamp(r.created_at, UTC).year for r in big.repos}
    assert len(years) >= 10
    assert any(c in r.name for r in big.repos for c in "-_.")


async def test_more_than_the_concurrent_limit_is_a_secondary_rate_limit() -> None:
    import asyncio

    from tests.fakes.github import make_app, make_dataset

    state = make_dataset(20, seed=0)
    state.max_concurrent_requests = 3
    state.latency = 0.5
    async with serve(make_app(state)) as url, aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer ghp_testtoken"}

        async def one() -> tuple[int, Any, Any]:
            async with session.get(f"{url}/rate_limit", headers=headers) as free:
                assert free.status == 200  # /rate_limit is outside the count
            async with session.get(f"{url}/users/octocat/repos", headers=headers) as response:
                return response.status, response.headers.copy(), await response.json()

        answers = await asyncio.gather(*(one() for _ in range(5)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200, 200, 200, 403, 403]
    assert state.secondary_limit_hits == 2 and state.peak_in_flight == 3
    for status, headers_, body in answers:
        if status == 403:
            assert headers_["retry-after"] == "60"
            assert int(headers_["x-ratelimit-remaining"]) > 0
            assert body["message"].startswith("You have exceeded a secondary rate limit")
