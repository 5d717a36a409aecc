"""CSVRows over http(s) URLs, against a local aiohttp server: chunked streaming, charsets,
gzip, errors, and the download cache (TTL, ETag / Last-Modified revalidation, 304s)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import asyncrepo
from asyncrepo import (
    ConfigurationError,
    MalformedResponse,
    RetryPolicy,
    SourceUnavailable,
)
from asyncrepo.repositories.file import _cache
from asyncrepo.repositories.file.csv_rows import CSVRows
from tests._loop_turns import loop_turns
from tests.fakes._common import FakeControls, controls_middleware, serve

N_ROWS = 10_000


def csv_bytes(rows: list[list[str]], header: tuple[str, ...] = ("id", "name")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


BIG = csv_bytes(
    [[f"r{i:05d}", f"Name {i}" + (" needle" if i % 2500 == 7 else "")] for i in range(N_ROWS)]
)


@dataclass
class Served:
    body: bytes
    content_type: str = "text/csv; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    chunked: bool = True


@dataclass
class CSVServer:
    """Serves ``files`` (path -> Served) and counts full bodies sent per path."""

    files: dict[str, Served] = field(default_factory=dict)
    controls: FakeControls = field(default_factory=FakeControls)
    bodies: Counter[str] = field(default_factory=Counter)
    base: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def statuses(self, path: str) -> list[int | None]:
        return [r.status for r in self.controls.requests if r.path == path]


def make_app(state: CSVServer) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/broken.csv":  # promises more than it sends, then hangs up
            response = web.StreamResponse(headers={"Content-Type": "text/csv"})
            response.content_length = 1_000_000
            await response.prepare(request)
            await response.write(b"a,b\n1,2\n")
            assert request.transport is not None
            request.transport.close()
            return response
        if request.path == "/stall.csv":  # sends 5000 rows, then waits for release
            response = web.StreamResponse(headers={"Content-Type": "text/csv"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"a,b\n" + b"1,2\n" * 5000)
            await state.release.wait()
            return response
        served = state.files.get(request.path)
        if served is None:
            raise web.HTTPNotFound(text="no such file")
        validators = {}
        if served.etag:
            validators["ETag"] = served.etag
        if served.last_modified:
            validators["Last-Modified"] = served.last_modified
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if (served.etag and inm == served.etag) or (
            not served.etag and served.last_modified and ims == served.last_modified
        ):
            return web.Response(status=304, headers=validators)
        response = web.StreamResponse(headers={"Content-Type": served.content_type, **validators})
        if served.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(served.body)
        await response.prepare(request)
        for start in range(0, len(served.body), 50_000):
            await response.write(served.body[start : start + 50_000])
        await response.write_eof()
        state.bodies[request.path] += 1
        return response

    app = web.Application(middlewares=[controls_middleware(state.controls)])
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.fixture
async def server() -> AsyncIterator[CSVServer]:
    state = CSVServer()
    state.files["/big.csv"] = Served(BIG, etag='"v1"')
    async with serve(make_app(state)) as base:
        state.base = base
        yield state


class Clock:
    """Stands in for the cache's clock: ``advance`` ages every cached entry."""

    def __init__(self) -> None:
        import time

        self._time = time.time
        self.offset = 0.0

    def time(self) -> float:
        return self._time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_cache, "time", fake)
    return fake


async def collect(iterator: Any) -> list[Any]:
    return [x async for x in iterator]


def expected_ids() -> list[str]:
    return [f"r{i:05d}" for i in range(N_ROWS)]


# -- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False])
async def test_list_a_url(server: CSVServer, chunked: bool) -> None:
    server.files["/big.csv"].chunked = chunked
    async with CSVRows(server.url("/big.csv"), identifier="id") as repo:
        items = await collect(repo.list())
        assert [i.identifier for i in items] == expected_ids()
        assert items[5].raw == {"id": "r00005", "name": "Name 5"}
        pages = [p async for p in repo.list_pages(page_size=7)]
        assert [i.identifier for p in pages for i in p] == expected_ids()
        assert [i.identifier async for i in repo.search("NEEDLE")] == [
            "r00007",
            "r02507",
            "r05007",
            "r07507",
        ]
        assert (await repo.get("r09999")).raw["name"] == "Name 9999"
    # No cache: every call downloads.
    assert server.controls.count("/big.csv") == 4
    sent = server.controls.requests[0].headers
    assert "text/csv" in sent.get("Accept", "")


