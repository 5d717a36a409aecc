"""github.code against the fake GitHub (tests/fakes/github.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiolimiter import AsyncLimiter

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    RetryPolicy,
    UnsupportedOption,
)
from asyncrepo.repositories.github.code import Code
from tests.fakes._common import serve
from tests.fakes.github import (
    GitHubState,
    make_app,
    make_dataset,
    primary_rate_limit_fault,
)

TOKEN = "ghp_testtoken"
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, rate_limit_floor=0.05, jitter=0.0)


class CountingLimiter(AsyncLimiter):
    def __init__(self) -> None:
        super().__init__(1000, 1)
        self.acquired = 0

    async def acquire(self, amount: float = 1) -> None:
        self.acquired += 1
        await super().acquire(amount)


@pytest.fixture
def state() -> GitHubState:
    return make_dataset(300, seed=0)


@pytest.fixture
async def base(state: GitHubState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def code(base: str, login_or_token: str | None = None, /, **kwargs: Any) -> Code:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("search_limiter", AsyncLimiter(1000, 1))
    return Code(login_or_token, base_url=base, **kwargs)


async def collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in iterator]


def files_with(state: GitHubState, owner: str, word: str) -> set[str]:
    return {
        f"{r.full_name}/{path}"
        for r in state.repos_of(owner)
        if not r.fork
        for path, data in r.files.items()
        if word.encode() in data and b"\0" not in data
    }


async def test_search_scoped_to_an_org(state, base) -> None:
    limiter = CountingLimiter()
    async with code(base, TOKEN, org="acme", search_limiter=limiter) as repo:
        items = await collect(repo.search("fetch_items", page_size=7))
    ids = [i.identifier for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == files_with(state, "acme", "fetch_items")
    assert all(i.author == "acme" and i.kind == "file" for i in items)
    item = items[0]
    owner, _name, path = item.identifier.split("/", 2)
    assert owner == "acme"
    assert item.title == path == item.raw["path"] and item.text is None
    assert item.url == item.raw["html_url"] and item.raw["sha"]
    requests = state.controls.requests
    assert requests[0].query["q"] == '"fetch_items" org:acme'
    assert {r.path for r in requests} == {"/search/code"}
    assert limiter.acquired == len(requests) > 1  # every search page through the limiter


async def test_search_scoped_to_a_repository_with_qualifiers(state, base) -> None:
    record = state.repos[0]
    async with code(base, TOKEN, repo=record.full_name) as repo:
        items = await collect(repo.search("using extension:md user:hubot"))
    assert state.controls.requests[0].query["q"] == (
        f'"using" extension:md "user:hubot" repo:{record.full_name}'
    )
    assert all(i.identifier.startswith(record.full_name + "/") for i in items)


async def test_get_decodes_text_and_leaves_binary_alone(state, base) -> None:
    record = state.repos[0]
    limiter = CountingLimiter()
    async with code(base, TOKEN, org="acme", search_limiter=limiter) as repo:
        readme = await repo.get(f"{record.full_name}/README.md")
        assert readme.text == record.files["README.md"].decode()
        assert readme.identifier == f"{record.full_name}/README.md"
        assert readme.url == readme.raw["html_url"] and readme.author == "acme"
        logo = await repo.get(f"{record.full_name}/assets/logo.png")
        assert logo.text is None and logo.raw["encoding"] == "base64"
        source = next(p for p in record.files if p.startswith("src/"))
        assert (await repo.get(f"{record.full_name}/{source}")).text == (
            record.files[source].decode()
        )
        for missing in (
            f"{record.full_name}/nope.txt",
            f"{record.full_name}/src",  # a directory
            f"{record.full_name}/../x",
            "acme/only-two-parts",
        ):
            with pytest.raises(ItemNotFound):
                await repo.get(missing)
        hubot = state.repos_of("hubot")[0]
        before = len(state.controls.requests)
        with pytest.raises(ItemNotFound):
            await repo.get(f"{hubot.full_name}/README.md")  # outside the scope
        assert len(state.controls.requests) == before
    assert limiter.acquired == 0  # the contents API is not code search
    assert state.controls.requests[0].path == f"/repos/{record.full_name}/contents/README.md"


async def test_search_then_get(state, base) -> None:
    async with code(base, TOKEN, user="octocat") as repo:
        items = await collect(repo.search("fetch_items"))
        assert items
        got = await repo.get(items[0].identifier)
    assert got.identifier == items[0].identifier and "fetch_items" in (got.text or "")


async def test_list_is_unsupported_and_queries_are_checked(base) -> None:
    async with code(base, TOKEN, org="acme") as repo:
        with pytest.raises(UnsupportedOption, match="search"):
            repo.list()
        with pytest.raises(UnsupportedOption):
            repo.list_pages()
        with pytest.raises(InvalidQuery):
            repo.search('"\\"')
        with pytest.raises(UnsupportedOption):
            repo.search("x", order="-updated")
    with pytest.raises(ConfigurationError):
        Code(TOKEN, user="a", repo="b/c")
    with pytest.raises(ConfigurationError):
        Code(TOKEN, repo="not a repo")


async def test_code_search_needs_a_token(base) -> None:
    async with code(base, org="acme") as repo:
        with pytest.raises(AuthenticationError):
            await collect(repo.search("fetch_items"))


async def test_search_rate_limit_is_waited_out(state, base) -> None:
    primary_rate_limit_fault(state, reset_in=0.2, resource="code_search", path_prefix="/search/")
    async with code(base, TOKEN, org="acme") as repo:
        items = await collect(repo.search("fetch_items"))
    assert items
    assert [r.status for r in state.controls.requests[:2]] == [403, 200]


async def test_search_pages_and_cursor(state, base) -> None:
    state.code_search_limit = 1000  # GitHub's 10 a minute would make this test wait
    expected = files_with(state, "acme", "fetch_items")
    async with code(base, TOKEN, org="acme") as repo:
        pages = repo.search_pages("fetch_items", page_size=5)
        first = await anext(pages)
        await pages.aclose()
        assert first.cursor
        async with code(base, TOKEN, org="acme") as fresh:
            rest = await collect(
                fresh.search_pages("fetch_items", page_size=5, cursor=first.cursor)
            )
    ids = [i.identifier for i in first] + [i.identifier for p in rest for i in p]
    assert len(ids) == len(set(ids)) and set(ids) == expected


async def test_open_code_uris(state, base, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    repo = asyncrepo.open(
        "github://code/orgs/acme", base_url=base, retry=FAST, search_limiter=AsyncLimiter(100, 1)
    )
    assert isinstance(repo, Code) and repo.org == "acme"
    async with repo:
        items = await collect(repo.search("fetch_items"))
    assert {i.identifier for i in items} == files_with(state, "acme", "fetch_items")
    assert state.controls.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    for uri, attr, value in (
        ("github://code/users/octocat", "user", "octocat"),
        ("github://code/repos/acme/x", "repo", "acme/x"),
    ):
        other = asyncrepo.open(uri)
        assert isinstance(other, Code) and getattr(other, attr) == value
    assert isinstance(asyncrepo.open("github://code"), Code)
    with pytest.raises(ConfigurationError):
        asyncrepo.open("github://code/teams/x")
