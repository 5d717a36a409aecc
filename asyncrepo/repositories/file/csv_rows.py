"""Rows of a CSV file or URL (``.csv`` or gzip-compressed ``.csv.gz``).

Speed and memory: the file is read in 1 MiB chunks, decoded incrementally and parsed by the
C ``csv`` module in a worker thread, which hands back batches of ready ``Item``s; the event
loop only passes them on. Memory stays flat in the file size (unless ``cache="memory"``).
A naive search matches the raw row values in the worker, before any item is built, and a
get by row index skips rows without building them.

Ragged rows follow ``csv.DictReader``: values past the header go to a list under
``restkey`` (default ``"_extra"``, JSON-friendly where DictReader uses ``None``), missing
ones are ``restval`` (default ``None``). Blank lines are skipped and do not count as rows.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ...convert import parse_datetime
from ...exceptions import ConfigurationError, MalformedResponse
from ...http import Auth, HTTPClient, RetryPolicy, redact_url
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest, Repository
from ._cache import CachedFile, DownloadCache, FileChunks, make_cache

__all__ = ["INDEX", "CSVRows"]

# A 1 MB field (and far larger) must parse; the csv module's default limit is 128 KiB.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))

_CHUNK = 1 << 20
#: Rows per batch handed from the worker thread. Fixed, because cursors count in batches.
BATCH_ROWS = 4096
_FIELD_NAMES = ("title", "text", "url", "created_at", "updated_at", "author")


class _Index:
    def __repr__(self) -> str:
        return "INDEX"


#: Identify rows by their 0-based index (the default).
INDEX: Any = _Index()


class _Rows:
    """Bytes -> text -> CSV rows, incrementally. Runs in a worker thread."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        encoding: str | None,
        csv_kwargs: Mapping[str, Any],
        where: str,
    ) -> None:
        self._chunks = chunks
        self._encoding = encoding
        self._where = where
        self._bytes_lines = 0  # newlines in the bytes decoded so far, for error messages
        self.reader = csv.reader(self._lines(), **csv_kwargs)

    def _decoded(self) -> Iterator[str]:
        chunks = self._chunks
        first = next(chunks, b"")
        inflate = None
        if first[:2] == b"\x1f\x8b":  # gzip magic: .csv.gz, whatever the name says
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        encoding = self._encoding
        pending = first
        decoder: codecs.IncrementalDecoder | None = None
        while True:
            data = inflate.decompress(pending) if inflate else pending
            if decoder is None and (data or not pending):
                encoding = encoding or _sniff_encoding(data)
                decoder = codecs.getincrementaldecoder(encoding)("strict")
            if data and decoder is not None:
                yield self._decode(decoder, data, encoding or "utf-8")
            if not pending:
                break
            pending = next(chunks, b"")
        if inflate is not None:
            tail = inflate.flush()
            if decoder is not None and tail:
                yield self._decode(decoder, tail, encoding or "utf-8")
        if decoder is not None:
            yield self._decode(decoder, b"", encoding or "utf-8", final=True)

    def _decode(
        self, decoder: codecs.IncrementalDecoder, data: bytes, encoding: str, final: bool = False
    ) -> str:
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            line = self._bytes_lines + data[: exc.start].count(b"\n") + 1
            raise MalformedResponse(
                f"{self._where}: line {line}: bytes that are not valid {encoding} "
                f"({exc.reason}); pass encoding= if the file uses another one",
                source=CSVRows.name,
            ) from None
        self._bytes_lines += data.count(b"\n")
        return text

    def _lines(self) -> Iterator[str]:
        rest = ""
        for text in self._decoded():
            if not text:
                continue
            parts = (rest + text).split("\n")
            rest = parts.pop()
            for part in parts:
                yield part + "\n"
        if rest:
            yield rest

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # a generator still running in a thread
                close()

    def next_rows(self, count: int) -> list[list[str]]:
        try:
            return [row for row in islice(self.reader, count) if row]
        except csv.Error as exc:
            raise MalformedResponse(
                f"{self._where}: line {self.reader.line_num}: {exc}", source=CSVRows.name
            ) from None

    def skip(self, count: int) -> int:
        """Skip ``count`` non-blank rows without building them; return how many were skipped."""
        skipped = 0
        while skipped < count:
            rows = self.next_rows(min(BATCH_ROWS, count - skipped))
            if not rows:
                break
            skipped += len(rows)
        return skipped


