"""Greenhouse Job Board sources (jobs, departments, offices) against the fake API."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

import asyncrepo
from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    ItemNotFound,
    MalformedResponse,
    RetryPolicy,
    SourceUnavailable,
    UnsupportedOption,
)
from asyncrepo.registry import get_class
from asyncrepo.repositories.greenhouse.departments import Departments
from asyncrepo.repositories.greenhouse.jobs import Jobs
from asyncrepo.repositories.greenhouse.offices import Offices
from tests.fakes._common import serve
from tests.fakes.greenhouse import GreenhouseState, Job, make_app, make_dataset

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05)


@pytest.fixture
def state() -> GreenhouseState:
    return make_dataset("acme", n_jobs=300, seed=0)


@pytest.fixture
async def base(state: GreenhouseState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def acme_jobs(state: GreenhouseState) -> list[Job]:
    return state.boards["acme"].jobs


def count(state: GreenhouseState, prefix: str = "/v1/boards/") -> int:
    return state.controls.count(prefix)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [x async for x in stream]


# -- listing and cursors ------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
async def test_list_pages_whole_board_one_request(state, base, page_size) -> None:
    expected = [str(j.id) for j in acme_jobs(state)]
    async with Jobs("acme", base_url=base) as jobs:
        pages = await collect(jobs.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert ids == expected  # no loss, no duplicate, vendor order
    assert all(len(page) == page_size for page in pages[:-1])
    assert 0 < len(pages[-1]) <= page_size
    assert all(page.cursor for page in pages[:-1]) and pages[-1].cursor is None
    # The single list response is fetched once and sliced client-side.
    assert count(state) == 1
    (logged,) = state.controls.requests
    assert logged.path == "/v1/boards/acme/jobs" and logged.query == {"content": "true"}


async def test_list_streams_items_with_common_fields(state, base) -> None:
    async with Jobs("acme", base_url=base) as jobs:
        items = await collect(jobs.list())
    assert len(items) == 300
    fake = acme_jobs(state)[0]
    item = items[0]
    assert item.identifier == str(fake.id) and item.raw["id"] == fake.id
    assert item.title == fake.title
    assert item.url == fake.absolute_url
    assert item.updated_at == datetime.fromisoformat(fake.updated_at)
    assert item.updated_at is not None and item.updated_at.tzinfo is not None
    assert item.created_at == datetime.fromisoformat(fake.first_published)
    assert item.kind == "job" and item.source == "greenhouse.jobs"
    assert {d["name"] for d in item.raw["departments"]} and item.raw["offices"]


async def test_cursor_resumes_in_a_fresh_repository(state, base) -> None:
    expected = [str(j.id) for j in acme_jobs(state)]
    async with Jobs("acme", base_url=base) as jobs:
        stream = jobs.list_pages(page_size=7)
        pages = [await anext(stream) for _ in range(3)]
        await stream.aclose()
    cursor = pages[-1].cursor
    assert cursor is not None
    assert [i.identifier for p in pages for i in p] == expected[:21]
    before = count(state)
    async with Jobs("acme", base_url=base) as fresh:
        rest = await collect(fresh.list_pages(page_size=7, cursor=cursor))
        assert count(state) == before + 1  # resuming downloads the list once more
        # A cursor is valid whatever page size comes next.
        other = await collect(fresh.list_pages(page_size=50, cursor=cursor))
    assert [i.identifier for p in rest for i in p] == expected[21:]
    assert [i.identifier for p in other for i in p] == expected[21:]
    assert [len(p) for p in other] == [50, 50, 50, 50, 50, 29]
    # The cursor belongs to board acme's job listing.
    async with Jobs("globex", base_url=base) as globex:
        with pytest.raises(InvalidCursor):
            await collect(globex.list_pages(page_size=7, cursor=cursor))
    async with Departments("acme", base_url=base) as departments:
        with pytest.raises(InvalidCursor):
            await collect(departments.list_pages(page_size=7, cursor=cursor))


async def test_next_page_of_an_old_page_resumes(state, base) -> None:
    expected = [str(j.id) for j in acme_jobs(state)]
    async with Jobs("acme", base_url=base) as jobs:
        stream = jobs.list_pages(page_size=100)
        first = await anext(stream)
        second = await anext(stream)
        assert count(state) == 1
        again = await first.next_page()  # the stream has moved on: resume from the cursor
        await stream.aclose()
    assert again is not None
    assert [i.identifier for i in again] == [i.identifier for i in second] == expected[100:200]


# -- get ------------------------------------------------------------------------------------


async def test_get_without_and_with_questions(state, base) -> None:
    fake = next(j for j in acme_jobs(state) if j.location_questions)
    async with Jobs("acme", base_url=base) as jobs:
        item = await jobs.get(str(fake.id))
    assert item.identifier == str(fake.id) and item.title == fake.title
    assert item.url == fake.absolute_url and item.raw["content"] == fake.content
    assert "questions" not in item.raw and "pay_input_ranges" not in item.raw
    assert state.controls.requests[-1].query == {}

    async with Jobs("acme", base_url=base, questions=True, pay_transparency=True) as jobs:
        item = await jobs.get(str(fake.id))
    assert state.controls.requests[-1].path == f"/v1/boards/acme/jobs/{fake.id}"
    assert state.controls.requests[-1].query == {"questions": "true", "pay_transparency": "true"}
    labels = [q["label"] for q in item.raw["questions"]]
    assert labels[:3] == ["First Name", "Last Name", "Email"]
    assert [q["label"] for q in item.raw["location_questions"]] == [
        "Location",
        "Latitude",
        "Longitude",
    ]
    assert item.raw["pay_input_ranges"] == fake.pay_input_ranges
    assert item.text == (await _listed(base, fake.id)).text  # same text from list and get


async def _listed(base: str, job_id: int) -> Any:
    async with Jobs("acme", base_url=base) as jobs:
        async for item in jobs.list():
            if item.identifier == str(job_id):
                return item
    raise AssertionError("not listed")


async def test_not_found(state, base) -> None:
    globex_job = state.boards["globex"].jobs[0].id
    async with Jobs("acme", base_url=base) as jobs:
        with pytest.raises(ItemNotFound) as info:
            await jobs.get("1")
        assert info.value.identifier == "1" and info.value.status == 404
        assert info.value.vendor_message == "Job not found"
        with pytest.raises(ItemNotFound):
            await jobs.get(str(globex_job))  # another board's post is not on this one
        sent = count(state)
        for bad in ("abc", "12a", "", " 1", "-5", "0012", "\uff11\uff12"):
            with pytest.raises(ItemNotFound) as info:
                await jobs.get(bad)
            assert info.value.identifier == bad
        assert count(state) == sent  # no request for an identifier that cannot exist

    async with Jobs("nope", base_url=base) as unknown:
        fake = acme_jobs(state)[0]
        with pytest.raises(ItemNotFound):
            await unknown.get(str(fake.id))
        with pytest.raises(ConfigurationError) as board_error:
            await collect(unknown.list())
        assert "'nope'" in str(board_error.value) and board_error.value.status == 404
        with pytest.raises(ConfigurationError, match="nope"):
            await collect(unknown.search("engineer"))
    for cls in (Departments, Offices):
        async with cls("nope", base_url=base) as repo:
            with pytest.raises(ConfigurationError, match="nope"):
                await collect(repo.list())
            with pytest.raises(ItemNotFound):
                await repo.get("4000001")


def test_board_token_is_required() -> None:
    with pytest.raises(ConfigurationError):
        Jobs("")
    with pytest.raises(ConfigurationError):
        Offices("  ")


# -- content and text -------------------------------------------------------------------------


async def test_text_is_plain_and_raw_content_is_as_sent(state, base) -> None:
    by_id = {str(j.id): j for j in acme_jobs(state)}
    async with Jobs("acme", base_url=base) as jobs:
        items = await collect(jobs.list())
    for item in items:
        fake = by_id[item.identifier]
        assert item.raw["content"] == fake.content  # entity-escaped, as the API sent it
        assert item.raw["content"].startswith("&lt;p&gt;")
        text = item.text
        assert text
        assert "<" not in text and ">" not in text
        for entity in ("&lt;", "&gt;", "&amp;", "&quot;", "&nbsp;", "&#39;", "&ndash;"):
            assert entity not in text
        assert text.startswith(f"{fake.title} at Acme Corp")
        assert "Apply via our form" in text
    hiring = next(i for i in items if "hiring" in (i.text or ""))
    assert 'We are "hiring" people who love hard problems & good coffee.' in (hiring.text or "")
    stack = next(i for i in items if "PostgreSQL" in (i.text or ""))
    assert "Go & PostgreSQL. No prior fintech" in (stack.text or "")
    pay = next(i for i in items if "Compensation" in (i.text or ""))
    assert "$120,000 \u2013 $180,000" in (pay.text or "")
    assert html.unescape(pay.raw["content"]).startswith("<p><strong>")


# -- search -----------------------------------------------------------------------------------


def _ids(jobs: list[Job]) -> set[str]:
    return {str(j.id) for j in jobs}


async def test_naive_search_covers_departments_offices_location_content(state, base) -> None:
    board = state.boards["acme"]
    dep = next(d for d in board.departments if d.name == "Mobile Development")
    emea = next(o for o in board.offices if o.name == "EMEA")
    emea_children = {o.id for o in board.offices if o.parent_id == emea.id}
    cases = {
        # a department name (only in raw["departments"])
        '"Mobile Development"': _ids([j for j in board.jobs if dep.id in j.department_ids]),
        # a parent office's name (only in raw["offices"])
        "emea": _ids([j for j in board.jobs if set(j.office_ids) & emea_children]),
        # a location
        '"San Francisco"': _ids([j for j in board.jobs if j.location == "San Francisco"]),
        # content words; the "&" is entity-escaped twice in raw, so this matches the text
        "kindness": _ids([j for j in board.jobs if "kindness" in j.content_html]),
        '"problems & good coffee"': _ids([j for j in board.jobs if "coffee" in j.content_html]),
        # several terms: all must occur
        "kindness Berlin": _ids(
            [j for j in board.jobs if "kindness" in j.content_html and j.location == "Berlin"]
        ),
    }
    async with Jobs("acme", base_url=base) as jobs:
        for query, expected in cases.items():
            assert expected, query
            found = [item.identifier async for item in jobs.search(query)]
            assert len(found) == len(set(found))
            assert set(found) == expected, query
        pages = await collect(jobs.search_pages("kindness", page_size=10))
        paged = [i.identifier for p in pages for i in p]
        assert set(paged) == cases["kindness"] and len(paged) == len(cases["kindness"])
        resumed = await collect(jobs.search_pages("kindness", page_size=10, cursor=pages[0].cursor))
        assert [i.identifier for p in resumed for i in p] == paged[10:]
        assert await collect(jobs.search("zzzunmatchedzzz")) == []


# -- since and order ------------------------------------------------------------------------


async def test_since_filters_on_updated_at(state, base) -> None:
    stamps = sorted(datetime.fromisoformat(j.updated_at) for j in acme_jobs(state))
    since = stamps[200]
    expected = {
        str(j.id) for j in acme_jobs(state) if datetime.fromisoformat(j.updated_at) >= since
    }
    async with Jobs("acme", base_url=base) as jobs:
        assert jobs.capabilities.since == "client"
        found = [item async for item in jobs.list(since=since)]
        assert {i.identifier for i in found} == expected and len(found) == len(expected)
        assert all(i.updated_at is not None and i.updated_at >= since for i in found)
        pages = await collect(jobs.list_pages(since=since, page_size=30))
        assert [i.identifier for p in pages for i in p] == [i.identifier for i in found]
        searched = [i async for i in jobs.search("kindness", since=since)]
        assert all(
            "kindness" in (i.text or "") and i.updated_at is not None and i.updated_at >= since
            for i in searched
        )
    async with Departments("acme", base_url=base) as departments:
        with pytest.raises(UnsupportedOption):
            departments.list(since=since)


async def test_order_by_updated_client_side(state, base) -> None:
    async with Jobs("acme", base_url=base) as jobs:
        newest = [i async for i in jobs.list(order="-updated")]
        oldest = [i async for i in jobs.list(order="updated")]
        assert len(newest) == 300 and [i.identifier for i in oldest][::-1] == [
            i.identifier for i in newest
        ]
        stamps = [i.updated_at for i in newest if i.updated_at is not None]
        assert len(stamps) == len(newest)
        assert stamps == sorted(stamps, reverse=True)
        pages = await collect(jobs.list_pages(order="-updated", page_size=40))
        resumed = await collect(
            jobs.list_pages(order="-updated", page_size=40, cursor=pages[2].cursor)
        )
        assert [i.identifier for p in resumed for i in p] == [i.identifier for i in newest][120:]
        with pytest.raises(UnsupportedOption):
            jobs.list(order="title")


# -- departments and offices ------------------------------------------------------------------


async def test_departments_list_get_search(state, base) -> None:
    board = state.boards["acme"]
    async with Departments("acme", base_url=base) as departments:
        items = await collect(departments.list())
        assert [i.title for i in items] == [d.name for d in board.departments]
        assert [i.identifier for i in items] == [str(d.id) for d in board.departments]
        assert all(i.kind == "department" and i.url is None for i in items)
        assert state.controls.requests[-1].path == "/v1/boards/acme/departments"
        pages = await collect(departments.list_pages(page_size=3))
        assert [len(p) for p in pages] == [3, 3, 1] and count(state) == 2

        engineering = next(d for d in board.departments if d.name == "Engineering")
        item = await departments.get(str(engineering.id))
        assert item.title == "Engineering" and item.raw["parent_id"] == engineering.parent_id
        titles = [j.title for j in board.jobs if engineering.id in j.department_ids]
        assert titles and (item.text or "").split("\n") == titles
        root = await departments.get(str(engineering.parent_id))
        assert root.title == "R & D" and root.text is None  # no posts of its own

        found = [i.title async for i in departments.search('"mobile development"')]
        assert found == ["Mobile Development"]
        with pytest.raises(ItemNotFound):
            await departments.get("999")
        sent = count(state)
        with pytest.raises(ItemNotFound):
            await departments.get("engineering")
        assert count(state) == sent


async def test_offices_list_get_search(state, base) -> None:
    board = state.boards["acme"]
    async with Offices("acme", base_url=base) as offices:
        items = await collect(offices.list())
        assert [i.title for i in items] == [o.name for o in board.offices]
        texts = {i.title: i.text for i in items}
        assert texts["New York City"] == "New York, NY, United States"
        assert texts["Remote"] is None and texts["EMEA"] is None
        assert all(i.kind == "office" for i in items)

        nyc = next(o for o in board.offices if o.name == "New York City")
        item = await offices.get(str(nyc.id))
        assert item.identifier == str(nyc.id) and item.text == nyc.location
        assert state.controls.requests[-1].path == f"/v1/boards/acme/offices/{nyc.id}"

        assert [i.title async for i in offices.search("london")] == ["London"]
        assert [i.title async for i in offices.search('"united kingdom"')] == ["London"]
        with pytest.raises(ItemNotFound):
            await offices.get("999")


# -- isolation, retries, malformed answers ----------------------------------------------------


async def test_globex_never_leaks_into_acme(state, base) -> None:
    globex = {str(j.id) for j in state.boards["globex"].jobs}
    async with Jobs("acme", base_url=base) as acme_repo, Jobs("globex", base_url=base) as gx:
        acme_items = await collect(acme_repo.list())
        globex_items = await collect(gx.list())
        assert {i.identifier for i in globex_items} == globex
        assert not {i.identifier for i in acme_items} & globex
        assert {i.raw["company_name"] for i in acme_items} == {"Acme Corp"}
        assert await collect(acme_repo.search("Globex")) == []
        for job_id in globex:
            with pytest.raises(ItemNotFound):
                await acme_repo.get(job_id)
        assert (await gx.get(next(iter(globex)))).identifier in globex
    assert all(
        r.path.startswith(("/v1/boards/acme/", "/v1/boards/globex/"))
        for r in state.controls.requests
    )


async def test_retries_an_injected_503(state, base) -> None:
    state.controls.inject(
        503, body={"status": 503, "error": "busy"}, path_prefix="/v1/boards/acme/jobs"
    )
    async with Jobs("acme", base_url=base, retry=FAST) as jobs:
        items = await collect(jobs.list())
        assert len(items) == 300
        assert [r.status for r in state.controls.requests] == [503, 200]
        fake = acme_jobs(state)[1]
        state.controls.inject(503, times=2, path_prefix=f"/v1/boards/acme/jobs/{fake.id}")
        assert (await jobs.get(str(fake.id))).identifier == str(fake.id)
        assert [r.status for r in state.controls.requests[-3:]] == [503, 503, 200]
    state.controls.inject(503, times=10, path_prefix="/v1/boards/acme/offices")
    async with Offices("acme", base_url=base, retry=RetryPolicy(attempts=2, backoff=0.01)) as o:
        with pytest.raises(SourceUnavailable):
            await collect(o.list())


async def test_malformed_answers(state, base) -> None:
    async with Jobs("acme", base_url=base, retry=FAST) as jobs:
        state.controls.inject(200, body={"meta": {"total": 0}}, path_prefix="/v1/boards/acme/jobs")
        with pytest.raises(MalformedResponse):
            await collect(jobs.list())
        bad = {"jobs": [{"id": "12", "title": "x", "updated_at": None}]}
        state.controls.inject(200, body=bad, path_prefix="/v1/boards/acme/jobs")
        with pytest.raises(MalformedResponse):
            await collect(jobs.list())
        stamp = {"jobs": [{"id": 12, "title": "x", "updated_at": "yesterday"}]}
        state.controls.inject(200, body=stamp, path_prefix="/v1/boards/acme/jobs")
        with pytest.raises(MalformedResponse):
            await collect(jobs.list())


# -- registry and URIs ------------------------------------------------------------------------


def test_registry_names() -> None:
    assert get_class("greenhouse.jobs") is Jobs
    assert get_class("greenhouse.departments") is Departments
    assert get_class("greenhouse.offices") is Offices


async def test_open_uris(state, base) -> None:
    fake = acme_jobs(state)[0]
    async with asyncrepo.open("greenhouse://acme", base_url=base) as jobs:
        assert isinstance(jobs, Jobs) and jobs.board_token == "acme"
        assert (await jobs.get(str(fake.id))).title == fake.title
        assert len(await collect(jobs.list())) == 300
    async with asyncrepo.open("greenhouse://acme/jobs?questions=true", base_url=base) as jobs:
        assert isinstance(jobs, Jobs) and jobs.questions
        assert "questions" in (await jobs.get(str(fake.id))).raw
    async with asyncrepo.open("greenhouse://acme/departments", base_url=base) as deps:
        assert isinstance(deps, Departments) and len(await collect(deps.list())) == 7
    async with asyncrepo.open("greenhouse://globex/offices/", base_url=base) as offices:
        assert isinstance(offices, Offices) and offices.board_token == "globex"
        assert len(await collect(offices.list())) == 7
    # The base URL may be given with the API's /v1 prefix too.
    async with asyncrepo.open("greenhouse://acme", base_url=base + "/v1/") as jobs:
        assert len(await collect(jobs.list())) == 300
    for bad in (
        "greenhouse://",
        "greenhouse://acme/candidates",
        "greenhouse://acme/offices?questions=true",
        "greenhouse://acme?questions=maybe",
        "greenhouse://acme?board=x",
    ):
        with pytest.raises(ConfigurationError):
            asyncrepo.open(bad, base_url=base)
