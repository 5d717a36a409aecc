"""Reading a CSV file's bytes: from disk, from the download cache, or from the network
(filling the cache as the download is read)."""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp

from ...exceptions import (
    ConfigurationError,
    ItemNotFound,
    MalformedResponse,
    SourceTimeout,
    SourceUnavailable,
)
from ...http import HTTPClient
from ._cache import CachedFile, DownloadCache, FileChunks
from ._errors import SOURCE

__all__ = ["Bytes", "local_bytes", "looks_like_html", "open_bytes", "reject_html"]

_CHUNK = 1 << 20


@dataclass
class Bytes:
    """A file's bytes: ``chunks`` for a worker thread (a download's are read by the event
    loop as the thread asks), ``read()`` for the event loop's thread (``b""`` at the end);
    one or the other, not both. ``charset`` is what the server declared.

    ``file`` is the open file when the bytes are a file on disk (a local file, a download
    cached on disk), to seek in; ``version`` then names that file's content (the offset
    index of a get is kept for one version)."""

    chunks: Iterator[bytes]
    read: Callable[[], Awaitable[bytes]]
    charset: str | None
    file: BinaryIO | None = None
    version: Hashable = None


def local_bytes(
    chunks: Iterator[bytes],
    charset: str | None,
    file: BinaryIO | None = None,
    version: Hashable = None,
) -> Bytes:
    """Bytes already at hand (a file, the cache): reading never waits."""

    async def read() -> bytes:
        return next(chunks, b"")

    return Bytes(chunks, read, charset, file, version)


#: The first bytes of an HTML page (after a BOM and white space), case-insensitive.
_HTML = re.compile(rb"<(?:!doctype\s+html|html|head|body|title|meta|script)[\s>/]", re.IGNORECASE)
#: Bytes looked at for an HTML page: the first line of a CSV file is rarely shorter.
_HTML_HEAD = 256


def looks_like_html(head: bytes) -> bool:
    """Whether a file's first bytes are an HTML page's (a login wall, an error page)."""
    return bool(_HTML.match(head.removeprefix(codecs.BOM_UTF8).lstrip()))


def reject_html(data: Bytes, error: Callable[[], Exception]) -> Bytes:
    """``data``, raising ``error()`` if its first bytes are an HTML page's (the first
    ``_HTML_HEAD`` bytes are held back until they are all there, or the data ends)."""
    chunks, read = data.chunks, data.read

    def checked(head: bytes) -> bytes:
        if looks_like_html(head):
            raise error()
        return head

    def guarded_chunks() -> Iterator[bytes]:
        head = b""
        for chunk in chunks:
            head += chunk
            if len(head) >= _HTML_HEAD:
                yield checked(head)
                yield from chunks
                return
        if head:
            yield checked(head)

    first = True

    async def guarded_read() -> bytes:
        nonlocal first
        if not first:
            return await read()
        first = False
        head = await read()
        while head and len(head) < _HTML_HEAD:
            more = await read()
            if not more:
                break
            head += more
        return checked(head)

    return Bytes(guarded_chunks(), guarded_read, data.charset, data.file, data.version)


def file_version(file: BinaryIO) -> Hashable:
    """What names an open file's content: its identity, size, modification time and status
    change time. The last because a copy that keeps the original's times (``cp -p``,
    ``touch -r``) may rewrite a file in place at the same size and put its mtime back; no
    one can set the ctime, which moves with every write."""
    stat = os.fstat(file.fileno())
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _on_disk(chunks: Iterator[bytes], charset: str | None) -> Bytes:
    """A file's (or a cached download's) bytes, with the file to seek in when on disk."""
    if isinstance(chunks, FileChunks):
        return local_bytes(chunks, charset, chunks.file, file_version(chunks.file))
    return local_bytes(chunks, charset)


_HTML_TYPES = ("text/html", "application/xhtml+xml")


