"""CSVRows against data that would hurt: a 16 MB field (the loop must keep turning), an HTML
page where a CSV file should be (a login wall answered with a 200), repeated and empty
header names (no column may be lost), and repeated gets (an offset index, not a rescan)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asyncrepo import ItemNotFound, MalformedResponse
from asyncrepo.repositories.file import _get, _offsets
from asyncrepo.repositories.file.csv_rows import CSVRows
from tests._loop_turns import loop_turns
from tests.fakes._common import serve
from tests.test_csv_url import CSVServer, Served, make_app

BIG = 16 << 20


async def collect(stream: Any) -> list[Any]:
    return [item async for item in stream]


@pytest.fixture
async def server() -> AsyncIterator[CSVServer]:
    state = CSVServer()
    async with serve(make_app(state)) as base:
        state.base = base
        yield state


# -- a long field ----------------------------------------------------------------------


@pytest.mark.parametrize("newlines", [True, False])
@pytest.mark.parametrize(
    ("worker_thread", "backend"), [(False, "python"), (True, "python"), (False, "auto")]
)
async def test_a_16_mb_field_does_not_hold_the_loop(
    tmp_path: Path, newlines: bool, worker_thread: bool, backend: str
) -> None:
    """The loop turns while a 16 MB quoted field is read: at least once per MiB (the
    listing hands the loop back after every chunk and parses a long record in a worker
    thread; a search and a get parse in a worker thread)."""
    line = "x" * 99 + ("\n" if newlines else "y")
    field = line * (BIG // 100)
    path = tmp_path / "long.csv"
    path.write_text(f'id,big,after\n1,small,a\n2,"{field}",b\n3,small,needle\n', newline="")
    repo = CSVRows(path, worker_thread=worker_thread, backend=backend)
    async with loop_turns() as turns:
        items = await collect(repo.list())
    assert [len(i.raw["big"]) for i in items] == [5, len(field), 5]
    assert items[1].raw["after"] == "b"
    assert turns.count >= BIG >> 20
    async with loop_turns() as turns:
        assert [i.identifier async for i in repo.search("needle")] == ["2"]
    assert turns.count >= BIG >> 20
    async with loop_turns() as turns:
        assert (await repo.get("1")).raw["after"] == "b"
    assert turns.count >= BIG >> 20


# -- an HTML page ----------------------------------------------------------------------

LOGIN = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>...</body></html>\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (LOGIN, "text/html; charset=utf-8"),  # said by its type
        (b"id,name\n1,a\n", "text/html"),  # even if the body would parse
        (LOGIN, "text/csv"),  # said by its first bytes
        (b"\xef\xbb\xbf  \n<HTML lang=en>\n<p>moved</p>", "application/octet-stream"),
    ],
)
async def test_an_html_page_is_malformed(
    server: CSVServer, tmp_path: Path, body: bytes, content_type: str
) -> None:
    server.files["/login.csv"] = Served(body, content_type=content_type)
    url = server.url("/login.csv")
    for options in ({}, {"worker_thread": True}, {"cache": tmp_path / "cache"}):
        repo = CSVRows(url, **options)
        with pytest.raises(MalformedResponse, match="HTML") as raised:
            await collect(repo.list())
        assert "reject_html=False" in str(raised.value)
        with pytest.raises(MalformedResponse, match="HTML"):
            await collect(repo.search("a"))
        with pytest.raises(MalformedResponse, match="HTML"):
            await repo.get("0")
        await repo.aclose()
    # Nothing was cached: the next call downloads (and refuses) again.
    assert not list((tmp_path / "cache").glob("*.data"))
    # The opt-out reads it as CSV, whatever it is.
    async with CSVRows(url, reject_html=False) as repo:
        assert await collect(repo.list()) or body.count(b"\n") <= 1


async def test_a_local_html_file_is_malformed_and_a_csv_with_tags_is_not(tmp_path: Path) -> None:
    page = tmp_path / "saved.csv"
    page.write_bytes(LOGIN)
    with pytest.raises(MalformedResponse, match=r"saved\.csv: this is an HTML page"):
        await collect(CSVRows(page).list())
    with pytest.raises(MalformedResponse, match="HTML"):
        await CSVRows(page).get("0")
    tags = tmp_path / "tags.csv"
    tags.write_text("<b>name</b>,<i>x</i>\n<html>,2\n")  # markup in cells, not a page
    assert [i.raw for i in await collect(CSVRows(tags).list())] == [
        {"<b>name</b>": "<html>", "<i>x</i>": "2"}
    ]


# -- header names ----------------------------------------------------------------------


async def test_repeated_and_empty_header_names_keep_every_column(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a,,b,a_2,\n1,2,3,4,5,6\n7,8,9,10,11,12\n")
    repo = CSVRows(path, identifier="a_3")
    with caplog.at_level(logging.WARNING, logger="asyncrepo.file"):
        items = await collect(repo.list())
        await collect(repo.list())
    assert items[0].raw == {
        "a": "1",
        "a_3": "2",
        "column_3": "3",
        "b": "4",
        "a_2": "5",
        "column_6": "6",
    }
    assert [i.identifier for i in items] == ["2", "8"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per repository and header
    assert "'a' (column 2) -> 'a_3'" in warnings[0] and "column_3" in warnings[0]
    assert (await repo.get("8")).raw["column_6"] == "12"  # the index names them alike
    assert [i.identifier async for i in repo.search("11")] == ["8"]


# -- repeated gets ---------------------------------------------------------------------


def tricky_rows(count: int) -> list[list[str]]:
    rows = []
    for i in range(count):
        name = ["plain", "quoted, comma", 'say "hi"', "multi\nline", "ünïcødé ✓", ""][i % 6]
        rows.append([f"k{i * 7919 % count}", name, str(i)][: 3 - (i % 50 == 3)])
    return rows


def write_tricky(path: Path, count: int, encoding: str = "utf-8", bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else encoding) as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(["id", "name", "n"])
        for i, row in enumerate(tricky_rows(count)):
            if encoding == "cp1252":  # what cp1252 has: "€" (byte 0x80)
                row = [value.replace("✓", "€") for value in row]
            writer.writerow(row)
            if i % 97 == 5:
                f.write("\r\n")  # a blank line: not a row
    return path


class Counting:
    """Counts index builds and the bytes each indexed get reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.builds = 0
        self.reads: list[int] = []
        build, read = _offsets.build_index, _offsets.read_rows_at

        def counted_build(*args: Any, **kwargs: Any) -> Any:
            self.builds += 1
            return build(*args, **kwargs)

        def counted_read(*args: Any) -> Any:
            self.reads.append(args[2])
            return read(*args)

        monkeypatch.setattr(_get, "build_index", counted_build)
        monkeypatch.setattr(_get, "read_rows_at", counted_read)


