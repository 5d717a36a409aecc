"""The fake Greenhouse Job Board API speaks the real protocol: checked with raw aiohttp."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from tests.fakes._common import serve
from tests.fakes.greenhouse import GreenhouseState, make_app, make_dataset


@pytest.fixture
def state() -> GreenhouseState:
    return make_dataset("acme", n_jobs=300, seed=0)


@pytest.fixture
async def api(state: GreenhouseState) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with serve(make_app(state)) as base, aiohttp.ClientSession() as session:
        yield f"{base}/v1/boards", session


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        return response.status, await response.json()


async def test_board(api) -> None:
    boards, session = api
    status, data = await fetch(session, f"{boards}/acme")
    assert status == 200 and data["name"] == "Acme Corp" and data["content"].startswith("<p>")
    status, data = await fetch(session, f"{boards}/nope")
    assert status == 404 and data == {"status": 404, "error": "Job board not found"}


async def test_jobs_list_shape_and_meta_total(state, api) -> None:
    boards, session = api
    status, data = await fetch(session, f"{boards}/acme/jobs")
    assert status == 200 and set(data) == {"jobs", "meta"}
    assert data["meta"] == {"total": 300} and len(data["jobs"]) == 300  # not paginated
    job = data["jobs"][0]
    for key in (
        "id",
        "internal_job_id",
        "title",
        "updated_at",
        "requisition_id",
        "location",
        "absolute_url",
        "metadata",
        "language",
    ):
        assert key in job
    assert isinstance(job["id"], int) and isinstance(job["location"]["name"], str)
    assert "content" not in job and "departments" not in job and "offices" not in job
    # Offsets like the docs' "2016-01-14T10:55:28-05:00".
    assert datetime.fromisoformat(job["updated_at"]).utcoffset() is not None
    assert job["updated_at"][-6] in "+-"
    ids = {j["id"] for j in data["jobs"]}
    assert len(ids) == 300
    assert not ids & {j.id for j in state.boards["globex"].jobs}  # other board never leaks


async def test_content_true_is_entity_escaped_html(state, api) -> None:
    boards, session = api
    status, data = await fetch(session, f"{boards}/acme/jobs", params={"content": "true"})
    assert status == 200
    job = data["jobs"][0]
    content = job["content"]
    assert content.startswith("&lt;p&gt;") and "<" not in content
    # HTML unescaped once gives the stored HTML, entities and all.
    assert html.unescape(content) == state.boards["acme"].jobs[0].content_html
    quoted = next(j["content"] for j in data["jobs"] if "hiring" in j["content"])
    assert "We are &amp;quot;hiring&amp;quot; people" in quoted
    assert {"id", "name", "parent_id", "child_ids"} == set(job["departments"][0])
    assert {"id", "name", "location", "parent_id", "child_ids"} == set(job["offices"][0])
    assert job["offices"][0]["parent_id"] is None  # parents first, then the post's office


async def test_single_job_questions_and_pay(state, api) -> None:
    boards, session = api
    job = state.boards["acme"].jobs[0]
    status, data = await fetch(session, f"{boards}/acme/jobs/{job.id}")
    assert status == 200 and data["id"] == job.id and data["content"] == job.content
    assert "questions" not in data and "pay_input_ranges" not in data
    status, data = await fetch(
        session,
        f"{boards}/acme/jobs/{job.id}",
        params={"questions": "true", "pay_transparency": "true"},
    )
    assert status == 200
    labels = [q["label"] for q in data["questions"]]
    assert labels[:2] == ["First Name", "Last Name"]
    resume = next(q for q in data["questions"] if q["label"] == "Resume/CV")
    assert [f["type"] for f in resume["fields"]] == ["input_file", "textarea"]
    assert isinstance(data["pay_input_ranges"], list)
    with_location = next(j for j in state.boards["acme"].jobs if j.location_questions)
    _, data = await fetch(
        session, f"{boards}/acme/jobs/{with_location.id}", params={"questions": "true"}
    )
    assert [q["label"] for q in data["location_questions"]] == ["Location", "Latitude", "Longitude"]
    with_demo = next(j for j in state.boards["acme"].jobs if j.demographic_questions)
    _, data = await fetch(
        session, f"{boards}/acme/jobs/{with_demo.id}", params={"questions": "true"}
    )
    assert data["demographic_questions"]["questions"][0]["answer_options"]


async def test_not_found_bodies(state, api) -> None:
    boards, session = api
    job_not_found = {"status": 404, "error": "Job not found"}
    assert await fetch(session, f"{boards}/acme/jobs/1") == (404, job_not_found)
    assert await fetch(session, f"{boards}/acme/jobs/abc") == (404, job_not_found)
    assert await fetch(session, f"{boards}/nope/jobs") == (404, job_not_found)
    globex_job = state.boards["globex"].jobs[0].id
    assert await fetch(session, f"{boards}/acme/jobs/{globex_job}") == (404, job_not_found)
    status, data = await fetch(session, f"{boards}/acme/departments/999")
    assert status == 404 and data["status"] == 404
    status, data = await fetch(session, f"{boards}/acme/offices/999")
    assert status == 404 and data["status"] == 404


async def test_departments_and_offices(state, api) -> None:
    boards, session = api
    status, data = await fetch(session, f"{boards}/acme/departments")
    assert status == 200
    deps = data["departments"]
    assert sum(len(d["jobs"]) for d in deps) == 300
    by_id = {d["id"]: d for d in deps}
    for dep in deps:
        for child in dep["child_ids"]:
            assert by_id[child]["parent_id"] == dep["id"]
    status, data = await fetch(session, f"{boards}/acme/departments", params={"render_as": "tree"})
    roots = data["departments"]
    assert all("children" in d and "parent_id" not in d for d in roots)
    assert len(roots) < len(deps)
    dep_id = deps[1]["id"]
    status, data = await fetch(session, f"{boards}/acme/departments/{dep_id}")
    assert status == 200 and data["id"] == dep_id and "jobs" in data
    status, data = await fetch(session, f"{boards}/acme/offices")
    assert status == 200 and all("departments" in o for o in data["offices"])
    office = next(o for o in data["offices"] if o["parent_id"] is not None)
    status, data = await fetch(session, f"{boards}/acme/offices/{office['id']}")
    assert status == 200 and data["id"] == office["id"]
    assert all(set(d) == {"id", "name", "jobs"} for d in data["departments"])


def test_dataset_deterministic() -> None:
    a = make_dataset("acme", n_jobs=50, seed=7)
    b = make_dataset("acme", n_jobs=50, seed=7)
    assert [j.id for j in a.boards["acme"].jobs] == [j.id for j in b.boards["acme"].jobs]
    assert [j.content for j in a.boards["acme"].jobs] == [j.content for j in b.boards["acme"].jobs]
