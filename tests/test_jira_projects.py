"""jira.projects against the fake Jira, in Cloud and Data Center modes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest

import asyncrepo
from asyncrepo import AuthenticationError, ItemNotFound, RetryPolicy
from asyncrepo.repositories.jira.projects import Projects
from tests.fakes._common import serve
from tests.fakes.jira import JiraState, make_app, make_dataset

USER, TOKEN = "me@example.com", "api-token-123"
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0)
N_PROJECTS = 123


class Site:
    def __init__(self, base: str, state: JiraState) -> None:
        self.base, self.state = base, state

    def projects(self, **kwargs: Any) -> Projects:
        kwargs.setdefault("retry", FAST)
        return Projects(self.base, USER, TOKEN, **kwargs)

    def paths(self) -> list[str]:
        return [r.path for r in self.state.controls.requests]


def _state(deployment: Literal["cloud", "datacenter"]) -> JiraState:
    state = make_dataset(30, deployment=deployment)
    for n in range(N_PROJECTS - len(state.projects)):
        state.add_project(f"P{n:03d}", name=f"Project number {n}")
    return state


@pytest.fixture(params=["cloud", "datacenter"])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    state = _state(request.param)
    async with serve(make_app(state)) as base:
        yield Site(base, state)


def by_key(state: JiraState) -> list[str]:
    return [p["id"] for p in sorted(state.projects, key=lambda p: p["key"])]


@pytest.mark.parametrize("page_size", [1, 7, 100, 500])
async def test_list_pages_lose_nothing(site: Site, page_size: int) -> None:
    async with site.projects() as repo:
        pages = [
            [item.identifier for item in page]
            async for page in repo.list_pages(page_size=page_size)
        ]
    ids = [i for page in pages for i in page]
    assert len(ids) == len(set(ids)) == N_PROJECTS
    assert ids == by_key(site.state)
    assert all(len(page) == page_size for page in pages[:-1])
    paths = site.paths()
    assert paths.count("/rest/api/2/serverInfo") == 1
    if site.state.deployment == "cloud":
        vendor = min(page_size, 100)
        assert paths.count("/rest/api/3/project/search") == -(-N_PROJECTS // vendor)
        assert "/rest/api/2/project" not in paths
    else:
        assert paths.count("/rest/api/2/project") == 1  # a plain array: one page
        assert not [p for p in paths if p.startswith("/rest/api/3/")]


async def test_cursor_resumes_in_a_fresh_repository(site: Site) -> None:
    async with site.projects() as first:
        pages = first.list_pages(page_size=10)
        head = [await anext(pages), await anext(pages)]
        await pages.aclose()
    cursor = head[1].cursor
    assert cursor is not None
    async with site.projects() as second:
        rest = [
            item.identifier
            async for page in second.list_pages(page_size=10, cursor=cursor)
            for item in page
        ]
    assert [i.identifier for page in head for i in page] + rest == by_key(site.state)


async def test_get_by_id_and_key_and_common_fields(site: Site) -> None:
    project = site.state.project("ENG")
    assert project is not None
    async with site.projects() as repo:
        by_key_item = await repo.get("ENG")
        by_id_item = await repo.get(project["id"])
        with pytest.raises(ItemNotFound):
            await repo.get("NOPE")
        with pytest.raises(ItemNotFound):
            await repo.get("99999")
    assert by_key_item.identifier == by_id_item.identifier == project["id"]
    assert by_key_item.title == "Engineering"
    assert by_key_item.raw["key"] == "ENG"
    assert by_key_item.url == f"{site.base}/browse/ENG"
    assert by_key_item.text == project["description"]
    assert by_key_item.author == project["lead"]["displayName"]
    assert by_key_item.kind == "project"


async def test_naive_search(site: Site) -> None:
    async with site.projects() as repo:
        found = [item.raw["key"] async for item in repo.search("ENGINEERING")]
        assert found == ["ENG"]
        found = [item.raw["key"] async for item in repo.search('"Project number 11"')]
    assert found == ["P011", *(f"P{n}" for n in range(110, 120))]


async def test_wrong_password(site: Site) -> None:
    secret = "wrong-secret-value"
    async with Projects(site.base, USER, secret, retry=FAST) as repo:
        with pytest.raises(AuthenticationError) as caught:
            [item async for item in repo.list()]
    for text in (str(caught.value), repr(caught.value), repr(repo)):
        assert secret not in text


async def test_open_projects(site: Site) -> None:
    uri = site.base.replace("http://", "jira+http://") + "?resource=projects"
    async with asyncrepo.open(uri, username=USER, password=TOKEN) as repo:
        assert isinstance(repo, Projects)
        ids = [item.identifier async for item in repo.list()]
    assert ids == by_key(site.state)


def test_capabilities() -> None:
    caps = Projects.capabilities
    assert (caps.get, caps.search, caps.since, caps.orders) == (
        "native",
        "naive",
        None,
        frozenset(),
    )
    assert caps.max_page_size == 100
    assert asyncrepo.registry.get_class("jira.projects") is Projects
