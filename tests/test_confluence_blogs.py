"""confluence.blogs against the fake Confluence Cloud (tests/fakes/confluence.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest

from asyncrepo import InvalidQuery, ItemNotFound, RetryPolicy, UnsupportedOption
from asyncrepo.convert import html_to_text
from asyncrepo.repositories.confluence.blogs import Blogs
from tests.fakes._common import serve
from tests.fakes.confluence import (
    DEFAULT_EMAIL,
    DEFAULT_TOKEN,
    And,
    Clause,
    ConfluenceState,
    Content,
    analyze,
    make_app,
    make_dataset,
)

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, attempts=8)


@functools.cache
def dataset() -> ConfluenceState:
    return make_dataset(n_pages=2000, n_blogposts=300, seed=11)


@pytest.fixture
def state() -> ConfluenceState:
    base = dataset()
    state = ConfluenceState(
        users=base.users, people=base.people, spaces=base.spaces, content=base.content
    )
    state._text_cache = base._text_cache
    return state


@pytest.fixture
async def origin(state: ConfluenceState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def make_blogs(origin: str, space: str | None = None) -> Blogs:
    return Blogs(origin, DEFAULT_EMAIL, DEFAULT_TOKEN, space=space, retry=FAST)


def blogs_of(
    state: ConfluenceState, space: str | None = None, status: str = "current"
) -> dict[str, Content]:
    return {
        c.id: c
        for c in state.content.values()
        if c.type == "blogpost" and c.status == status and (space is None or c.space_key == space)
    }


def assert_no_start(state: ConfluenceState) -> None:
    assert state.controls.requests
    assert not [r for r in state.controls.requests if "start" in r.query]


@pytest.mark.parametrize(("size", "space"), [(1, "HR"), (7, None), (100, "ENG")])
async def test_list_every_blog_post_once(state, origin, size, space):
    async with make_blogs(origin, space) as repo:
        pages = [[i.identifier for i in page] async for page in repo.list_pages(page_size=size)]
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) and set(ids) == set(blogs_of(state, space))
    assert all(len(page) == size for page in pages[:-1])
    assert_no_start(state)
    assert all(r.status == 200 for r in state.controls.requests)
    prefix = "/wiki/api/v2/spaces/" if space else "/wiki/api/v2/blogposts"
    listing = [
        r for r in state.controls.requests if r.path.startswith(prefix) and r.query.get("limit")
    ]
    assert len(listing) == -(-len(ids) // size)
    assert all("cursor" in r.query for r in listing[1:])


async def test_blog_item_fields_and_search(state, origin):
    async with make_blogs(origin, "ENG") as repo:
        listed = {i.identifier: i async for i in repo.list(page_size=250)}
        found = [i async for i in repo.search("world", page_size=20)]
    assert {i.identifier for i in found} == set(blogs_of(state, "ENG"))
    assert len(found) == len(listed)
    assert state.last_cql_ast is not None
    assert isinstance(state.last_cql_ast.where, And)
    assert list(state.last_cql_ast.where.items) == [
        Clause("type", "=", "blogpost"),
        Clause("space", "=", "ENG"),
        Clause("text", "~", "world"),
    ]
    for item in found[:10]:
        c = state.content[item.identifier]
        twin = listed[item.identifier]
        assert item.kind == twin.kind == "blogpost"
        assert item.text == twin.text == html_to_text(c.body)
        assert item.text is not None and "world" in analyze(item.text)
        assert item.url is not None
        assert item.url == twin.url and "/wiki/spaces/ENG/blog/" in item.url
        assert item.author == twin.author == c.author_id
        assert item.created_at == twin.created_at and item.updated_at == twin.updated_at
    assert_no_start(state)


async def test_get_is_strict_on_type_and_space(state, origin):
    blog = next(iter(blogs_of(state, "OPS").values()))
    page = next(c for c in state.content.values() if c.type == "page" and c.status == "current")
    async with make_blogs(origin) as repo:
        item = await repo.get(blog.id)
        assert item.title == blog.title and item.kind == "blogpost"
        with pytest.raises(ItemNotFound):
            await repo.get(page.id)  # a page id asked of Blogs
    async with make_blogs(origin, "ENG") as scoped:
        with pytest.raises(ItemNotFound, match="not in space"):
            await scoped.get(blog.id)


async def test_trashed_only_when_asked(state, origin):
    trashed = set(blogs_of(state, status="trashed"))
    assert trashed
    async with make_blogs(origin) as repo:
        listed = {i.identifier async for i in repo.list(page_size=250, status="trashed")}
        with pytest.raises(UnsupportedOption):
            repo.search("world", status="trashed")  # CQL's contentStatuses cannot
        default = {i.identifier async for i in repo.list(page_size=250)}
        with pytest.raises(InvalidQuery):
            repo.list(status="archived")  # blog posts cannot be archived
    assert listed == trashed
    assert default == set(blogs_of(state))
