"""Jenkins jobs (``jenkins.jobs``) against the fake Jenkins (tests/fakes/jenkins.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidCursor,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RetryPolicy,
)
from asyncrepo.registry import get_class
from asyncrepo.repositories.jenkins.builds import Builds
from asyncrepo.repositories.jenkins.jobs import Jobs
from tests.fakes._common import serve
from tests.fakes.jenkins import FOLDER, JenkinsState, Job, make_app, make_dataset

USER, TOKEN = "admin", "api-token-admin"
FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)


@pytest.fixture
def state() -> JenkinsState:
    return make_dataset()


@pytest.fixture
async def base(state: JenkinsState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def walk(jobs: list[Job]) -> list[str]:
    out: list[str] = []
    for job in jobs:
        out.append(job.full_name)
        out.extend(walk(job.children))
    return out


def api_requests(state: JenkinsState) -> list[Any]:
    return [r for r in state.controls.requests if r.path.endswith("/api/json")]


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_list_pages_walks_folders_without_loss_or_duplicate(state, base, page_size) -> None:
    async with Jobs(base, USER, TOKEN) as jobs:
        pages = await collect(jobs.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(walk(state.jobs))
    assert all(len(page) == page_size for page in pages[:-1])
    # Every request names its fields and ranges the top level by the page size.
    for logged in api_requests(state):
        tree = logged.query["tree"]
        assert tree.startswith("jobs[_class,name,fullName,")
        assert tree.endswith("}") and "jobs[name]{0,1}" in tree
        low, high = tree.rsplit("{", 1)[1].rstrip("}").split(",")
        assert int(high) - int(low) == page_size
    assert all(
        logged.headers["Authorization"].startswith("Basic ") for logged in api_requests(state)
    )


async def test_items_carry_the_common_fields(state, base) -> None:
    async with Jobs(base, USER, TOKEN) as jobs:
        items = {item.identifier: item async for item in jobs.list()}
    big = items["big"]
    assert big.kind == "freestyle" and big.title == "big" and big.text == "the job with many builds"
    assert big.url == f"{base}/job/big/"
    newest = state.jobs[0].builds[0]
    assert big.updated_at == datetime.fromtimestamp(newest.timestamp / 1000, UTC)
    assert items["team"].kind == "folder" and "jobs" not in items["team"].raw
    assert items["app"].kind == "multibranch"
    branch = items["app/feature%2Flogin"]
    assert branch.kind == "pipeline" and branch.title == "app » feature/login"
    assert branch.url == f"{base}/job/app/job/feature%252Flogin/"
    assert items["team/inner/deep job"].title == "Team » inner » deep job"
    assert items["empty"].updated_at is None


async def test_levels_one_lists_every_folder_by_a_request_of_its_own(state, base) -> None:
    async with Jobs(base, USER, TOKEN, levels=1) as jobs:
        ids = [item.identifier async for item in jobs.list()]
    assert sorted(ids) == sorted(walk(state.jobs))
    paths = sorted({r.path for r in api_requests(state)})
    # the root, then each folder with jobs; the empty folder is never asked (the probe)
    assert paths == [
        "/api/json",
        "/job/app/api/json",
        "/job/team/api/json",
        "/job/team/job/inner/api/json",
    ]


async def test_depth_bound_lists_deep_folders_but_not_their_jobs(state, base) -> None:
    async with Jobs(base, USER, TOKEN, max_depth=2) as jobs:
        ids = [item.identifier async for item in jobs.list()]
    assert "team/inner" in ids and "team/inner/deep job" not in ids
    assert "team/lint" in ids and "app/main" in ids


async def test_a_folder_nested_without_end_is_cut_at_the_depth_bound(state, base) -> None:
    deepest = Job("loop", FOLDER)
    state.jobs.append(deepest)
    for i in range(30):
        deepest = deepest.add(Job(f"level{i}", FOLDER))
    deepest.add(Job("leaf", FOLDER))
    async with Jobs(base, USER, TOKEN, levels=2, max_depth=10) as jobs:
        ids = [item.identifier async for item in jobs.list()]
    loop = [i for i in ids if i.startswith("loop")]
    assert len(loop) == 10  # depths 1..10


async def test_folder_scope_and_cursor_resume(state, base) -> None:
    async with Jobs(base, USER, TOKEN, folder="team") as jobs:
        ids = [item.identifier async for item in jobs.list()]
        assert sorted(ids) == [
            "team/inner",
            "team/inner/deep job",
            "team/inner/empty-folder",
            "team/lint",
        ]
        with pytest.raises(ItemNotFound):
            await jobs.get("big")
        assert (await jobs.get("team/lint")).identifier == "team/lint"
    async with Jobs(base, USER, TOKEN) as jobs:
        first = await anext(jobs.list_pages(page_size=5))
        rest = await collect(jobs.list_pages(page_size=5, cursor=first.cursor))
        again = [i.identifier for i in first] + [i.identifier for p in rest for i in p]
        assert sorted(again) == sorted(walk(state.jobs)) and len(again) == len(set(again))
    async with Jobs(base, USER, TOKEN, folder="team") as other:
        with pytest.raises(InvalidCursor):
            await collect(other.list_pages(cursor=first.cursor))


async def test_get_by_full_name(state, base) -> None:
    async with Jobs(base, USER, TOKEN) as jobs:
        item = await jobs.get("team/inner/deep job")
        assert item.identifier == "team/inner/deep job" and item.kind == "pipeline"
        assert (await jobs.get("app/feature%2Flogin")).title == "app » feature/login"
        with pytest.raises(ItemNotFound) as caught:
            await jobs.get("team/nope")
        assert caught.value.status == 404 and caught.value.identifier == "team/nope"
        with pytest.raises(ItemNotFound):
            await jobs.get("a//b")
    last = state.controls.requests[-1]
    assert last.path == "/job/team/job/nope/api/json" and "tree" in last.query


async def test_search_is_naive_and_since_client_side(state, base) -> None:
    async with Jobs(base, USER, TOKEN) as jobs:
        found = [i.identifier async for i in jobs.search("staging")]
        assert found == ["deploy"]
        cut = datetime.fromtimestamp(state.jobs[2].builds[0].timestamp / 1000, UTC)
        recent = {i.identifier async for i in jobs.list(since=cut)}
    assert "deploy" in recent and "big" in recent
    assert "team/lint" not in recent  # its last build started before
    assert "empty" in recent  # never built: no date, kept


# -- errors and hostile servers -----------------------------------------------------------


async def test_errors_are_mapped(state, base) -> None:
    async with Jobs(base, USER, "wrong-token", retry=FAST) as jobs:
        with pytest.raises(AuthenticationError) as caught:
            await collect(jobs.list())
        assert "wrong-token" not in str(caught.value) and "wrong-token" not in repr(jobs)
        assert caught.value.status == 401
    state.users["reader"] = "t"
    state.no_read.add("reader")
    async with Jobs(base, "reader", "t", retry=FAST) as jobs:
        with pytest.raises(PermissionDenied) as denied:
            await collect(jobs.list())
        assert "Overall/Read" in (denied.value.vendor_message or "")
    async with Jobs(base, retry=FAST) as anonymous:
        with pytest.raises(AuthenticationError, match="needs credentials"):
            await collect(anonymous.list())
    state.anonymous_read = True
    async with Jobs(base, retry=FAST) as anonymous:
        assert len(await collect(anonymous.list())) == len(walk(state.jobs))


async def test_a_server_that_ignores_ranges_is_refused(state, base) -> None:
    state.range_mode = "ignore"
    async with Jobs(base, USER, TOKEN) as jobs:
        with pytest.raises(MalformedResponse, match="ignores tree ranges"):
            await collect(jobs.list(page_size=5))


async def test_a_server_that_sends_the_same_jobs_for_every_range_is_refused(state, base) -> None:
    state.range_mode = "stuck"
    async with Jobs(base, USER, TOKEN) as jobs:
        with pytest.raises(MalformedResponse):
            await collect(jobs.list(page_size=3))


async def test_malformed_json_is_our_error(state, base) -> None:
    state.controls.inject(200, body="{not json", path_prefix="/api/json")
    async with Jobs(base, USER, TOKEN) as jobs:
        with pytest.raises(MalformedResponse):
            await collect(jobs.list())
    state.controls.inject(200, body={"jobs": [{"nameless": 1}]}, path_prefix="/api/json")
    async with Jobs(base, USER, TOKEN) as jobs:
        with pytest.raises(MalformedResponse):
            await collect(jobs.list())


# -- URIs and registry ------------------------------------------------------------------


async def test_uris_and_registry(base, monkeypatch) -> None:
    assert get_class("jenkins.jobs") is Jobs and get_class("jenkins.builds") is Builds
    host = base.split("://", 1)[1]
    repo = asyncrepo.open(f"jenkins+http://{host}/ci?folder=team", username=USER, api_token=TOKEN)
    assert isinstance(repo, Jobs) and repo.folder == "team" and repo.base_url == f"{base}/ci"
    assert TOKEN not in repr(repo)
    await repo.aclose()
    monkeypatch.setenv("JENKINS_USER", USER)
    monkeypatch.setenv("JENKINS_API_TOKEN", TOKEN)
    repo = asyncrepo.open(f"jenkins+http://{host}?resource=builds&job=team/lint")
    assert isinstance(repo, Builds) and repo.job == "team/lint"
    assert len(await collect(repo.list())) == 5
    await repo.aclose()
    with pytest.raises(ConfigurationError):
        asyncrepo.open("jenkins+https://user:secret@ci.example.com")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("jenkins+https://ci.example.com?resource=nodes")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("jenkins+https://ci.example.com?job=x")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("jenkins+https://ci.example.com?bogus=1")