@pytest.mark.parametrize("identifier", [None, "id", ("id", "n")])
@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-8", False), ("utf-8", True), ("cp1252", False)]
)
async def test_gets_seek_by_an_offset_index(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    identifier: Any,
    encoding: str,
    bom: bool,
) -> None:
    """Every row got through the index equals the listing's; the file is scanned once for
    all the gets, and each get reads at most a checkpoint's stretch of rows."""
    count = 2_000
    path = write_tricky(tmp_path / "t.csv", count, encoding, bom)
    options: dict[str, Any] = {"encoding": encoding} if encoding != "utf-8" else {}
    if identifier is not None:
        options["identifier"] = identifier
    repo = CSVRows(path, **options)
    listed = await collect(repo.list())
    assert len(listed) == count
    counting = Counting(monkeypatch)
    for item in listed[::-7] + listed[:5]:
        got = await repo.get(item.identifier)
        assert (got.identifier, got.raw) == (item.identifier, item.raw)
    assert counting.builds == 1
    stretch = max(counting.reads)
    assert stretch < 64 * 80 and len(counting.reads) >= len(listed[::-7])
    with pytest.raises(ItemNotFound):
        await repo.get("2000" if identifier is None else "nope")
    assert counting.builds == 1


async def test_the_index_follows_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tricky(tmp_path / "t.csv", 5_000)  # more than is read ahead of a get
    repo = CSVRows(path, identifier="n")
    counting = Counting(monkeypatch)
    assert (await repo.get("499")).raw["n"] == "499"
    path.write_text("n,what\n499,rewritten\n")  # another size, another mtime
    assert (await repo.get("499")).raw == {"n": "499", "what": "rewritten"}
    with pytest.raises(ItemNotFound):
        await repo.get("3")
    assert counting.builds == 2