@pytest.mark.parametrize("worker_thread", [False, True])
@pytest.mark.parametrize("gzipped", [False, True])
async def test_a_url_listing_matches_dictreader_whatever_the_chunks(
    server: CSVServer, monkeypatch: pytest.MonkeyPatch, worker_thread: bool, gzipped: bool
) -> None:
    """Multi-line quoted fields, "\r\n" and blank lines, cut by the server's writes and
    by the network anywhere (the server writes 50,000 bytes at a time; a read takes what
    has come): the rows are DictReader's, on the loop or in a thread."""
    import gzip

    rows = []
    for i in range(20_000):
        body = f'"line one\r\nline ""two""\n{i}"' if i % 3 else f"plain {i}"
        rows.append(f"{i},{body},{'x' * (i % 97)}\r\n" + ("\r\n" if i % 1000 == 5 else ""))
    text = "id,body,pad\r\n" + "".join(rows)
    data = text.encode()
    server.files["/tricky.csv"] = Served(gzip.compress(data) if gzipped else data)
    expected = list(csv.DictReader(io.StringIO(text, newline="")))
    async with CSVRows(server.url("/tricky.csv"), worker_thread=worker_thread) as repo:
        assert [i.raw async for i in repo.list()] == expected
        pages = [p async for p in repo.list_pages(page_size=333)]
        cursor = pages[10].cursor
        assert cursor is not None
        rest = [i.raw async for p in repo.list_pages(page_size=333, cursor=cursor) for i in p]
        assert rest == expected[11 * 333 :]


async def test_a_url_listing_lets_other_tasks_run(server: CSVServer) -> None:
    async with loop_turns() as turns, CSVRows(server.url("/big.csv")) as repo:
        assert len(await collect(repo.list())) == N_ROWS
    assert turns.count >= N_ROWS // 4096


async def test_cursor_resumes_on_a_url(server: CSVServer) -> None:
    async with CSVRows(server.url("/big.csv"), identifier="id") as repo:
        stream = repo.list_pages(page_size=4000)
        first = await anext(stream)
        await stream.aclose()
    assert first.cursor is not None
    async with CSVRows(server.url("/big.csv"), identifier="id") as fresh:
        rest = [i.identifier async for i in fresh.list(cursor=first.cursor)]
    assert [i.identifier for i in first] + rest == expected_ids()


async def test_latin1_charset_from_content_type(server: CSVServer) -> None:
    body = "id,name\n1,Müller\n2,Café crème\n".encode("latin-1")
    server.files["/latin.csv"] = Served(body, content_type="text/csv; charset=ISO-8859-1")
    async with CSVRows(server.url("/latin.csv")) as repo:
        assert [i.raw["name"] async for i in repo.list()] == ["Müller", "Café crème"]
        assert [i.identifier async for i in repo.search("CRÈME")] == ["1"]
    # encoding= wins over the server's charset.
    server.files["/mislabelled.csv"] = Served(
        "id,name\n1,Zoë\n".encode(), content_type="text/csv; charset=latin-1"
    )
    async with CSVRows(server.url("/mislabelled.csv"), encoding="utf-8") as repo:
        assert (await repo.get("0")).raw["name"] == "Zoë"


async def test_bom_and_unknown_charset(server: CSVServer) -> None:
    server.files["/bom.csv"] = Served(
        b"\xef\xbb\xbfid,name\n1,x\n", content_type="text/csv; charset=no-such-charset"
    )
    async with CSVRows(server.url("/bom.csv"), identifier="id") as repo:
        assert (await repo.get("1")).raw == {"id": "1", "name": "x"}


async def test_gzip_url(server: CSVServer) -> None:
    server.files["/big.csv.gz"] = Served(gzip.compress(BIG), content_type="application/gzip")
    async with CSVRows(server.url("/big.csv.gz"), identifier="id") as repo:
        assert [i.identifier async for i in repo.list()] == expected_ids()
        assert (await repo.get("r04096")).raw["name"] == "Name 4096"


async def test_undecodable_url_names_the_line(server: CSVServer) -> None:
    server.files["/bad.csv"] = Served(b"a,b\n1,2\n\x00\xff\xfe\x81\n")
    async with CSVRows(server.url("/bad.csv")) as repo:
        with pytest.raises(MalformedResponse, match=r"/bad\.csv: line 3"):
            await collect(repo.list())