@asynccontextmanager
async def open_bytes(
    *,
    path: Path | None,
    location: str,
    where: str,
    cache: DownloadCache | None,
    cache_ttl: float,
    client: Callable[[], HTTPClient],
    html: bool = False,
    sniff: Callable[[bytes, bool, str | None], None] | None = None,
) -> AsyncIterator[Bytes]:
    """The file's bytes (and the charset the server declared), from disk, the cache or
    the network; a download fills the cache as it is read. Unless ``html``, an HTML page
    (by its Content-Type, or by its first bytes) is ``MalformedResponse``: a login wall
    or an error page answered with a 200 would otherwise read as a CSV file of junk.
    ``sniff(head, whole, charset)`` is given the first ``PEEK`` bytes (or all, ``whole``)
    before anything is read, if it is set (to tell the file's dialect)."""
    url = None if path is not None else where

    def html_error(why: str) -> MalformedResponse:
        return MalformedResponse(
            f"{'' if url else where + ': '}{why}, not CSV (a login or error page?); "
            "pass reject_html=False to read it as CSV anyway",
            source=SOURCE,
            method="GET" if url else None,
            url=url,
        )

    async with _open_bytes(
        path=path,
        location=location,
        where=where,
        cache=cache,
        cache_ttl=cache_ttl,
        client=client,
        html_error=None if html else html_error,
    ) as data:
        if sniff is not None:
            head, whole, data = await peek(data, PEEK)
            if html or not looks_like_html(head):  # else the guard below raises
                sniff(head, whole, data.charset)
        if not html:
            data = reject_html(data, lambda: html_error("this is an HTML page"))
        yield data


#: Bytes read ahead for ``sniff``: the first KiB and the rest of its last line, at most
#: ``PEEK``.
PEEK = 1 << 16
SNIFF_BYTES = 1 << 10


async def peek(data: Bytes, size: int) -> tuple[bytes, bool, Bytes]:
    """The first bytes of ``data``: its first KiB and the rest of the line there (or
    ``size`` bytes, or all of it: then ``True``), without waiting for more; and ``data``
    that still hands them out first."""
    parts: list[bytes] = []
    total = 0
    whole = False
    while total < size:
        if total > SNIFF_BYTES:
            rest = b"".join(parts)[SNIFF_BYTES:]
            if b"\n" in rest or b"\r" in rest:
                break
        chunk = await data.read()
        if not chunk:
            whole = True
            break
        parts.append(chunk)
        total += len(chunk)
    head = b"".join(parts)
    pending = [head] if head else []
    read = data.read

    async def read_again() -> bytes:
        return pending.pop() if pending else await read()

    def chunks_again() -> Iterator[bytes]:
        if head:
            yield head
        yield from data.chunks  # close() reaches the chunks too

    return head, whole, Bytes(chunks_again(), read_again, data.charset, data.file, data.version)


@asynccontextmanager
async def _open_bytes(
    *,
    path: Path | None,
    location: str,
    where: str,
    cache: DownloadCache | None,
    cache_ttl: float,
    client: Callable[[], HTTPClient],
    html_error: Callable[[str], MalformedResponse] | None,
) -> AsyncIterator[Bytes]:
    if path is not None:
        try:
            local = FileChunks(path)
        except IsADirectoryError:
            raise ConfigurationError(
                f"{path} is a directory: name a CSV file in it", source=SOURCE
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigurationError(f"no such file: {path}", source=SOURCE) from None
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {path}: {exc.strerror or exc}", source=SOURCE
            ) from None
        try:
            yield _on_disk(local, None)
        finally:
            local.close()
        return
    copy = cache.open(location) if cache else None
    async with AsyncExitStack() as stack:
        if copy is not None:
            stack.callback(copy.close)
            if copy.entry.fresh(cache_ttl):
                yield _on_disk(copy.chunks, copy.entry.charset)
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
            yield _on_disk(copy.chunks, copy.entry.charset)
            return
        if copy is not None:
            copy.close()  # superseded: let the sweep after this download remove it
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if html_error is not None and content_type in _HTML_TYPES:
            raise html_error(
                f"the server answered {response.status} with an HTML page ({content_type})"
            )
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
            try:
                yield Bytes(chunks(), next_chunk, charset)
            except MalformedResponse:
                complete = False  # read to the end, but not CSV (an HTML page): not kept
                raise
            if writer is not None and not complete:
                # A get() that stopped early: keep the rest, so the next call is cached.
                while chunk := await read():
                    writer.write(chunk)
                complete = True
        finally:
            if writer is not None:
                # Only a download read to the end is kept.
                writer.commit() if complete else writer.abort()
