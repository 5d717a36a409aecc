"""The download caches on their own: a cached copy's entry always comes with the bytes of the
same download, whatever other downloads of the URL do meanwhile, and a cache that cannot
write never fails a read. (Caching as CSVRows uses it: tests/test_csv_url.py.)"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from asyncrepo import ConfigurationError
from asyncrepo.repositories.file._cache import (
    CachedCopy,
    CachedFile,
    DiskCache,
    DownloadCache,
    MemoryCache,
)
from asyncrepo.repositories.file.csv_rows import CSVRows

URL = "https://files.example/data.csv?token=s3cr3t"


def entry(version: str) -> CachedFile:
    return CachedFile(URL, etag=f'"{version}"', last_modified=None, charset=None, fetched_at=0.0)


def body(version: str) -> bytes:
    return f"id,version\n1,{version}\n".encode() * 1000


def download(cache: DownloadCache, version: str) -> Any:
    """A writer that has received the whole of ``version`` and waits to commit."""
    writer = cache.writer(entry(version))
    data = body(version)
    for start in range(0, len(data), 4096):
        writer.write(data[start : start + 4096])
    return writer


def read(copy: CachedCopy) -> bytes:
    try:
        return b"".join(copy.chunks)
    finally:
        copy.close()


def assert_consistent(cache: DownloadCache, version: str) -> None:
    copy = cache.open(URL)
    assert copy is not None
    assert copy.entry.etag == f'"{version}"'
    assert read(copy) == body(version)


@pytest.fixture(params=["memory", "disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> DownloadCache:
    return MemoryCache() if request.param == "memory" else DiskCache(tmp_path / "cache")


def test_a_committed_download_is_its_own_entry_and_bytes(cache: DownloadCache) -> None:
    assert cache.open(URL) is None
    download(cache, "v1").commit()
    assert_consistent(cache, "v1")
    download(cache, "v2").commit()
    assert_consistent(cache, "v2")
    aborted = download(cache, "v3")
    aborted.abort()
    assert_consistent(cache, "v2")


def test_a_reader_keeps_its_download_while_a_newer_one_lands(cache: DownloadCache) -> None:
    download(cache, "v1").commit()
    copy = cache.open(URL)
    assert copy is not None
    first = next(copy.chunks)
    download(cache, "v2").commit()  # and, on disk, the v1 file is swept
    rest = b"".join(copy.chunks)
    assert copy.entry.etag == '"v1"' and first + rest == body("v1")
    assert_consistent(cache, "v2")


def test_touch_refreshes_only_the_copy_still_current(cache: DownloadCache) -> None:
    download(cache, "v1").commit()
    old = cache.open(URL)
    assert old is not None and old.entry.fetched_at == 0.0
    cache.touch(old)  # a 304 for v1: v1 is fresh again
    old.close()
    refreshed = cache.open(URL)
    assert refreshed is not None and time.time() - refreshed.entry.fetched_at < 60
    download(cache, "v2").commit()
    cache.touch(refreshed)  # a late 304 for v1 must not bring v1's entry back
    refreshed.close()
    assert_consistent(cache, "v2")
    current = cache.open(URL)
    assert current is not None and current.entry.fetched_at == 0.0
    current.close()


@pytest.mark.parametrize("at_call", [1, 2])
@pytest.mark.parametrize("order", ["first-started-commits-first", "second-commits-inside-first"])
def test_two_processes_committing_at_once_never_mix_their_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_call: int, order: str
) -> None:
    """Two DiskCaches on one directory (two processes sharing it): the second download
    commits at each step of the first one's commit. Whoever wins, the entry names the
    bytes of its own download; the loser's file is removed, at once or, when the two
    commits overlapped, by a sweep once it is ``ORPHAN_AGE`` old."""
    directory = tmp_path / "shared"
    one, two = DiskCache(directory), DiskCache(directory)
    first, second = download(one, "v1"), download(two, "v2")
    real_replace = os.replace
    calls = 0

    def replace(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == at_call and order == "second-commits-inside-first":
            second.commit()
        real_replace(src, dst)

    monkeypatch.setattr("asyncrepo.repositories.file._cache.os.replace", replace)
    first.commit()
    if order == "first-started-commits-first":
        second.commit()
    monkeypatch.undo()
    for cache in (one, two, DiskCache(directory)):
        copy = cache.open(URL)
        assert copy is not None
        version = copy.entry.etag.strip('"') if copy.entry.etag else ""
        assert read(copy) == body(version)
    overlapped = order == "second-commits-inside-first" and at_call == 2
    assert len(list(directory.glob("*.data"))) == (2 if overlapped else 1)
    assert not list(directory.glob(".part-*"))
    # An hour later, the next commit sweeps the orphan, if any, with the superseded blob.
    for path in directory.glob("*.data"):
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    download(one, "v3").commit()
    assert [p.name for p in directory.glob("*.data")] == [one._current_blob(one.key(URL))]
    assert_consistent(two, "v3")


def test_entries_of_an_older_layout_or_damaged_are_misses(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    key = cache.key(URL)
    fields = {"url": URL, "etag": '"v0"', "last_modified": None, "charset": None}
    (tmp_path / f"{key}.json").write_bytes(repr({**fields, "fetched_at": 0.0}).encode())
    (tmp_path / f"{key}.data").write_bytes(body("v0"))
    assert cache.open(URL) is None  # not JSON
    (tmp_path / f"{key}.json").write_bytes(orjson.dumps({**fields, "fetched_at": 0.0}))
    assert cache.open(URL) is None  # the older layout: no blob named
    (tmp_path.parent / "outside.data").write_bytes(body("v0"))
    outside = {**fields, "fetched_at": 0.0, "blob": "../outside.data"}
    (tmp_path / f"{key}.json").write_bytes(orjson.dumps(outside))
    assert cache.open(URL) is None  # a name that is not one of ours is never opened
    download(cache, "v1").commit()
    assert_consistent(cache, "v1")
    assert not (tmp_path / f"{key}.data").exists()  # the older layout's file is swept


def failing(name: str) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, f"No space left on device ({name})")

    return fail


@pytest.mark.parametrize("where", ["mkstemp", "replace"])
def test_a_cache_that_cannot_write_logs_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    cache = DiskCache(tmp_path)
    module = "tempfile" if where == "mkstemp" else "os"
    monkeypatch.setattr(f"asyncrepo.repositories.file._cache.{module}.{where}", failing(where))
    with caplog.at_level(logging.WARNING, logger="asyncrepo.file"):
        download(cache, "v1").commit()  # no exception: the read it serves goes on
    monkeypatch.undo()
    assert cache.open(URL) is None
    assert list(tmp_path.iterdir()) == []
    assert "is not cached" in caplog.text and "No space left" in caplog.text
    assert "s3cr3t" not in caplog.text  # the URL is redacted


def test_a_cache_directory_that_cannot_be_made_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="cannot use the cache directory"):
        CSVRows("https://files.example/data.csv", cache=str(blocker))
