"""Download caches for file sources: keep a fetched URL in memory or on disk for a TTL, then
revalidate it with ETag / Last-Modified (a ``304 Not Modified`` means no re-download).

A cached copy is an entry (the URL's validators, its charset, when it was fetched) and the
bytes of that same download, never of another one: ``open`` hands out both at once, the
bytes already opened, so a newer download of the URL (by another task, or another process
sharing the directory) cannot swap the bytes under a reader or pair them with the other
download's ETag.

The cache is an optimisation: a cache that cannot write (a full disk, a read-only
directory) logs a warning and the download goes on uncached.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ...http import redact_url

__all__ = [
    "CachedCopy",
    "CachedFile",
    "DiskCache",
    "DownloadCache",
    "FileChunks",
    "MemoryCache",
    "make_cache",
]

log = logging.getLogger("asyncrepo.file")

_CHUNK = 1 << 20


class FileChunks:
    """A file's bytes in 1 MiB chunks; ``close()`` releases the file at once (even from
    another thread than the reader's)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close() or at the end

    @property
    def file(self) -> BinaryIO:
        """The open file (to seek in: the offset index of a get)."""
        return self._file

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


@dataclass
class CachedCopy:
    """One download, as the cache holds it: its entry and its bytes, opened. ``close()``
    releases the bytes (a reader that stops early); ``version`` tells the cache which
    download this is (for ``touch``)."""

    entry: CachedFile
    chunks: Iterator[bytes]
    version: str = ""

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


class CacheWriter:
    """Receives a download chunk by chunk; only a completed download is kept."""

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class DownloadCache:
    def open(self, url: str) -> CachedCopy | None:
        """The cached copy of ``url``, its bytes opened, or ``None``."""
        raise NotImplementedError

    def writer(self, entry: CachedFile) -> CacheWriter:
        raise NotImplementedError

    def touch(self, copy: CachedCopy) -> None:
        """Mark a copy fresh again (after a 304), unless a newer download replaced it."""
        raise NotImplementedError


# -- in memory --------------------------------------------------------------------------------


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


