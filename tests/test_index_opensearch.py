"""The OpenSearch index against a real OpenSearch-compatible server (osmem-server, started on
127.0.0.1 by ``tests/osmem_server.py``), and its ``_bulk`` handling against a fake that
rejects items the way a busy cluster does. The same contract runs over the SQLite index:
both give the same answers to the same searches."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

import asyncrepo
from asyncrepo import ConfigurationError, InvalidQuery, ItemNotFound, RateLimited, RetryPolicy
from asyncrepo.exceptions import MalformedResponse
from asyncrepo.index import Index, SourceState
from asyncrepo.index.opensearch import OpenSearchIndex, text_query
from asyncrepo.index.sqlite import SQLiteIndex
from asyncrepo.serve import make_app
from asyncrepo.sync import sync
from tests.fakes._common import serve
from tests.sync_sources import BASE, MemorySource, handbook, record

osmem = pytest.importorskip("tests.osmem_server", reason="tests/osmem_server.py is not here")
osmem_base_url = osmem.osmem_base_url  # the session fixture (skips when the server is absent)
FAST = RetryPolicy(backoff=0.01, max_backoff=0.02, jitter=0.0)
_names = itertools.count()


@pytest.fixture
async def os_index(osmem_base_url: str) -> AsyncIterator[OpenSearchIndex]:
    async with OpenSearchIndex(osmem_base_url, f"t{next(_names)}", batch_size=7) as idx:
        yield idx


@pytest.fixture(params=["sqlite", "opensearch"])
async def any_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Index]:
    if request.param == "sqlite":
        async with SQLiteIndex(tmp_path / "i.db") as idx:
            yield idx
    else:
        url = request.getfixturevalue("osmem_base_url")
        async with OpenSearchIndex(url, f"c{next(_names)}", batch_size=7) as os_idx:
            yield os_idx


async def settle(index: Index) -> None:
    if isinstance(index, OpenSearchIndex):
        await index.refresh()


async def ids(stream: Any) -> list[str]:
    return [i.identifier async for i in stream]


async def test_the_same_answers_from_both_indexes(any_index: Index) -> None:
    sources = {key: MemorySource(records) for key, records in handbook().items()}
    sources["bulk"] = MemorySource({f"n{i:03d}": record(i) for i in range(40)})
    reports = await sync(sources, any_index)
    assert all(r.ok for r in reports.values()), reports
    await settle(any_index)
    assert await any_index.count() == 47 and await any_index.count("jira") == 3

    assert sorted(await ids(any_index.search("reindex"))) == ["jira:AS-101", "jira:AS-130"]
    hits = [i async for i in any_index.search("reindex")]
    assert all(getattr(h, "snippet", None) for h in hits)
    assert sorted(await ids(any_index.search('"search tips"'))) == ["wiki:ENG/Search"]
    assert sorted(await ids(any_index.search("opensear*"))) == ["github:asyncrepo#57"]
    assert sorted(await ids(any_index.search("search", author="alice"))) == [
        "jira:AS-101",
        "wiki:ENG/Search",
    ]
    assert {i.split(":")[0] for i in await ids(any_index.search("search", source=["wiki"]))} == {
        "wiki"
    }
    kinds = {i.kind async for i in any_index.search("search", kind=["pr", "issue"])}
    assert kinds == {"pr", "issue"}
    window = await ids(
        any_index.search(
            "record",
            since=BASE + timedelta(minutes=10),
            until=BASE + timedelta(minutes=13),
        )
    )
    assert sorted(window) == ["bulk:n010", "bulk:n011", "bulk:n012"]
    newest = await ids(any_index.search("record", sort="date"))
    assert newest[:3] == ["bulk:n039", "bulk:n038", "bulk:n037"] and len(newest) == 40

    # Pages with cursors, and a listing in pages.
    pages = [
        [i.identifier for i in p] async for p in any_index.search_pages("record", page_size=15)
    ]
    assert [len(p) for p in pages] == [15, 15, 10]
    assert sorted(i for page in pages for i in page) == sorted(newest)
    listed = [len(p) async for p in any_index.list_pages(page_size=20)]
    assert listed == [20, 20, 7]
    first = await anext(any_index.search_pages("record", page_size=15))
    assert first.cursor is not None
    resumed = await anext(any_index.search_pages("record", page_size=15, cursor=first.cursor))
    assert [i.identifier for i in resumed] == pages[1]

    item = await any_index.get("wiki:ENG/Sync")
    assert item.source == "wiki" and item.raw["author"] == "dave" and item.title
    with pytest.raises(ItemNotFound):
        await any_index.get("wiki:missing")

    # The deletion sweep, and states.
    del sources["bulk"].records["n005"]
    report = (await sync({"bulk": sources["bulk"]}, any_index, full=True))["bulk"]
    assert report.ok and report.deleted == 1
    await settle(any_index)
    assert await any_index.count("bulk") == 39
    with pytest.raises(ItemNotFound):
        await any_index.get("bulk:n005")
    states = await any_index.states()
    assert sorted(states) == ["bulk", "github", "jira", "wiki"]
    assert states["bulk"].generation == 2 and states["bulk"].items == 39


async def test_serve_over_opensearch(os_index: OpenSearchIndex) -> None:
    import aiohttp

    await sync({"wiki": MemorySource(handbook()["wiki"])}, os_index)
    await os_index.refresh()
    async with (
        serve(make_app(os_index)) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/search?q=tips") as response,
    ):
        body = await response.json()
    assert [i["identifier"] for i in body["items"]] == ["ENG/Search"]
    assert "<mark>tips</mark>" in body["items"][0]["snippet_html"].lower()


async def test_open_by_uri(osmem_base_url: str) -> None:
    port = osmem_base_url.rsplit(":", 1)[1]
    async with asyncrepo.open(f"osindex+http://127.0.0.1:{port}/named?batch_size=5") as idx:
        assert isinstance(idx, OpenSearchIndex)
        assert (idx.index, idx.batch_size) == ("named", 5)
        await idx.upsert("s", [MemorySource({"a": record(1)}).item("a")])
        assert (await idx.get("s:a")).title == "Record 1 banana"
    with pytest.raises(ConfigurationError):
        asyncrepo.open("osindex+http://user:pw@127.0.0.1:9200/x")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("osindex+http://127.0.0.1:9200/a/b")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("osindex+http://127.0.0.1:9200/UPPER")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("osindex+http://127.0.0.1:9200/x?colour=red")
    assert asyncrepo.open("osindex+https://example.invalid").scope() == [
        "https://example.invalid",
        "asyncrepo",
    ]


def test_query_translation() -> None:
    clauses = text_query('alpha "exact words" pre* beta')
    assert clauses[0]["multi_match"]["query"] == "alpha beta"
    assert clauses[0]["multi_match"]["operator"] == "and"
    assert clauses[1]["multi_match"]["type"] == "phrase"
    assert clauses[2]["multi_match"] == {
        "query": "pre",
        "fields": ["title^10", "body", "author.text^2"],
        "type": "phrase_prefix",
    }
    with pytest.raises(InvalidQuery):
        text_query("* **")


# -- _bulk against a fake busy cluster -------------------------------------------------------


class BusyCluster:
    """Answers the index set-up calls, and ``_bulk`` the way OpenSearch does: per item, with
    ``status`` and ``error``; the items named in ``reject`` get a 429
    ``es_rejected_execution_exception`` the first ``times`` times they are sent; those named
    in ``refuse`` a 400 ``mapper_parsing_exception``."""

    def __init__(self, reject: set[str], times: int = 1, refuse: frozenset[str] = frozenset()):
        self.reject, self.times, self.refuse = reject, times, refuse
        self.sent: dict[str, int] = {}
        self.bulks: list[list[str]] = []
        self.states: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()

        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"acknowledged": True})

        async def bulk(request: web.Request) -> web.Response:
            lines = (await request.read()).decode().splitlines()
            items, ids, errors = [], [], False
            for action_line in lines[::2]:
                action = orjson.loads(action_line)["index"]
                doc_id = action["_id"]
                ids.append(doc_id)
                self.sent[doc_id] = self.sent.get(doc_id, 0) + 1
                base = {"_index": action["_index"], "_id": doc_id}
                if doc_id in self.refuse:
                    errors = True
                    error = {"type": "mapper_parsing_exception", "reason": "failed to parse"}
                    items.append({"index": {**base, "status": 400, "error": error}})
                elif doc_id in self.reject and self.sent[doc_id] <= self.times:
                    errors = True
                    error = {
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution of coordinating operation",
                    }
                    items.append({"index": {**base, "status": 429, "error": error}})
                else:
                    items.append({"index": {**base, "status": 201, "result": "created"}})
            self.bulks.append(ids)
            return web.json_response({"took": 1, "errors": errors, "items": items})

        async def state(request: web.Request) -> web.Response:
            self.states.append(await request.json())
            return web.json_response({"result": "created"})

        app.router.add_put("/_index_template/{name}", ok)
        app.router.add_put("/{index}", ok)
        app.router.add_post("/_bulk", bulk)
        app.router.add_put("/{index}/_doc/{id}", state)
        return app


def items(n: int) -> list[Any]:
    source = MemorySource({f"i{k:02d}": record(k) for k in range(n)})
    return [source.item(k) for k in sorted(source.records)]


async def test_bulk_batches_are_bounded_and_rejected_items_are_sent_again() -> None:
    cluster = BusyCluster(reject={"s:i03", "s:i08"})
    async with (
        serve(cluster.app()) as base,
        OpenSearchIndex(base, "x", batch_size=4, retry=FAST) as idx,
    ):
        await idx.upsert("s", items(10), state=SourceState("s", cursor="c1"))
    # Batches of at most batch_size; a batch's rejected items go again before the next.
    assert cluster.bulks == [
        ["s:i00", "s:i01", "s:i02", "s:i03"],
        ["s:i03"],
        ["s:i04", "s:i05", "s:i06", "s:i07"],
        ["s:i08", "s:i09"],
        ["s:i08"],
    ]
    assert all(
        count == (2 if key in ("s:i03", "s:i08") else 1) for key, count in cluster.sent.items()
    )
    assert len(cluster.sent) == 10
    assert [s["state"]["cursor"] for s in cluster.states] == ["c1"]  # after every item


async def test_a_cluster_that_keeps_rejecting_ends_in_rate_limited_and_no_checkpoint() -> None:
    cluster = BusyCluster(reject={"s:i01"}, times=1000)
    async with serve(cluster.app()) as base, OpenSearchIndex(base, "x", retry=FAST) as idx:
        with pytest.raises(RateLimited, match="kept rejecting 1 item"):
            await idx.upsert("s", items(3), state=SourceState("s", cursor="c1"))
    assert cluster.sent["s:i01"] == FAST.attempts
    assert cluster.states == []  # the checkpoint did not move


async def test_a_refused_item_is_an_error_and_no_checkpoint() -> None:
    cluster = BusyCluster(reject=set(), refuse=frozenset({"s:i02"}))
    async with serve(cluster.app()) as base, OpenSearchIndex(base, "x", retry=FAST) as idx:
        with pytest.raises(MalformedResponse, match="mapper_parsing_exception"):
            await idx.upsert("s", items(4), state=SourceState("s", cursor="c1"))
    assert cluster.states == []


async def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        OpenSearchIndex("http://127.0.0.1:9", "Bad Name")
    with pytest.raises(ConfigurationError):
        OpenSearchIndex("http://127.0.0.1:9", "x", batch_size=0)
    with pytest.raises(ConfigurationError):
        OpenSearchIndex("ftp://127.0.0.1:9", "x")
    token = OpenSearchIndex("http://127.0.0.1:9", "x", token="t0ken-value-123")
    assert "t0ken-value-123" not in repr(token.client)
    await token.aclose()


async def test_a_lying_cluster_ends_in_our_own_errors() -> None:
    """Answers that are not what OpenSearch sends: MalformedResponse, never a KeyError."""
    app = web.Application()
    answers = {
        "/_bulk": web.json_response({"took": 1, "errors": False}),  # no items
        "/x/_search": web.json_response({"took": 1, "hits": {"total": 3}}),  # no hits list
    }

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"acknowledged": True})

    async def lie(request: web.Request) -> web.Response:
        answer = answers.get(request.path)
        return answer if answer is not None else web.Response(text="<html>not json</html>")

    app.router.add_put("/_index_template/{name}", ok)
    app.router.add_put("/{index}", ok)
    app.router.add_post("/{path:.*}", lie)
    app.router.add_get("/{path:.*}", lie)
    async with serve(app) as base, OpenSearchIndex(base, "x", retry=FAST) as idx:
        with pytest.raises(MalformedResponse, match="without items"):
            await idx.upsert("s", items(2))
        with pytest.raises(MalformedResponse, match="without hits"):
            await ids(idx.search("anything"))
        with pytest.raises(MalformedResponse, match="not JSON"):
            await idx.count()
