"""confluence.spaces against the fake Confluence Cloud (tests/fakes/confluence.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from asyncrepo import AuthenticationError, ItemNotFound, RetryPolicy
from asyncrepo.repositories.confluence.spaces import Spaces
from tests.fakes._common import serve
from tests.fakes.confluence import (
    DEFAULT_EMAIL,
    DEFAULT_TOKEN,
    ConfluenceState,
    inject_rate_limit,
    make_app,
    make_dataset,
)

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, attempts=8)
KEYS = ("ENG", "OPS", "HR", "DOC", "ARC", "SALES", "LEGAL")


@pytest.fixture
def state() -> ConfluenceState:
    state = make_dataset(n_pages=60, n_blogposts=5, spaces=KEYS, seed=3)
    archive = state.space_by_key("ARC")
    assert archive is not None
    archive.status = "archived"
    return state


@pytest.fixture
async def origin(state: ConfluenceState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def make_spaces(origin: str, password: str = DEFAULT_TOKEN) -> Spaces:
    return Spaces(origin, DEFAULT_EMAIL, password, retry=FAST)


@pytest.mark.parametrize("size", [1, 2, 100])
async def test_list_every_space_once(state, origin, size):
    async with make_spaces(origin) as repo:
        pages = [[i.title for i in page] async for page in repo.list_pages(page_size=size)]
    names = [n for page in pages for n in page]
    expected = {s.name for s in state.spaces.values() if s.status == "current"}
    assert len(names) == len(set(names)) and set(names) == expected
    assert all(len(page) == size for page in pages[:-1])
    listing = [r for r in state.controls.requests if r.path == "/wiki/api/v2/spaces"]
    assert len(listing) == -(-len(expected) // size)
    assert all(r.status == 200 and r.query["status"] == "current" for r in listing)
    assert all("cursor" in r.query for r in listing[1:])
    assert not [r for r in state.controls.requests if "start" in r.query]


async def test_archived_spaces_when_asked(state, origin):
    async with make_spaces(origin) as repo:
        archived = {i.title async for i in repo.list(status="archived")}
        every = {i.title async for i in repo.list(status=["current", "archived"])}
    assert archived == {"Arc"}
    assert every == {s.name for s in state.spaces.values()}


async def test_space_fields_get_by_id_or_key(state, origin):
    eng = state.space_by_key("ENG")
    async with make_spaces(origin) as repo:
        by_id = await repo.get(str(eng.id))
        by_key = await repo.get("ENG")
        with pytest.raises(ItemNotFound):
            await repo.get("NOPE")
        with pytest.raises(ItemNotFound):
            await repo.get("4242")
        listed = {i.identifier: i async for i in repo.list()}
    assert by_id.identifier == by_key.identifier == str(eng.id)
    for item in (by_id, by_key, listed[str(eng.id)]):
        assert item.title == "Engineering" and item.kind == "space"
        assert item.text == "The Engineering space"
        assert item.url == f"{origin}/wiki/spaces/ENG"
        assert item.author == eng.author_id
        assert item.created_at == eng.created_at
        assert item.raw["key"] == "ENG"


async def test_naive_search_and_client_since(state, origin):
    cutoff = sorted(s.created_at for s in state.spaces.values() if s.status == "current")[3]
    async with make_spaces(origin) as repo:
        found = [i.raw["key"] async for i in repo.search("human resources")]
        by_key = [i.raw["key"] async for i in repo.search("LEGAL")]
        recent = {i.raw["key"] async for i in repo.list(since=cutoff)}
    assert found == ["HR"] and by_key == ["LEGAL"]
    assert recent == {
        s.key for s in state.spaces.values() if s.status == "current" and s.created_at >= cutoff
    }
    assert cutoff > datetime(2015, 1, 1, tzinfo=UTC)


async def test_wrong_token_and_rate_limit(state, origin):
    secret = "wrong-token-value"
    repo = make_spaces(origin, password=secret)
    async with repo:
        with pytest.raises(AuthenticationError) as caught:
            await repo.get("ENG")
    assert secret not in str(caught.value) + repr(caught.value) + repr(repo)
    inject_rate_limit(state.controls, retry_after=0, times=3, path_prefix="/wiki/api/v2/spaces")
    state.controls.requests.clear()
    async with make_spaces(origin) as repo:
        keys = {i.raw["key"] async for i in repo.list()}
    assert len(keys) == 6
    assert [r.status for r in state.controls.requests] == [429, 429, 429, 200]
