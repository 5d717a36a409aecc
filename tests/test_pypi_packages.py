"""PyPI packages (``pypi.packages``) against the fake index (tests/fakes/pypi.py): the Simple
API (PEP 691 JSON and PEP 503 HTML), the JSON API and the updates feed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    PermissionDenied,
    RetryPolicy,
    UnsupportedOption,
)
from asyncrepo.registry import get_class
from asyncrepo.repositories.pypi._client import normalize
from asyncrepo.repositories.pypi.packages import Packages
from tests.fakes._common import serve
from tests.fakes.pypi import JSON_V1, PyPIState, make_app, make_dataset

FAST = RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)


@pytest.fixture
def state() -> PyPIState:
    return make_dataset(n_projects=40)


@pytest.fixture
async def base(state: PyPIState) -> AsyncIterator[str]:
    async with serve(make_app(state)) as url:
        yield url


def repo(base: str, **kwargs: Any) -> Packages:
    kwargs.setdefault("json_url", base + "/pypi")
    kwargs.setdefault("rss_url", base + "/rss/updates.xml")
    kwargs.setdefault("retry", FAST)
    return Packages(base + "/simple", **kwargs)


async def collect(stream: Any) -> list[Any]:
    return [x async for x in stream]


def names(state: PyPIState) -> list[str]:
    return [normalize(p.name) for p in state.projects.values()]


# -- listing ------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1, 7, 100])
@pytest.mark.parametrize("fmt", ["json", "html"])
async def test_list_pages_without_loss_or_duplicate(state, base, page_size, fmt) -> None:
    state.html_only = fmt == "html"
    state.chunk = 97  # many small network chunks: entries split across them
    async with repo(base) as packages:
        pages = await collect(packages.list_pages(page_size=page_size))
    ids = [item.identifier for page in pages for item in page]
    assert ids == names(state)  # the index's order, none lost, none twice
    assert all(len(page) == page_size for page in pages[:-1])
    (logged,) = state.controls.requests  # one download of the list
    assert logged.path == "/simple/"
    assert logged.headers["Accept"].startswith(JSON_V1)
    assert "text/html;q=0.01" in logged.headers["Accept"]


async def test_listed_items(state, base) -> None:
    async with repo(base) as packages:
        items = await collect(packages.list())
    project = next(iter(state.projects.values()))
    first = items[0]
    assert first.title == project.name and first.identifier == normalize(project.name)
    assert first.url == f"{base}/simple/{first.identifier}/" and first.kind == "package"
    assert first.raw == {"_last-serial": project.serial, "name": project.name}


async def test_cursor_resumes_at_its_position(state, base) -> None:
    async with repo(base) as packages:
        stream = packages.list_pages(page_size=7)
        first, second = await anext(stream), await anext(stream)
        await stream.aclose()
        rest = await collect(packages.list_pages(page_size=7, cursor=second.cursor))
        again = await collect(packages.list_pages(page_size=7, cursor=first.cursor))
    ids = [i.identifier for i in first] + [i.identifier for i in second]
    ids += [i.identifier for p in rest for i in p]
    assert ids == names(state)
    assert [i.identifier for i in again[0]] == [i.identifier for i in second]
    async with Packages(base + "/other/simple") as other:
        with pytest.raises(InvalidCursor):
            await collect(other.list_pages(cursor=first.cursor))


def _document(entries: list[Any], *, meta_last: bool = False, indent: bool = False) -> bytes:
    meta = {"_last-serial": 7, "api-version": "1.4"}
    doc = {"projects": entries, "meta": meta} if meta_last else {"meta": meta, "projects": entries}
    if indent:
        return json.dumps(doc, indent=2).encode()
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    "shape", ["nested", "braces-in-names", "meta-last", "indented", "empty", "spaces"]
)
async def test_any_json_shape_of_the_list_parses(state, base, shape) -> None:
    # The fast path cuts the list between entries; entries it cannot cut (nested objects,
    # names with "},") go to the fallback parser; either way every entry comes, in order.
    n = 0 if shape == "empty" else 3000
    names = [f"proj-{i}" for i in range(n)]
    entries: list[Any] = [{"_last-serial": i, "name": name} for i, name in enumerate(names)]
    if shape == "nested":
        for i in range(0, n, 7):
            entries[i]["status"] = {"reason": "},{", "list": [{"a": 1}, {"b": "]"}]}
    if shape == "braces-in-names":
        for i in range(500, n, 300):
            names[i] = entries[i]["name"] = f"odd}},{{name{i}"
    body = _document(entries, meta_last=shape == "meta-last", indent=shape == "indented")
    if shape == "spaces":
        body = body.replace(b",", b" ,\n ").replace(b"[", b"[ \n")
    state.simple_body = body
    state.chunk = 1000
    async with repo(base) as packages:
        items = await collect(packages.list())
    assert [i.title for i in items] == names
    assert [i.raw for i in items] == entries


async def test_a_list_with_a_broken_tail_is_refused(state, base) -> None:
    good = _document([{"name": f"p{i}"} for i in range(100)])
    for body in (good[:-1], good + b"x", good.replace(b"]", b"}", 1)[::1], b'{"projects": [1,'):
        state.simple_body = body
        async with repo(base) as packages:
            with pytest.raises(MalformedResponse):
                await collect(packages.list())


# -- get --------------------------------------------------------------------------------


async def test_get_reads_the_json_api(state, base) -> None:
    project = list(state.projects.values())[1]
    async with repo(base) as packages:
        item = await packages.get(project.name.upper().replace("-", "_"))
    assert item.identifier == normalize(project.name) and item.title == project.name
    assert item.text == project.summary and item.kind == "package"
    assert item.author == (project.author or project.author_email)
    assert item.url == f"{base}/project/{project.name}/"
    newest = project.releases[-1].uploaded
    assert item.updated_at is not None and newest <= item.updated_at < newest + timedelta(2)
    assert item.created_at is not None and item.created_at < project.releases[0].uploaded + (
        timedelta(seconds=2)
    )
    assert "releases" not in item.raw and item.raw["info"]["name"] == project.name
    paths = [r.path for r in state.controls.requests]
    assert paths[0] == f"/pypi/{normalize(project.name)}/json"  # then the canonical redirect


async def test_get_not_found(state, base) -> None:
    async with repo(base) as packages:
        with pytest.raises(ItemNotFound) as caught:
            await packages.get("no-such-package")
        assert caught.value.status == 404 and caught.value.identifier == "no-such-package"
        with pytest.raises(ItemNotFound):
            await packages.get("a/b")
    async with repo(base, json_url=None) as packages:
        with pytest.raises(ItemNotFound):
            await packages.get("no-such-package")


@pytest.mark.parametrize("fmt", ["json", "html"])
async def test_get_without_a_json_api_reads_the_project_page(state, base, fmt) -> None:
    state.html_only = fmt == "html"
    project = list(state.projects.values())[3]
    async with repo(base, json_url=None) as packages:
        item = await packages.get(project.name)
    assert item.identifier == normalize(project.name)
    files = [f["filename"] for f in item.raw["files"]]
    assert files == [f for r in project.releases for f in r.files]
    if fmt == "json":
        assert item.raw["versions"] == [r.version for r in project.releases]
        newest = project.releases[-1].uploaded
        assert item.updated_at is not None and newest <= item.updated_at
    assert state.controls.requests[0].path == f"/simple/{normalize(project.name)}/"


# -- search -----------------------------------------------------------------------------


async def test_search_contains_and_prefix(state, base) -> None:
    every = names(state)
    async with repo(base) as packages:
        found = [i.identifier async for i in packages.search("Alpha")]
        prefix = [i.identifier async for i in packages.search("alpha", mode="prefix")]
        two = [i.identifier async for i in packages.search("alpha data")]
        dotted = [i.identifier async for i in packages.search("Alpha_Data")]
        with pytest.raises(InvalidQuery):
            await collect(packages.search("x", mode="fuzzy"))
        with pytest.raises(InvalidQuery):
            await collect(packages.list(mode="prefix"))
    assert found == [n for n in every if "alpha" in n] and found
    assert prefix == [n for n in every if n.startswith("alpha")] and len(prefix) < len(found)
    assert two == [n for n in every if "alpha" in n and "data" in n]
    assert dotted == [n for n in every if "alpha-data" in n]


async def test_search_details_fetches_each_hit(state, base) -> None:
    async with repo(base, detail_concurrency=2) as packages:
        hits = [i async for i in packages.search("alpha", details=True)]
    assert hits and all(i.text and i.raw["info"]["summary"] == i.text for i in hits)
    json_calls = {r.path for r in state.controls.requests if r.path.startswith("/pypi/")}
    assert {f"/pypi/{i.identifier}/json" for i in hits} <= json_calls


# -- since: the updates feed --------------------------------------------------------------


async def test_since_reads_the_feed(state, base) -> None:
    now = datetime.now(UTC)
    since = now - timedelta(hours=40)
    async with repo(base) as packages:
        recent = await collect(packages.list(since=since))
        searched = await collect(packages.search("alpha", since=since))
    expected: dict[str, datetime] = {}
    for p in state.projects.values():
        newest = max(r.uploaded for r in p.releases)
        if newest >= since:
            expected[normalize(p.name)] = newest
    assert {i.identifier: i.updated_at for i in recent} == expected
    stamps = [i.updated_at for i in recent]
    assert stamps == sorted(stamps, reverse=True)
    assert [i.identifier for i in searched] == [
        i.identifier for i in recent if "alpha" in i.identifier
    ]
    assert all(r.path == "/rss/updates.xml" for r in state.controls.requests)


def _newest_since(state: PyPIState, since: datetime) -> dict[str, datetime]:
    expected: dict[str, datetime] = {}
    for p in state.projects.values():
        newest = max(r.uploaded for r in p.releases)
        if newest >= since:
            expected[normalize(p.name)] = newest
    return expected


@pytest.mark.parametrize("rss_size", [1, 7, 100])
async def test_since_pages_the_feed_back_in_time(state, base, rss_size) -> None:
    state.rss_size = rss_size
    since = datetime.now(UTC) - timedelta(days=365)  # before every release: the whole feed
    async with repo(base, max_feed_pages=1000) as packages:
        items = await collect(packages.list(since=since))
    assert {i.identifier: i.updated_at for i in items} == _newest_since(state, since)
    assert len(items) == len(state.projects)
    befores = [r.query.get("before") for r in state.controls.requests]
    assert befores[0] is None and all(b is not None for b in befores[1:])
    assert [int(b) for b in befores[1:]] == sorted((int(b) for b in befores[1:]), reverse=True)
    releases = sum(len(p.releases) for p in state.projects.values())
    assert len(befores) >= releases // rss_size  # paged, not one big answer


async def test_since_cursor_resumes(state, base) -> None:
    state.rss_size = 10
    since = datetime.now(UTC) - timedelta(hours=60)
    async with repo(base) as packages:
        first = await anext(packages.list_pages(page_size=4, since=since))
        rest = await collect(packages.list_pages(page_size=4, since=since, cursor=first.cursor))
    ids = [i.identifier for i in first] + [i.identifier for p in rest for i in p]
    assert set(ids) == set(_newest_since(state, since))


async def test_since_past_the_feed_or_without_one_is_unsupported(state, base) -> None:
    state.rss_size = 5
    state.rss_paging = False  # an index whose feed ignores before=
    async with repo(base) as packages:
        with pytest.raises(UnsupportedOption, match="does not page"):
            await collect(packages.list(since=datetime.now(UTC) - timedelta(days=365)))
    state.rss_paging = True
    async with repo(base, max_feed_pages=2) as packages:
        with pytest.raises(UnsupportedOption, match="max_feed_pages"):
            await collect(packages.list(since=datetime.now(UTC) - timedelta(days=365)))
    async with repo(base, rss_url=None) as packages:
        with pytest.raises(UnsupportedOption):
            await collect(packages.list(since=datetime.now(UTC)))
    async with repo(base, rss_url=base + "/rss/missing.xml") as packages:
        with pytest.raises(UnsupportedOption):
            await collect(packages.list(since=datetime.now(UTC)))


# -- errors and hostile servers -----------------------------------------------------------


async def test_errors_are_mapped(state, base) -> None:
    state.auth = ("me", "s3cret-pass")
    async with repo(base) as anonymous:
        with pytest.raises(AuthenticationError):
            await collect(anonymous.list())
    async with repo(base, username="me", password="wrong-pass") as wrong:
        with pytest.raises(AuthenticationError) as caught:
            await collect(wrong.list())
        assert "wrong-pass" not in str(caught.value) and "wrong-pass" not in repr(wrong)
    async with repo(base, username="me", password="s3cret-pass") as right:
        assert len(await collect(right.list())) == 40
        state.controls.inject(403, body={"message": "Forbidden"}, path_prefix="/simple/")
        with pytest.raises(PermissionDenied):
            await collect(right.list())
    async with Packages(base + "/nothing-here", retry=FAST) as nowhere:
        with pytest.raises(ConfigurationError):
            await collect(nowhere.list())


async def test_projects_come_while_the_document_is_still_arriving(state, base) -> None:
    # an index list that never ends: the first projects still come (parsed as they arrive)
    state.simple_mode = "endless"
    async with repo(base) as packages:
        stream = packages.list()
        first = [(await anext(stream)).identifier for _ in range(10)]
        await stream.aclose()
    assert first == [f"endless-{i}" for i in range(10)]


async def test_an_endless_index_stops_at_the_size_cap(state, base) -> None:
    state.simple_mode = "endless"
    async with repo(base, max_index_bytes=2_000_000) as packages:
        with pytest.raises(MalformedResponse, match="max_index_bytes"):
            await collect(packages.list())


@pytest.mark.parametrize("mode", ["truncated", "garbage"])
async def test_a_broken_document_is_our_error(state, base, mode) -> None:
    state.simple_mode = mode
    async with repo(base) as packages:
        with pytest.raises(MalformedResponse, match="not valid JSON"):
            await collect(packages.list())


async def test_documents_that_are_not_a_project_list(state, base) -> None:
    bodies: list[Any] = [{"meta": {}}, [1, 2], {"projects": [{"nom": "x"}]}, {"projects": [17]}]
    for body in bodies:
        state.controls.inject(
            200, body=orjson.dumps(body), headers={"Content-Type": JSON_V1}, path_prefix="/simple/"
        )
        async with repo(base) as packages:
            with pytest.raises(MalformedResponse):
                await collect(packages.list())
    state.controls.inject(
        200, body="plain", headers={"Content-Type": "text/plain"}, path_prefix="/simple/"
    )
    async with repo(base) as packages:
        with pytest.raises(MalformedResponse, match="not a Simple API answer"):
            await collect(packages.list())
    state.controls.inject(
        200, body="<rss><nope", headers={"Content-Type": "text/xml"}, path_prefix="/rss/"
    )
    async with repo(base) as packages:
        with pytest.raises(MalformedResponse):
            await collect(packages.list(since=datetime.now(UTC)))


# -- URIs and registry ------------------------------------------------------------------


async def test_uris_and_registry(base, monkeypatch) -> None:
    assert get_class("pypi.packages") is Packages
    public = asyncrepo.open("pypi://")
    assert isinstance(public, Packages) and public.json_url and public.rss_url
    assert public.index_url.endswith("/simple")
    await public.aclose()
    host = base.split("://", 1)[1]
    monkeypatch.setenv("PYPI_USERNAME", "me")
    monkeypatch.setenv("PYPI_PASSWORD", "s3cret-pass")
    private = asyncrepo.open(f"pypi+http://{host}/simple?json_url={base}/pypi")
    assert isinstance(private, Packages)
    assert private.index_url == f"{base}/simple" and private.json_url == f"{base}/pypi"
    assert private.rss_url is None and "s3cret-pass" not in repr(private)
    await private.aclose()
    for bad in ("pypi://host/simple", "pypi+https://u:p@host/simple", "pypi+https://h/s?x=1"):
        with pytest.raises(ConfigurationError):
            asyncrepo.open(bad)


async def test_the_default_index_is_the_one_pip_uses(monkeypatch) -> None:
    from pip._internal.models.index import PyPI

    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    public = Packages()
    assert public.index_url == PyPI.simple_url.rstrip("/")
    assert public.json_url == PyPI.pypi_url.rstrip("/") and public.rss_url
    named = Packages(PyPI.simple_url)  # the public index, named: its JSON API and feed too
    assert (named.json_url, named.rss_url) == (public.json_url, public.rss_url)
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple/")
    mirror = Packages()
    assert mirror.index_url == "https://mirror.example/simple"
    assert mirror.json_url is None and mirror.rss_url is None
    for repo in (public, named, mirror):
        await repo.aclose()
