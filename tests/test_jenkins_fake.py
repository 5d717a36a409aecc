"""The fake Jenkins answers as Jenkins documents its Remote Access API: ``tree`` with nested
fields and ``{M,N}`` ranges, ``depth``, ``_class`` on every object, ``allBuilds`` only when
asked, folders and multibranch names."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._common import serve
from tests.fakes.jenkins import (
    FOLDER,
    FREESTYLE,
    HUDSON,
    MULTIBRANCH,
    JenkinsState,
    make_app,
    make_dataset,
    parse_tree,
)

AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:api-token-admin").decode()}


@pytest.fixture
def state() -> JenkinsState:
    return make_dataset(n_builds=150)


@pytest.fixture
async def base(state: JenkinsState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


async def get(url: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers=AUTH) as session, session.get(url, params=params) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        assert r.headers["X-Jenkins"]
        return r.status, body


def test_tree_syntax() -> None:
    nodes = parse_tree("jobs[name,jobs[url]{0,1}]{2,5},allBuilds[number]{3},x{,4},y{7,}")
    assert [n.name for n in nodes] == ["jobs", "allBuilds", "x", "y"]
    assert nodes[0].range == (2, 5) and nodes[0].children is not None
    assert nodes[0].children[1].range == (0, 1)
    assert nodes[1].range == (3, 4) and nodes[2].range == (None, 4) and nodes[3].range == (7, None)


async def test_tree_ranges_and_nesting(base) -> None:
    status, body = await get(f"{base}/api/json", tree="jobs[name,jobs[name]]{3,5}")
    assert status == 200 and body["_class"] == HUDSON
    assert [j["name"] for j in body["jobs"]] == ["team", "app"]
    team, app = body["jobs"]
    assert team["_class"] == FOLDER and [j["name"] for j in team["jobs"]] == ["lint", "inner"]
    assert app["_class"] == MULTIBRANCH and app["jobs"][1]["name"] == "feature%2Flogin"
    assert all(set(j) == {"_class", "name"} for j in team["jobs"])
    _, one = await get(f"{base}/api/json", tree="jobs[name]{0}")
    assert [j["name"] for j in one["jobs"]] == ["big"]
    _, tail = await get(f"{base}/api/json", tree="jobs[name]{22,}")
    assert [j["name"] for j in tail["jobs"]] == ["job-17", "job-18", "job-19"]


async def test_builds_only_when_asked_and_ranged(base) -> None:
    _, job = await get(f"{base}/job/big/api/json")
    assert job["_class"] == FREESTYLE and "allBuilds" not in job
    assert len(job["builds"]) == 100 and set(job["builds"][0]) == {"_class", "number", "url"}
    _, ranged = await get(f"{base}/job/big/api/json", tree="allBuilds[number,result]{10,13}")
    assert [b["number"] for b in ranged["allBuilds"]] == [140, 139, 138]
    _, nested = await get(f"{base}/job/big/api/json", tree="lastBuild")
    assert nested == {"_class": FREESTYLE, "lastBuild": {"_class": "hudson.model.FreeStyleBuild"}}


async def test_depth(base) -> None:
    _, shallow = await get(f"{base}/job/team/api/json")
    assert set(shallow["jobs"][0]) == {"_class", "name", "url", "color"}
    _, deep = await get(f"{base}/job/team/api/json", depth=1)
    assert "fullName" in deep["jobs"][0] and deep["jobs"][0]["fullName"] == "team/lint"


async def test_paths_and_errors(base) -> None:
    status, build = await get(f"{base}/job/app/job/feature%252Flogin/2/api/json", tree="number")
    assert status == 200 and build["number"] == 2
    assert (await get(f"{base}/job/nope/api/json"))[0] == 404
    assert (await get(f"{base}/job/big/9999/api/json"))[0] == 404
    assert (await get(f"{base}/api/json", tree="jobs[name"))[0] == 400
