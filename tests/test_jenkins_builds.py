"""Jenkins builds (``jenkins.builds``) against the fake Jenkins (tests/fakes/jenkins.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    ItemNotFound,
    MalformedResponse,
    RetryPolicy,
)
from asyncrepo.repositories.jenkins.builds import Builds
from tests.fakes._common import serve
from tests.fakes.jenkins import Build, JenkinsState, Job, make_app, make_dataset

USER, TOKEN = "admin", "api-token-admin"
FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)


@pytest.fixture
def state() -> JenkinsState:
    return make_dataset(n_builds=250)


@pytest.fixture
async def base(state: JenkinsState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def all_builds(jobs: list[Job]) -> list[str]:
    out: list[str] = []
    for job in jobs:
        out.extend(f"{job.full_name}#{b.number}" for b in job.builds)
        out.extend(all_builds(job.children))
    return out


def ranges(state: JenkinsState, path: str) -> list[tuple[int, int]]:
    out = []
    for logged in state.controls.requests:
        if logged.path == path:
            tree = logged.query["tree"]
            assert tree.startswith("allBuilds[number,url,result,timestamp,duration")
            found = re.search(r"allBuilds\[[^\]]*\]\{(\d+),(\d+)\}", tree)
            assert found, tree
            out.append((int(found.group(1)), int(found.group(2))))
    return out


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_one_job_paged_by_ranges(state, base, page_size) -> None:
    async with Builds(base, USER, TOKEN, job="big") as builds:
        pages = await collect(builds.list_pages(page_size=page_size))
    numbers = [int(item.identifier.split("#")[1]) for page in pages for item in page]
    assert numbers == list(range(250, 0, -1))  # newest first, none lost, none twice
    assert all(len(page) == page_size for page in pages[:-1])
    asked = ranges(state, "/job/big/api/json")
    assert asked[0] == (0, page_size)
    # the first range also asks for the first and last build numbers: 250 builds at most,
    # so the following ranges are planned (and fetched a few at once), each asked once
    first = next(r for r in state.controls.requests if r.path == "/job/big/api/json")
    assert first.query["tree"].endswith(",firstBuild[number],lastBuild[number]")
    expected = [(low, low + page_size) for low in range(0, 250, page_size)]
    if 250 % page_size == 0:  # the last planned range is full: one more range tells the end
        expected.append((250, 250 + page_size))
    assert sorted(asked) == expected


async def test_planned_ranges_are_fetched_concurrently(state, base) -> None:
    state.hold = 0.2  # long enough that ranges sent together are held together
    async with Builds(base, USER, TOKEN, job="big") as builds:
        items = await collect(builds.list(page_size=25))
    assert len(items) == 250
    assert 1 < state.max_in_flight <= Builds.page_concurrency


async def test_sparse_build_numbers_stop_at_the_first_short_range(state, base) -> None:
    # builds kept forever (#1, #2) far below the recent ones: the numbers promise 10,000
    # builds, the job has 52; the listing stops at the first short range
    job = state.jobs[0]
    job.builds = [b for b in job.builds if b.number > 200 or b.number <= 2]  # 50 + 2
    for b in job.builds:
        if b.number > 200:
            b.number += 9_750  # 9,951 .. 10,000
    async with Builds(base, USER, TOKEN, job="big") as builds:
        items = await collect(builds.list(page_size=20))
    assert [int(i.identifier.split("#")[1]) for i in items] == [*range(10_000, 9_950, -1), 2, 1]
    asked = ranges(state, "/job/big/api/json")
    assert len(asked) <= 3 + Builds.page_concurrency  # not the 500 ranges the numbers span


async def test_without_a_plan_ranges_go_one_by_one(state, base) -> None:
    # a cursor resumes mid-listing: no first/last numbers, so range after range
    async with Builds(base, USER, TOKEN, job="big") as builds:
        first = await anext(builds.list_pages(page_size=25))
    state.hold = 0.05
    async with Builds(base, USER, TOKEN, job="big") as builds:
        rest = await collect(builds.list_pages(page_size=25, cursor=first.cursor))
    assert sum(len(p) for p in rest) == 225
    assert state.max_in_flight == 1


async def test_build_items(state, base) -> None:
    async with Builds(base, USER, TOKEN, job="big") as builds:
        items = await collect(builds.list(page_size=3))
    newest, done = items[0], items[1]
    fake = state.jobs[0].builds
    assert newest.identifier == "big#250" and newest.raw["building"] is True
    assert newest.created_at == datetime.fromtimestamp(fake[0].timestamp / 1000, UTC)
    assert newest.updated_at == newest.created_at  # still running
    assert done.updated_at == datetime.fromtimestamp(
        (fake[1].timestamp + fake[1].duration) / 1000, UTC
    )
    assert done.title == "big #249" and done.url == f"{base}/job/big/249/" and done.kind == "build"
    described = next(i for i in items if i.identifier == "big#240")
    assert described.text == "build 240 of the nightly run"


async def test_since_is_native_with_early_stop(state, base) -> None:
    fake = state.jobs[0].builds
    since = datetime.fromtimestamp(fake[29].timestamp / 1000, UTC)
    async with Builds(base, USER, TOKEN, job="big") as builds:
        items = await collect(builds.list(page_size=10, since=since))
    assert [i.identifier for i in items] == [f"big#{n}" for n in range(250, 220, -1)]
    # three full pages, and the fourth holds the first older build: only the ranges
    # already in flight then (page_concurrency of them) are asked beyond it
    asked = sorted(ranges(state, "/job/big/api/json"))
    assert asked[:4] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert len(asked) <= 4 + Builds.page_concurrency


async def test_builds_started_between_pages_come_once(state, base) -> None:
    job = state.jobs[0]
    async with Builds(base, USER, TOKEN, job="big") as builds:
        stream = builds.list(page_size=10)
        seen = [(await anext(stream)).identifier for _ in range(10)]
        for number in (251, 252, 253):  # three new builds: every range shifts by three
            job.builds.insert(0, Build(number, job.builds[0].timestamp + 1000, 5, "SUCCESS"))
        seen += [item.identifier async for item in stream]
    assert len(seen) == len(set(seen)) == 250
    assert seen[-1] == "big#1"


async def test_cursor_resumes_in_a_fresh_repository(state, base) -> None:
    async with Builds(base, USER, TOKEN, job="big") as builds:
        first = await anext(builds.list_pages(page_size=7))
    async with Builds(base, USER, TOKEN, job="big") as builds:
        rest = await collect(builds.list_pages(page_size=7, cursor=first.cursor))
    ids = [i.identifier for i in first] + [i.identifier for p in rest for i in p]
    assert ids == [f"big#{n}" for n in range(250, 0, -1)]
    async with Builds(base, USER, TOKEN, job="deploy") as other:
        with pytest.raises(InvalidCursor):
            await collect(other.list_pages(cursor=first.cursor))


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_every_job(state, base, page_size) -> None:
    async with Builds(base, USER, TOKEN) as builds:
        pages = await collect(builds.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert sorted(ids) == sorted(all_builds(state.jobs)) and len(ids) == len(set(ids))
    assert all(len(page) == page_size for page in pages[:-1])
    # jobs never built and folders are not asked for builds
    asked = {r.path for r in state.controls.requests if "allBuilds" in r.query.get("tree", "")}
    assert "/job/empty/api/json" not in asked and "/job/team/api/json" not in asked
    assert "/job/app/job/feature%2Flogin/api/json" in asked


async def test_every_job_cursor_and_since(state, base) -> None:
    async with Builds(base, USER, TOKEN) as builds:
        pages = builds.list_pages(page_size=40)
        first = await anext(pages)
        await pages.aclose()
    async with Builds(base, USER, TOKEN) as builds:
        rest = await collect(builds.list_pages(page_size=40, cursor=first.cursor))
    ids = [i.identifier for i in first] + [i.identifier for p in rest for i in p]
    assert sorted(ids) == sorted(all_builds(state.jobs)) and len(ids) == len(set(ids))
    lint = next(j for j in state.jobs[3].children if j.name == "lint")
    since = datetime.fromtimestamp(lint.builds[1].timestamp / 1000, UTC)
    state.controls.requests.clear()
    async with Builds(base, USER, TOKEN) as builds:
        recent = [i async for i in builds.list(since=since)]
    assert all(i.created_at is not None and i.created_at >= since for i in recent)
    expected = [b for b in all_builds(state.jobs) if _stamp(state, b) >= since.timestamp() * 1000]
    assert sorted(i.identifier for i in recent) == sorted(expected)


def _stamp(state: JenkinsState, identifier: str) -> int:
    name, number = identifier.rsplit("#", 1)
    job = state.find(name.split("/"))
    assert job is not None
    return next(b.timestamp for b in job.builds if b.number == int(number))


async def test_get(state, base) -> None:
    async with Builds(base, USER, TOKEN) as builds:
        item = await builds.get("team/inner/deep job#2")
        assert item.identifier == "team/inner/deep job#2" and item.raw["number"] == 2
        branch = await builds.get("app/feature%2Flogin#1")
        assert branch.url is not None and branch.url.endswith("/job/app/job/feature%252Flogin/1/")
        for missing in ("big#999", "nope#1", "big", "big#x", "#3"):
            with pytest.raises(ItemNotFound):
                await builds.get(missing)
    async with Builds(base, USER, TOKEN, job="big") as builds:
        assert (await builds.get("big#5")).identifier == "big#5"
        with pytest.raises(ItemNotFound):
            await builds.get("deploy#1")


async def test_a_folder_or_unknown_job_is_a_configuration_error(state, base) -> None:
    async with Builds(base, USER, TOKEN, job="team", retry=FAST) as builds:
        with pytest.raises(ConfigurationError, match="no builds of its own"):
            await collect(builds.list())
    async with Builds(base, USER, TOKEN, job="nope", retry=FAST) as builds:
        with pytest.raises(ConfigurationError, match="no Jenkins job"):
            await collect(builds.list())


@pytest.mark.parametrize("mode", ["ignore", "stuck"])
async def test_a_server_that_does_not_honour_ranges_is_refused(state, base, mode) -> None:
    state.range_mode = mode
    async with Builds(base, USER, TOKEN, job="big") as builds:
        with pytest.raises(MalformedResponse, match="ranges"):
            await collect(builds.list(page_size=10))
    # stuck: the second range gave the first range's builds; at most the ranges in
    # flight then were asked
    asked = ranges(state, "/job/big/api/json")
    assert len(asked) == 1 if mode == "ignore" else 2 <= len(asked) <= 1 + Builds.page_concurrency


async def test_a_malformed_build_is_our_error(state, base) -> None:
    state.controls.inject(200, body={"allBuilds": [{"number": "seven"}]}, path_prefix="/job/big")
    async with Builds(base, USER, TOKEN, job="big") as builds:
        with pytest.raises(MalformedResponse):
            await collect(builds.list())
    state.controls.inject(200, body={"allBuilds": {"0": 1}}, path_prefix="/job/big")
    async with Builds(base, USER, TOKEN, job="big") as builds:
        with pytest.raises(MalformedResponse):
            await collect(builds.list())
