"""``asyncrepo serve``'s JSON API over a real socket (aiohttp's server on 127.0.0.1), over a
SQLite index synced from in-memory sources; and the ``sync``/``serve`` CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from typer.testing import CliRunner

from asyncrepo import registry
from asyncrepo.index.base import HIGHLIGHT_START
from asyncrepo.index.sqlite import SQLiteIndex
from asyncrepo.serve import make_app
from asyncrepo.sync import sync
from tests.fakes._common import serve
from tests.sync_sources import MemorySource, handbook, record


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[SQLiteIndex]:
    async with SQLiteIndex(tmp_path / "asyncrepo.db") as idx:
        sources = {key: MemorySource(records) for key, records in handbook().items()}
        many = {f"n{i:03d}": record(i) for i in range(45)}
        sources["bulk"] = MemorySource(many)
        reports = await sync(sources, idx)
        assert all(r.ok for r in reports.values())
        broken = MemorySource({"x": record(1)}, fail_at_page=0)
        await sync({"broken": broken}, idx)
        yield idx


async def get(base: str, path: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(base + path, headers=headers) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


async def test_search_ranks_highlights_and_escapes(index: SQLiteIndex) -> None:
    async with serve(make_app(index)) as base:
        status, body = await get(base, "/search?q=reindex")
        assert status == 200
        titles = [i["title"] for i in body["items"]]
        assert set(titles) == {
            "Search results miss items updated during a reindex",
            "Reindex <b>fails</b> when a source returns 503",
        }
        for item in body["items"]:
            assert item["source"] == "jira" and item["url"].startswith("https://")
            assert "<mark>" in item["snippet_html"].lower()
            assert "<b>" not in item["snippet_html"]  # the source's markup is escaped
            assert HIGHLIGHT_START not in item["snippet"] and item["score"] > 0
        assert body["errors"] == {"broken": "SourceUnavailable: test.memory: the source broke"}


async def test_filters_and_sort(index: SQLiteIndex) -> None:
    async with serve(make_app(index)) as base:
        _, body = await get(base, "/search?q=search&source=wiki,github")
        assert {i["source"] for i in body["items"]} == {"wiki", "github"}
        _, body = await get(base, "/search?q=search&author=alice")
        assert {i["identifier"] for i in body["items"]} == {"AS-101", "ENG/Search"}
        _, body = await get(base, "/search?q=search&kind=pr&kind=issue")
        assert {i["kind"] for i in body["items"]} == {"pr", "issue"}
        _, body = await get(base, "/search?q=search&since=2025-04-01&until=2025-04-30")
        dates = [i["updated_at"][:10] for i in body["items"]]
        assert dates and all("2025-04-01" <= d <= "2025-04-30" for d in dates)
        _, body = await get(base, "/search?q=search&sort=date&source=jira,wiki,github")
        stamps = [i["updated_at"] for i in body["items"]]
        assert stamps == sorted(stamps, reverse=True) and len(stamps) > 3
        _, body = await get(base, "/search?source=bulk&page_size=5")  # no q: newest first
        assert [i["identifier"] for i in body["items"]] == [
            f"n{i:03d}" for i in (44, 43, 42, 41, 40)
        ]


async def test_load_more_with_the_cursor(index: SQLiteIndex) -> None:
    async with serve(make_app(index)) as base:
        seen: list[str] = []
        cursor = None
        for _ in range(20):
            path = "/search?q=record&page_size=10" + (f"&cursor={cursor}" if cursor else "")
            status, body = await get(base, path)
            assert status == 200
            seen += [i["identifier"] for i in body["items"]]
            cursor = body["cursor"]
            if cursor is None:
                break
        assert sorted(seen) == [f"n{i:03d}" for i in range(45)]
        status, body = await get(base, "/search?q=record&cursor=forged")
        assert status == 400 and "cursor" in body["error"]


async def test_items_sources_openapi_and_bad_input(index: SQLiteIndex) -> None:
    async with serve(make_app(index)) as base:
        status, item = await get(base, "/items/wiki/ENG/Sync")
        assert status == 200 and item["raw"]["author"] == "dave" and item["text"]
        status, body = await get(base, "/items/wiki/nope")
        assert status == 404 and "nope" in body["error"]
        _, body = await get(base, "/sources")
        states = {s["source"]: s for s in body["sources"]}
        assert states["jira"]["status"] == "ok" and states["jira"]["items"] == 3
        assert states["broken"]["status"] == "failed"
        assert "broke" in states["broken"]["last_error"]
        assert "extra" not in states["jira"]  # no cursor key leaves the server
        _, spec = await get(base, "/openapi.json")
        assert spec["openapi"].startswith("3.")
        assert {"/search", "/items/{source}/{identifier}", "/sources"} <= set(spec["paths"])
        for bad in ("page_size=0", "page_size=1000", "page_size=x", "since=yesterday", "sort=x"):
            status, body = await get(base, f"/search?q=a&{bad}")
            assert status == 400, bad
        status, page = await get(base, "/")
        assert status == 200 and "<form" in page and 'id="more"' in page


async def test_bearer_token(index: SQLiteIndex) -> None:
    async with serve(make_app(index, token="s3cret-token-value")) as base:
        assert (await get(base, "/search?q=search"))[0] == 401
        assert (await get(base, "/sources", Authorization="Bearer wrong"))[0] == 401
        status, body = await get(base, "/sources", Authorization="Bearer s3cret-token-value")
        assert status == 200 and body["sources"]
        assert (await get(base, "/"))[0] == 200  # the page holds no data; it asks for the token


async def test_only_configured_sources_are_served(index: SQLiteIndex) -> None:
    mine = {"wiki": MemorySource(handbook()["wiki"])}
    async with serve(make_app(index, sources=mine)) as base:
        _, body = await get(base, "/search?q=search")
        assert {i["source"] for i in body["items"]} == {"wiki"}
        _, body = await get(base, "/search?q=search&source=jira")
        assert body["items"] == []
        assert (await get(base, "/items/jira/AS-101"))[0] == 404
        _, body = await get(base, "/sources")
        assert [s["source"] for s in body["sources"]] == ["wiki"]
        assert body == (await get(base, "/sources"))[1]


async def test_javascript_urls_are_never_links(tmp_path: Path) -> None:
    source = MemorySource({"a": record(1)})
    evil = source.item

    def item(key: str) -> Any:
        made = evil(key)
        made.url = "javascript:alert(1)"
        return made

    source.item = item  # type: ignore[method-assign]
    async with SQLiteIndex(tmp_path / "i.db") as idx:
        await sync({"s": source}, idx)
        async with serve(make_app(idx)) as base:
            _, body = await get(base, "/search?q=record")
            assert body["items"][0]["url"] is None


async def test_background_sync_of_configured_sources(tmp_path: Path) -> None:
    source = MemorySource(handbook()["github"])
    async with SQLiteIndex(tmp_path / "i.db") as idx:
        app = make_app(idx, sources={"gh": source}, every=timedelta(hours=1))
        async with serve(app) as base:
            for _ in range(200):  # the first round runs at start; wait for it (bounded)
                _, body = await get(base, "/sources")
                if body["sources"][0]["status"] == "ok":
                    break
                await asyncio.sleep(0.05)
            _, body = await get(base, "/search?q=opensearch")
            assert [i["identifier"] for i in body["items"]] == ["asyncrepo#57"]


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def memtest_scheme() -> None:
    registry.register_scheme("memtest", "tests.sync_sources:from_uri")


def test_cli_sync_status_and_search(tmp_path: Path, memtest_scheme: None) -> None:
    from asyncrepo.cli import app

    data = tmp_path / "records.json"
    data.write_bytes(orjson.dumps({f"r{i}": record(i) for i in range(30)}))
    db = tmp_path / "idx.db"
    runner = CliRunner()
    uri = f"sqlite:///{db}"  # db is absolute: sqlite:////tmp/... (four slashes)
    result = runner.invoke(app, ["sync", f"mem=memtest://{data}", "--index", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    reports = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert reports[0]["source"] == "mem" and reports[0]["seen"] == 30 and reports[0]["ok"]

    result = runner.invoke(app, ["sync", "--status", "--index", uri])
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout.splitlines()[0])
    assert status["source"] == "mem" and status["status"] == "ok" and status["items"] == 30

    # `asyncrepo search QUERY --index URI`'s way in: the index opens by URI.
    async def search() -> list[str]:
        async with registry.open(uri) as idx:
            return [item.identifier async for item in idx.search("banana")]

    found = asyncio.run(search())
    assert found and all(i.startswith("mem:") for i in found)
    # ... and from the command line, each result names the source it was synced from.
    result = runner.invoke(app, ["search", "banana", "--index", uri, "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["identifier"] for r in printed) == sorted(found)
    assert {r["source"] for r in printed} == {"mem"}

    # A failing source: exit 1, its error on stderr, the state records it.
    result = runner.invoke(
        app, ["sync", f"mem=memtest://{data}", "-o", "fail_at_page=0", "--full", "--index", uri]
    )
    assert result.exit_code == 1
    assert "mem failed" in result.stderr and "broke" in result.stderr


def test_cli_sync_needs_a_source(tmp_path: Path) -> None:
    from asyncrepo.cli import app

    result = CliRunner().invoke(app, ["sync", "--index", f"sqlite:///{tmp_path}/i.db"])
    assert result.exit_code == 2 and "at least one source" in result.stderr
    result = CliRunner().invoke(app, ["sync", "demo:", "--index", "demo:"])
    assert result.exit_code == 2 and "not an index" in result.stderr


def test_cli_serve_binds_to_localhost_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncrepo.serve
    from asyncrepo.cli import app

    calls: list[tuple[Any, str, int]] = []

    async def fake_serve_forever(application: Any, host: str, port: int) -> None:
        calls.append((application, host, port))

    monkeypatch.setattr(asyncrepo.serve, "serve_forever", fake_serve_forever)
    uri = f"sqlite:///{tmp_path}/i.db"
    result = CliRunner().invoke(app, ["serve", "--index", uri])
    assert result.exit_code == 0, result.output
    application, host, port = calls[-1]
    assert (host, port) == ("127.0.0.1", 8080)
    assert application[asyncrepo.serve.TOKEN_KEY] is None
    monkeypatch.setenv("ASYNCREPO_SERVE_TOKEN", "from-the-environment")
    result = CliRunner().invoke(app, ["serve", "--index", uri, "--port", "9000"])
    assert result.exit_code == 0, result.output
    application, host, port = calls[-1]
    assert port == 9000 and application[asyncrepo.serve.TOKEN_KEY] == "from-the-environment"


def test_cli_sync_every_runs_rounds(
    tmp_path: Path, memtest_scheme: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncrepo.sync
    from asyncrepo.cli import app

    seen: list[tuple[list[str], timedelta]] = []

    async def one_round(
        repositories: Any, index: Any, every: timedelta, *, on_round: Any, **options: Any
    ) -> None:
        """sync_forever, one round only."""
        seen.append((sorted(repositories), every))
        assert options["overlap"] == timedelta(minutes=10)
        on_round(await asyncrepo.sync.sync(repositories, index, **options))

    monkeypatch.setattr(asyncrepo.sync, "sync_forever", one_round)
    data = tmp_path / "records.json"
    data.write_bytes(orjson.dumps({"r1": record(1)}))
    uri = f"sqlite:///{tmp_path}/i.db"
    args = ["sync", f"mem=memtest://{data}", "--index", uri, "--every", "15m"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [(["mem"], timedelta(minutes=15))]
    report = orjson.loads(result.stdout.splitlines()[0])  # each round's reports
    assert report["source"] == "mem" and report["seen"] == 1 and report["ok"]