async def test_404_is_a_configuration_error(server: CSVServer) -> None:
    async with CSVRows(server.url("/missing.csv")) as repo:
        with pytest.raises(ConfigurationError, match="404") as caught:
            await collect(repo.list())
        assert caught.value.status == 404
        with pytest.raises(ConfigurationError):
            await repo.get("0")  # not ItemNotFound: it is the file that is missing
    assert server.statuses("/missing.csv") == [404, 404]


async def test_broken_download_is_source_unavailable(server: CSVServer) -> None:
    async with CSVRows(server.url("/broken.csv"), retry=RetryPolicy(attempts=1)) as repo:
        with pytest.raises(SourceUnavailable, match="connection broke"):
            await collect(repo.list())


async def test_abandoning_a_url_listing(server: CSVServer) -> None:
    async with CSVRows(server.url("/big.csv")) as repo:
        stream = repo.list()
        async for _item in stream:
            break
        await stream.aclose()
        # The connection went back to the pool or was closed: the next call works.
        assert (await repo.get("3")).identifier == "3"


async def test_rows_stream_before_the_download_ends_and_cancel_is_clean(
    server: CSVServer,
) -> None:
    async with CSVRows(server.url("/stall.csv"), cache="memory") as repo:
        got: list[Any] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for item in repo.list():
                got.append(item)
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 10)  # while the server still holds the body
        assert got[0].raw == {"a": "1", "b": "2"}
        task.cancel()  # the worker thread blocked on the network must not hang the loop
        with pytest.raises(asyncio.CancelledError):
            await task
        assert repo.cache is not None and repo.cache.open(server.url("/stall.csv")) is None
    server.release.set()


async def test_open_a_url(server: CSVServer) -> None:
    async with asyncrepo.open(server.url("/big.csv"), identifier="id") as repo:
        assert isinstance(repo, CSVRows)
        assert (await repo.get("r00042")).raw["name"] == "Name 42"
        assert repr(repo).startswith("<CSVRows 'http://127.0.0.1:")


# -- the cache --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return "memory" if request.param == "memory" else str(tmp_path / "cache")


async def test_within_the_ttl_nothing_is_downloaded_again(
    server: CSVServer, cache: Any, clock: Clock
) -> None:
    async with CSVRows(server.url("/big.csv"), identifier="id", cache=cache) as repo:
        assert len(await collect(repo.list())) == N_ROWS
        assert len(await collect(repo.search("needle"))) == 4
        assert (await repo.get("r09999")).identifier == "r09999"
        pages = [p async for p in repo.list_pages(page_size=100)]
        assert len(pages) == N_ROWS // 100
        clock.advance(299)
        assert (await repo.get("r00000")).raw["name"] == "Name 0"
    assert server.controls.count("/big.csv") == 1
    assert server.bodies["/big.csv"] == 1


async def test_get_first_fills_the_cache(server: CSVServer, cache: Any) -> None:
    # A get that finds its row early still keeps the whole download for the next call.
    async with CSVRows(server.url("/big.csv"), cache=cache) as repo:
        assert (await repo.get("0")).raw["id"] == "r00000"
        assert (await repo.get("1")).raw["id"] == "r00001"
        assert len(await collect(repo.list())) == N_ROWS
    assert server.controls.count("/big.csv") == 1


async def test_ttl_expiry_revalidates_with_etag_and_304(
    server: CSVServer, cache: Any, clock: Clock
) -> None:
    async with CSVRows(server.url("/big.csv"), identifier="id", cache=cache, cache_ttl=60) as repo:
        first = [i.raw async for i in repo.list()]
        clock.advance(61)
        again = [i.raw async for i in repo.list()]  # revalidated: 304, read from the cache
        assert again == first
        assert server.statuses("/big.csv") == [200, 304]
        assert server.controls.requests[-1].headers.get("If-None-Match") == '"v1"'
        assert server.bodies["/big.csv"] == 1
        # The 304 made the entry fresh again: no request within the next TTL.
        clock.advance(30)
        assert len(await collect(repo.search("needle"))) == 4
        assert server.controls.count("/big.csv") == 2


