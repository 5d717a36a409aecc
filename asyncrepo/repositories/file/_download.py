"""Reading a CSV file's bytes: from disk, from the download cache, or from the network
(filling the cache as the download is read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from ...exceptions import ConfigurationError, ItemNotFound, SourceTimeout, SourceUnavailable
from ...http import HTTPClient
from ._cache import CachedFile, DownloadCache, FileChunks
from ._errors import SOURCE

__all__ = ["Bytes", "local_bytes", "open_bytes"]

_CHUNK = 1 << 20


@dataclass
class Bytes:
    """A file's bytes: ``chunks`` for a worker thread (a download's are read by the event
    loop as the thread asks), ``read()`` for the event loop's thread (``b""`` at the end);
    one or the other, not both. ``charset`` is what the server declared."""

    chunks: Iterator[bytes]
    read: Callable[[], Awaitable[bytes]]
    charset: str | None


def local_bytes(chunks: Iterator[bytes], charset: str | None) -> Bytes:
    """Bytes already at hand (a file, the cache): reading never waits."""

    async def read() -> bytes:
        return next(chunks, b"")

    return Bytes(chunks, read, charset)


@asynccontextmanager
async def open_bytes(
    *,
    path: Path | None,
    location: str,
    where: str,
    cache: DownloadCache | None,
    cache_ttl: float,
    client: Callable[[], HTTPClient],
) -> AsyncIterator[Bytes]:
    """The file's bytes (and the charset the server declared), from disk, the cache or
    the network; a download fills the cache as it is read."""
    if path is not None:
        try:
            local = FileChunks(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ConfigurationError(f"no such file: {path}", source=SOURCE) from None
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {path}: {exc.strerror or exc}", source=SOURCE
            ) from None
        try:
            yield local_bytes(local, None)
        finally:
            local.close()
        return
    copy = cache.open(location) if cache else None
    async with AsyncExitStack() as stack:
        if copy is not None:
            stack.callback(copy.close)
            if copy.entry.fresh(cache_ttl):
                yield local_bytes(copy.chunks, copy.entry.charset)
                return
        headers = {"Accept": "text/csv, */*"}
        if copy is not None:
            if copy.entry.etag:
                headers["If-None-Match"] = copy.entry.etag
            if copy.entry.last_modified:
                headers["If-Modified-Since"] = copy.entry.last_modified
        try:
            response = await stack.enter_async_context(client().stream(location, headers=headers))
        except ItemNotFound as exc:
            raise ConfigurationError(
                f"no CSV file at {where} (the server answered 404)",
                source=SOURCE,
                method=exc.method,
                url=exc.url,
                status=exc.status,
            ) from None
        if response.status == 304 and cache is not None and copy is not None:
            cache.touch(copy)
            yield local_bytes(copy.chunks, copy.entry.charset)
            return
        if copy is not None:
            copy.close()  # superseded: let the sweep after this download remove it
        charset = response.charset
        writer = None
        if cache is not None:
            writer = cache.writer(
                CachedFile(
                    url=location,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    charset=charset,
                    fetched_at=time.time(),
                )
            )
        loop = asyncio.get_running_loop()
        complete = False

        async def read() -> bytes:
            # Wait for some bytes, then take what else is already buffered (up to a
            # chunk): few hops between the thread and the loop, no wait for a full chunk.
            content = response.content
            try:
                part = await content.read(_CHUNK)
                parts = [part]
                size = len(part)
                while part and size < _CHUNK:
                    part = content.read_nowait(_CHUNK - size)
                    parts.append(part)
                    size += len(part)
            except TimeoutError:
                raise SourceTimeout(
                    "the download stalled", source=SOURCE, method="GET", url=where
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise SourceUnavailable(
                    f"the connection broke during the download ({type(exc).__name__})",
                    source=SOURCE,
                    method="GET",
                    url=where,
                ) from None
            return b"".join(parts)

        async def next_chunk() -> bytes:
            nonlocal complete
            chunk = await read()
            if not chunk:
                complete = True
            elif writer is not None:
                writer.write(chunk)
            return chunk

        def chunks() -> Iterator[bytes]:
            # Runs in a worker thread; each read is done by the event loop.
            while chunk := asyncio.run_coroutine_threadsafe(next_chunk(), loop).result():
                yield chunk

        try:
            yield Bytes(chunks(), next_chunk, charset)
            if writer is not None and not complete:
                # A get() that stopped early: keep the rest, so the next call is cached.
                while chunk := await read():
                    writer.write(chunk)
                complete = True
        finally:
            if writer is not None:
                # Only a download read to the end is kept.
                writer.commit() if complete else writer.abort()