def _slices(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


class MemoryCache(DownloadCache):
    """Whole files in memory: fast, but memory grows with the file (use a DiskCache for
    large files)."""

    def __init__(self) -> None:
        # The entry and its bytes in one tuple: replaced together, never one without the other.
        self._store: dict[str, tuple[CachedFile, bytes]] = {}

    def open(self, url: str) -> CachedCopy | None:
        found = self._store.get(url)
        if found is None:
            return None
        entry, data = found
        return CachedCopy(entry, _slices(data))

    def writer(self, entry: CachedFile) -> CacheWriter:
        return _MemoryWriter(self, entry)

    def touch(self, copy: CachedCopy) -> None:
        found = self._store.get(copy.entry.url)
        if found is not None and found[0] is copy.entry:
            copy.entry.fetched_at = time.time()


# -- on disk ----------------------------------------------------------------------------------


class _DiskWriter(CacheWriter):
    def __init__(self, cache: DiskCache, entry: CachedFile) -> None:
        self._cache, self._entry = cache, entry
        self._file: Any = None
        self._tmp: str | None = None
        try:
            fd, self._tmp = tempfile.mkstemp(dir=cache.directory, prefix=".part-")
            self._file = os.fdopen(fd, "wb")
        except OSError as exc:
            self._give_up(exc)

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(chunk)
        except OSError as exc:
            self._give_up(exc)

    def commit(self) -> None:
        if self._file is None or self._tmp is None:
            return
        cache, key = self._cache, self._cache.key(self._entry.url)
        blob = f"{key}.{secrets.token_hex(8)}.data"
        try:
            self._file.close()
            os.utime(self._tmp)  # a blob's age counts from its commit (see _sweep)
            os.replace(self._tmp, cache.directory / blob)  # a blob is never written again
            self._tmp = None
            superseded = cache._current_blob(key)
            cache._write_entry(key, self._entry, blob)
        except OSError as exc:
            (cache.directory / blob).unlink(missing_ok=True)
            self._give_up(exc)
            return
        cache._sweep(key, superseded)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
        self._file = self._tmp = None

    def _give_up(self, exc: OSError) -> None:
        log.warning(
            "the download of %s is not cached: %s (%s)",
            redact_url(self._entry.url),
            exc.strerror or exc,
            self._cache.directory,
        )
        self.abort()


_BLOB_RE = re.compile(r"[0-9a-f]{32}\.[0-9a-f]{16}\.data")


class DiskCache(DownloadCache):
    """Files in a directory, shared by the processes that use it; memory stays flat whatever
    the file size.

    Per URL (its key: a hash), one JSON entry ``KEY.json`` names the data file ("blob") of
    the same download, ``KEY.TOKEN.data``. A download is written to a temporary file, moved
    to a new blob (never written again), then the entry is replaced atomically to name it;
    older blobs of the URL are removed after that (an open one stays readable on POSIX). So
    an entry always names its own download's bytes: concurrent downloads of one URL cost a
    download each, and the last one to commit is kept, whole."""

    #: Seconds after which a blob that no entry names is removed by a sweep.
    ORPHAN_AGE = 60.0

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(url: str) -> str:
        return hashlib.sha256(url.encode()).hexdigest()[:32]

    def _stored(self, key: str) -> dict[str, Any] | None:
        """The fields in the URL's entry file; ``None`` if absent or not a JSON object."""
        try:
            fields = orjson.loads((self.directory / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return fields if isinstance(fields, dict) else None

    def _read_entry(self, url: str) -> tuple[CachedFile, str] | None:
        key = self.key(url)
        fields = self._stored(key)
        if fields is None:
            return None
        blob = fields.pop("blob", None)
        try:
            entry = CachedFile(**fields)
        except TypeError:
            return None  # an entry of an older layout, or not ours
        if entry.url != url or not isinstance(blob, str) or not _BLOB_RE.fullmatch(blob):
            return None
        if not blob.startswith(key):
            return None
        return entry, blob

    def _write_entry(self, key: str, entry: CachedFile, blob: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(orjson.dumps({**asdict(entry), "blob": blob}))
            os.replace(tmp, self.directory / f"{key}.json")
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _current_blob(self, key: str) -> str | None:
        blob = (self._stored(key) or {}).get("blob")
        return blob if isinstance(blob, str) else None

    def _sweep(self, key: str, superseded: str | None) -> None:
        """Remove the URL's blobs that its entry no longer names: the one this commit
        replaced at once, others (the loser of two commits at the same instant, a blob
        whose entry never got written) once ``ORPHAN_AGE`` has passed, since a blob is
        named by an entry microseconds after its commit. Best effort: on Windows a blob
        still open for reading cannot be removed; a later sweep takes it."""
        current = self._current_blob(key)
        old = time.time() - self.ORPHAN_AGE
        for path in self.directory.glob(f"{key}*.data"):
            name = path.name
            if name == current:
                continue
            with contextlib.suppress(OSError):
                if name == superseded or not _BLOB_RE.fullmatch(name) or path.stat().st_mtime < old:
                    path.unlink()

    def open(self, url: str) -> CachedCopy | None:
        found = self._read_entry(url)
        if found is None:
            return None
        entry, blob = found
        try:
            chunks = FileChunks(self.directory / blob)
        except OSError:  # replaced and swept since the entry was read: not cached any more
            return None
        return CachedCopy(entry, chunks, version=blob)

    def writer(self, entry: CachedFile) -> CacheWriter:
        return _DiskWriter(self, entry)

    def touch(self, copy: CachedCopy) -> None:
        found = self._read_entry(copy.entry.url)
        if found is None or found[1] != copy.version:
            return  # a newer download took its place: leave that one be
        copy.entry.fetched_at = time.time()
        try:
            self._write_entry(self.key(copy.entry.url), copy.entry, copy.version)
        except OSError as exc:
            log.warning("cannot refresh the cache entry of %s: %s", redact_url(copy.entry.url), exc)


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