async def test_the_index_follows_a_same_size_rewrite_that_keeps_the_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `cp -p` does to a file that exists: rewrite it in place, then set its times back
    # to the original's. Same inode, same size, same mtime; only the ctime tells.
    path = tmp_path / "t.csv"
    old = "n,what\n" + "".join(f"{i},{'x' * (i % 7)}\n" for i in range(399))
    new = "n,what\n" + "".join(f"{i},{'y' * (6 - i % 7)}\n" for i in range(399))
    assert len(old) == len(new) and old.splitlines()[200] != new.splitlines()[200]
    path.write_text(old)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    inode = path.stat().st_ino
    repo = CSVRows(path)
    counting = Counting(monkeypatch)
    assert (await repo.get("199")).raw == {"n": "199", "what": "x" * (199 % 7)}
    await asyncio.sleep(0.05)  # past the clock's tick: the rewrite gets another ctime
    with path.open("r+") as f:
        f.write(new)
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert path.stat().st_ino == inode and path.stat().st_size == len(old)
    assert (await repo.get("199")).raw == {"n": "199", "what": "y" * (6 - 199 % 7)}
    assert counting.builds == 2


@pytest.mark.parametrize("kind", ["gzip", "utf-16", "bad-utf-8"])
async def test_files_the_index_cannot_cover_are_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    text = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(300))
    path = tmp_path / "f.csv"
    if kind == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    elif kind == "utf-16":
        path.write_text(text, encoding="utf-16")
    else:
        path.write_bytes(text.encode() + b"300,\xff\n")
    repo = CSVRows(path, identifier="id")
    counting = Counting(monkeypatch)
    if kind == "bad-utf-8":  # the scan names the line, as before the index
        with pytest.raises(MalformedResponse, match="line 302"):
            await repo.get("299")
    else:
        assert (await repo.get("299")).raw == {"id": "299", "name": "n299"}
    assert counting.reads == []


async def test_a_url_in_the_disk_cache_is_indexed(
    server: CSVServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = write_tricky(tmp_path / "src.csv", 1_000).read_bytes()
    server.files["/t.csv"] = Served(body, etag='"v1"')
    counting = Counting(monkeypatch)
    async with CSVRows(server.url("/t.csv"), identifier="id", cache=tmp_path / "c") as repo:
        listed = await collect(repo.list())  # downloads into the cache
        for item in listed[::50]:
            got = await repo.get(item.identifier)
            assert got.raw == item.raw
    assert server.bodies["/t.csv"] == 1
    assert counting.builds == 1 and len(counting.reads) >= len(listed[::50])


async def test_the_index_is_small(tmp_path: Path) -> None:
    count = 20_000
    path = tmp_path / "n.csv"
    path.write_text("id,v\n" + "".join(f"{i},{i * i}\n" for i in range(count)))
    by_index, by_id = CSVRows(path), CSVRows(path, identifier="id")
    await by_index.get("5")
    await by_id.get("5")
    assert by_index._row_index is not None and by_id._row_index is not None
    assert by_index._row_index.size <= count // _offsets.CHECKPOINT * 8 + 16
    assert by_id._row_index.size <= count * 16 + count // _offsets.CHECKPOINT * 8 + 16