def _sniff_encoding(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


class CSVRows(Repository):
    """Rows of a CSV file or URL.

    ``identifier``: ``INDEX`` (0-based row index, the default), a column name, or a tuple of
    column names (then ``str(tuple(values))``). ``page_size``: the default page size.
    ``fields`` maps common item fields to columns, e.g. ``{"title": "name",
    "updated_at": "modified"}`` (dates that do not parse are left ``None``); mapping
    ``updated_at`` or ``created_at`` enables ``since=``. ``encoding``: else the URL's
    charset, a BOM, or UTF-8. ``cache``: ``None``, ``"memory"`` or a directory, for URLs,
    kept ``cache_ttl`` seconds and then revalidated. Other keyword arguments go to
    ``csv.reader`` (``delimiter``, ``quotechar``, ``dialect``...), plus DictReader's
    ``fieldnames``, ``restkey`` and ``restval``.
    """

    name = "file.csv_rows"
    capabilities: ClassVar[Capabilities] = Capabilities(get="naive", search="naive")
    filters_search_terms = True
    default_page_size = 20

    def __init__(
        self,
        filepath_or_url: str | os.PathLike[str],
        identifier: Any = INDEX,
        page_size: int = 20,
        *,
        encoding: str | None = None,
        fields: Mapping[str, str | Sequence[str]] | None = None,
        cache: Any = None,
        cache_ttl: float = 300.0,
        fieldnames: Sequence[str] | None = None,
        restkey: str = "_extra",
        restval: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        **csv_reader_kwargs: Any,
    ) -> None:
        location = os.fspath(filepath_or_url)
        self.location = location
        self.is_url = urlsplit(location).scheme in ("http", "https")
        self.path = None if self.is_url else Path(location).expanduser()
        if identifier is not INDEX and not isinstance(identifier, str | tuple):
            raise ConfigurationError(
                "identifier must be INDEX, a column name or a tuple of column names",
                source=self.name,
            )
        self.identifier = identifier
        self.default_page_size = page_size
        self.encoding = encoding
        self.fields = dict(fields or {})
        unknown = set(self.fields) - set(_FIELD_NAMES)
        if unknown:
            raise ConfigurationError(
                f"fields= knows {', '.join(_FIELD_NAMES)}, not {', '.join(sorted(unknown))}",
                source=self.name,
            )
        if "updated_at" in self.fields or "created_at" in self.fields:
            self.capabilities = Capabilities(get="naive", search="naive", since="client")  # type: ignore[misc]
        self.cache: DownloadCache | None = make_cache(cache)
        self.cache_ttl = cache_ttl
        self.fieldnames = list(fieldnames) if fieldnames is not None else None
        self.restkey = restkey
        self.restval = restval
        try:
            csv.reader([], **csv_reader_kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"bad csv option: {exc}", source=self.name) from None
        self.csv_kwargs = csv_reader_kwargs
        self._headers, self._auth, self._retry, self._timeout = headers, auth, retry, timeout
        self._client: HTTPClient | None = None

    def scope(self) -> Any:
        return self.location if self.path is None else str(self.path)

    def __repr__(self) -> str:
        where = redact_url(self.location) if self.is_url else self.location
        return f"<CSVRows {where!r} identifier={self.identifier!r}>"

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- reading --------------------------------------------------------------------------

    @property
    def client(self) -> HTTPClient:
        if self._client is None:
            parts = urlsplit(self.location)
            self._client = HTTPClient(
                f"{parts.scheme}://{parts.netloc}",
                source=self.name,
                headers=self._headers,
                auth=self._auth,
                retry=self._retry,
                timeout=self._timeout,
            )
        return self._client

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[_Rows]:
        """The rows of the file, for a worker thread to read; released on exit."""
        async with self._chunks() as (chunks, charset):
            where = redact_url(self.location) if self.is_url else self.location
            rows = _Rows(
                chunks,
                encoding=self.encoding or charset,
                csv_kwargs=self.csv_kwargs,
                where=where,
            )
            try:
                yield rows
            finally:
                rows.close()

    @asynccontextmanager
    async def _chunks(self) -> AsyncIterator[tuple[Iterator[bytes], str | None]]:
        """The file's bytes (and the charset the server declared), from disk, the cache or
        the network; a download fills the cache as it is read."""
        if self.path is not None:
            if not self.path.is_file():
                raise ConfigurationError(f"no such file: {self.path}", source=self.name)
            yield FileChunks(self.path), None
            return
        cache = self.cache
        entry = cache.lookup(self.location) if cache else None
        if cache is not None and entry is not None and entry.fresh(self.cache_ttl):
            yield cache.chunks(self.location), entry.charset
            return
        headers = {"Accept": "text/csv, */*"}
        if entry is not None:
            if entry.etag:
                headers["If-None-Match"] = entry.etag
            if entry.last_modified:
                headers["If-Modified-Since"] = entry.last_modified
        async with self.client.stream(self.location, headers=headers) as response:
            if response.status == 304 and cache is not None and entry is not None:
                cache.touch(self.location)
                yield cache.chunks(self.location), entry.charset
                return
            charset = response.charset
            writer = None
            if cache is not None:
                writer = cache.writer(
                    CachedFile(
                        url=self.location,
                        etag=response.headers.get("ETag"),
                        last_modified=response.headers.get("Last-Modified"),
                        charset=charset,
                        fetched_at=time.time(),
                    )
                )
            loop = asyncio.get_running_loop()
            complete = False

            def chunks() -> Iterator[bytes]:
                # Runs in the worker thread; each read is done by the event loop.
                nonlocal complete
                while True:
                    chunk = asyncio.run_coroutine_threadsafe(
                        response.content.read(_CHUNK), loop
                    ).result()
                    if not chunk:
                        complete = True
                        return
                    if writer is not None:
                        writer.write(chunk)
                    yield chunk

            try:
                yield chunks(), charset
            finally:
                if writer is not None:
                    # Only a download read to the end is kept.
                    writer.commit() if complete else writer.abort()

    def _header(self, rows: _Rows) -> list[str]:
        if self.fieldnames is not None:
            return self.fieldnames
        first = rows.next_rows(1)
        return first[0] if first else []

    def _builder(self, header: list[str]) -> Callable[[int, list[str]], Item]:
        """A function (row index, values) -> Item, specialised for this file's options."""
        width = len(header)
        restkey, restval = self.restkey, self.restval
        identifier = self.identifier
        fields = self.fields
        repository = self

        def raw_of(values: list[str]) -> dict[str, Any]:
            if len(values) == width:
                return dict(zip(header, values, strict=True))
            raw: dict[str, Any] = dict(zip(header, values, strict=False))
            if len(values) > width:
                raw[restkey] = values[width:]
            else:
                for name in header[len(values) :]:
                    raw[name] = restval
            return raw

        def ident(index: int, raw: dict[str, Any]) -> str:
            if identifier is INDEX:
                return str(index)
            if isinstance(identifier, tuple):
                return str(tuple(raw.get(column) for column in identifier))
            return str(raw.get(identifier))

        def common(raw: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, column in fields.items():
                if isinstance(column, str):
                    value = raw.get(column)
                else:
                    value = " ".join(str(raw.get(c) or "") for c in column).strip() or None
                if name in ("created_at", "updated_at"):
                    try:
                        value = parse_datetime(value)
                    except (ValueError, TypeError, OverflowError):
                        value = None  # a messy date cell does not stop the listing
                out[name] = value
            return out

        if not fields and identifier is INDEX:  # the fast path
            return lambda index, values: Item(str(index), raw_of(values), repository)

        def build(index: int, values: list[str]) -> Item:
            raw = raw_of(values)
            return Item(ident(index, raw), raw, repository, **common(raw))

        return build

    async def stream(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        start = int(state or 0)
        terms = request.terms
        async with self._open() as rows:
            header = await asyncio.to_thread(self._header, rows)
            build = self._builder(header)
            if start:
                await asyncio.to_thread(rows.skip, start)

            def next_batch(first: int) -> tuple[int, list[Item]]:
                values = rows.next_rows(BATCH_ROWS)
                if terms is None:
                    return len(values), [build(first + k, v) for k, v in enumerate(values)]
                found = []
                for k, row in enumerate(values):
                    haystack = "\x00".join(row).casefold()
                    if all(term in haystack for term in terms):
                        found.append(build(first + k, row))
                return len(values), found

            position = start
            while True:
                count, items = await asyncio.to_thread(next_batch, position)
                if not count:
                    return
                yield position, Batch(items, position + count)
                position += count

    async def get(self, identifier: str) -> Item:
        identifier = str(identifier)
        if self.identifier is not INDEX:
            return await self.naive_get(identifier)
        if not identifier.isdigit() or str(int(identifier)) != identifier:
            raise self.not_found(identifier, "row identifiers are 0-based row numbers")
        index = int(identifier)
        async with self._open() as rows:

            def find() -> Item | None:
                header = self._header(rows)
                if rows.skip(index) < index:
                    return None
                found = rows.next_rows(1)
                return self._builder(header)(index, found[0]) if found else None

            item = await asyncio.to_thread(find)
        if item is None:
            raise self.not_found(identifier, "the file has fewer rows")
        return item