async def test_ttl_expiry_then_new_content(server: CSVServer, cache: Any, clock: Clock) -> None:
    async with CSVRows(server.url("/big.csv"), identifier="id", cache=cache, cache_ttl=60) as repo:
        assert len(await collect(repo.list())) == N_ROWS
        server.files["/big.csv"] = Served(csv_bytes([["n1", "New"], ["n2", "Newer"]]), etag='"v2"')
        clock.advance(10)
        assert len(await collect(repo.list())) == N_ROWS  # still fresh: the old content
        clock.advance(60)
        assert [i.identifier async for i in repo.list()] == ["n1", "n2"]
        assert server.statuses("/big.csv") == [200, 200]
        assert server.controls.requests[-1].headers.get("If-None-Match") == '"v1"'
        clock.advance(61)
        assert (await repo.get("n2")).raw["name"] == "Newer"
        assert server.statuses("/big.csv") == [200, 200, 304]
        assert server.controls.requests[-1].headers.get("If-None-Match") == '"v2"'
    assert server.bodies["/big.csv"] == 2


async def test_last_modified_revalidation(server: CSVServer, cache: Any, clock: Clock) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.files["/lm.csv"] = Served(csv_bytes([["1", "x"]]), last_modified=stamp)
    async with CSVRows(server.url("/lm.csv"), cache=cache, cache_ttl=1) as repo:
        assert len(await collect(repo.list())) == 1
        clock.advance(5)
        assert len(await collect(repo.list())) == 1
    assert server.statuses("/lm.csv") == [200, 304]
    assert server.controls.requests[-1].headers.get("If-Modified-Since") == stamp
    assert server.bodies["/lm.csv"] == 1


async def test_disk_cache_is_shared_by_fresh_instances(
    server: CSVServer, tmp_path: Path, clock: Clock
) -> None:
    directory = tmp_path / "shared"
    async with CSVRows(server.url("/big.csv"), cache=str(directory)) as repo:
        assert len(await collect(repo.list())) == N_ROWS
    async with CSVRows(server.url("/big.csv"), cache=directory, cache_ttl=60) as fresh:
        assert (await fresh.get("9999")).raw["id"] == "r09999"
        clock.advance(120)
        assert (await fresh.get("0")).raw["id"] == "r00000"
    assert server.statuses("/big.csv") == [200, 304]
    assert not list(directory.glob(".part-*"))


async def test_an_abandoned_download_is_not_cached(server: CSVServer, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    async with CSVRows(server.url("/big.csv"), cache=str(directory)) as repo:
        stream = repo.list()
        async for _item in stream:
            break
        await stream.aclose()
        assert not list(directory.iterdir())  # no half file, no metadata
        assert len(await collect(repo.list())) == N_ROWS
        assert len(await collect(repo.list())) == N_ROWS
    assert server.controls.count("/big.csv") == 2


async def test_a_failed_download_is_not_cached(server: CSVServer) -> None:
    async with CSVRows(
        server.url("/broken.csv"), cache="memory", retry=RetryPolicy(attempts=1)
    ) as repo:
        for _ in range(2):
            with pytest.raises(SourceUnavailable):
                await collect(repo.list())
    assert server.controls.count("/broken.csv") == 2


async def test_a_cache_that_cannot_write_never_fails_the_call(
    server: CSVServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def full_disk(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    directory = tmp_path / "cache"
    async with CSVRows(server.url("/big.csv"), identifier="id", cache=str(directory)) as repo:
        monkeypatch.setattr("asyncrepo.repositories.file._cache.tempfile.mkstemp", full_disk)
        with caplog.at_level("WARNING", logger="asyncrepo.file"):
            assert len(await collect(repo.list())) == N_ROWS
            assert (await repo.get("r09999")).raw["name"] == "Name 9999"
        monkeypatch.undo()
        assert len(await collect(repo.list())) == N_ROWS  # now it is cached
        assert len(await collect(repo.list())) == N_ROWS
    assert server.controls.count("/big.csv") == 3
    assert "is not cached" in caplog.text and "No space left" in caplog.text
    assert list(directory.glob("*.data")) and not list(directory.glob(".part-*"))


async def test_concurrent_calls_with_a_cache(server: CSVServer, cache: Any) -> None:
    async with CSVRows(server.url("/big.csv"), cache=cache) as repo:
        results = await asyncio.gather(*(collect(repo.list()) for _ in range(3)))
        assert all(len(r) == N_ROWS for r in results)
        assert len(await collect(repo.list())) == N_ROWS
    # Concurrent cold calls may each download; once cached, no more downloads.
    assert server.controls.count("/big.csv") <= 3
