"""Download caches for file sources: keep a fetched URL in memory or on disk for a TTL, then
revalidate it with ETag / Last-Modified (a ``304 Not Modified`` means no re-download)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = [
    "CachedFile",
    "DiskCache",
    "DownloadCache",
    "FileChunks",
    "MemoryCache",
    "make_cache",
]

_CHUNK = 1 << 20


class FileChunks:
    """A file's bytes in 1 MiB chunks; ``close()`` releases the file at once (even from
    another thread than the reader's)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close() or at the end

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self._file.read(_CHUNK)
        except ValueError:  # closed under us: the reader was abandoned
            chunk = b""
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._file.close()


@dataclass
class CachedFile:
    url: str
    etag: str | None
    last_modified: str | None
    charset: str | None
    fetched_at: float  # time.time() of the last download or revalidation

    def fresh(self, ttl: float) -> bool:
        return time.time() - self.fetched_at < ttl


class CacheWriter:
    """Receives a download chunk by chunk; only a completed download is kept."""

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class DownloadCache:
    def lookup(self, url: str) -> CachedFile | None:
        raise NotImplementedError

    def chunks(self, url: str) -> Iterator[bytes]:
        raise NotImplementedError

    def writer(self, entry: CachedFile) -> CacheWriter:
        raise NotImplementedError

    def touch(self, url: str) -> None:
        """Mark an entry fresh again (after a 304)."""
        raise NotImplementedError


class _MemoryWriter(CacheWriter):
    def __init__(self, cache: MemoryCache, entry: CachedFile) -> None:
        self._cache, self._entry = cache, entry
        self._parts: list[bytes] = []

    def write(self, chunk: bytes) -> None:
        self._parts.append(chunk)

    def commit(self) -> None:
        self._cache._store[self._entry.url] = (self._entry, b"".join(self._parts))
        self._parts = []

    def abort(self) -> None:
        self._parts = []


class MemoryCache(DownloadCache):
    """Whole files in memory: fast, but memory grows with the file (use a DiskCache for
    large files)."""

    def __init__(self) -> None:
        self._store: dict[str, tuple[CachedFile, bytes]] = {}

    def lookup(self, url: str) -> CachedFile | None:
        found = self._store.get(url)
        return found[0] if found else None

    def chunks(self, url: str) -> Iterator[bytes]:
        data = self._store[url][1]
        for start in range(0, len(data), _CHUNK):
            yield data[start : start + _CHUNK]

    def writer(self, entry: CachedFile) -> CacheWriter:
        return _MemoryWriter(self, entry)

    def touch(self, url: str) -> None:
        self._store[url][0].fetched_at = time.time()


class _DiskWriter(CacheWriter):
    def __init__(self, cache: DiskCache, entry: CachedFile) -> None:
        self._cache, self._entry = cache, entry
        fd, self._tmp = tempfile.mkstemp(dir=cache.directory, prefix=".part-")
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.close()
        data, meta = self._cache._paths(self._entry.url)
        os.replace(self._tmp, data)
        meta.write_bytes(orjson.dumps(self._entry.__dict__))

    def abort(self) -> None:
        self._file.close()
        Path(self._tmp).unlink(missing_ok=True)


class DiskCache(DownloadCache):
    """Files in a directory (one data file and one JSON metadata file per URL); memory
    stays flat whatever the file size, and the cache survives the process."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.directory / f"{key}.data", self.directory / f"{key}.json"

    def lookup(self, url: str) -> CachedFile | None:
        data, meta = self._paths(url)
        if not (data.exists() and meta.exists()):
            return None
        try:
            entry = CachedFile(**orjson.loads(meta.read_bytes()))
        except (ValueError, TypeError):
            return None
        return entry if entry.url == url else None

    def chunks(self, url: str) -> Iterator[bytes]:
        return FileChunks(self._paths(url)[0])

    def writer(self, entry: CachedFile) -> CacheWriter:
        return _DiskWriter(self, entry)

    def touch(self, url: str) -> None:
        entry = self.lookup(url)
        if entry is not None:
            entry.fetched_at = time.time()
            self._paths(url)[1].write_bytes(orjson.dumps(entry.__dict__))


def make_cache(cache: object) -> DownloadCache | None:
    """``None``, ``"memory"``, a directory path, or a ``DownloadCache``."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, DownloadCache):
        return cache
    if cache == "memory":
        return MemoryCache()
    if isinstance(cache, str | os.PathLike):
        return DiskCache(cache)
    raise TypeError(f"cache must be None, 'memory', a directory or a DownloadCache: {cache!r}")
