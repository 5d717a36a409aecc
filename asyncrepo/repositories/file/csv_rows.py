"""Rows of a CSV file or URL (``.csv`` or gzip-compressed ``.csv.gz``).

Speed and memory: the file is read in 1 MiB chunks, decoded incrementally and parsed by the
C ``csv`` module; memory stays flat in the file size (unless ``cache="memory"``).

* A listing is parsed on the event loop's thread as the bytes arrive (``_pushed_batches``):
  ``CompleteRecords`` parses only the records the csv module shows complete, so nothing
  waits for bytes. Rows' dicts come from generated code (``_raws_maker``) in batches of
  ``BATCH_ROWS``, and each ``Item`` is made as the consumer takes it (``_RowItems``).
* A search and a get pull their bytes as they parse (``_Rows``): a local file's on the loop
  in slices of ``SLICE_ROWS`` rows, a URL's in a worker thread, which waits for each network
  chunk from the loop. A naive search scans the text for the longest term and parses only
  the rows it is found in (see ``_Rows.matches``); its batches are fixed windows of rows, so
  cursors do not depend on the chunking. A get by row index skips rows without building
  them.
* ``worker_thread=True`` runs all parsing in a worker thread, listings too (``_Rows``).

Ragged rows follow ``csv.DictReader``: values past the header go to a list under
``restkey`` (default ``"_extra"``, JSON-friendly where DictReader uses ``None``), missing
ones are ``restval`` (default ``None``). Blank lines are skipped and do not count as rows
(nor as the header). Lines end as ``open(newline="")`` sees them: ``\n``, ``\r\n`` or ``\r``.
Bytes that do not decode, and gzip data that is corrupt or cut short, raise
``MalformedResponse`` naming the file and the line. An identifier or ``fields`` column that
is not in the header is a ``ConfigurationError``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import os
import re
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from itertools import chain, count, islice
from operator import length_hint
from pathlib import Path
from typing import Any, ClassVar, SupportsIndex, TypeVar, cast, overload
from urllib.parse import urlsplit

import aiohttp

from ...convert import parse_datetime
from ...exceptions import (
    ConfigurationError,
    InvalidCursor,
    ItemNotFound,
    MalformedResponse,
    SourceTimeout,
    SourceUnavailable,
)
from ...http import Auth, HTTPClient, RetryPolicy, redact_url
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest, Repository, plain_items
from ._cache import CachedFile, DownloadCache, FileChunks, make_cache
from ._incremental import CompleteRecords, TextDecoder

T = TypeVar("T")

__all__ = ["INDEX", "CSVRows"]

# A 1 MB field (and far larger) must parse; the csv module's default limit is 128 KiB.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))

_CHUNK = 1 << 20
#: Rows parsed per slice of work: one hop to the worker thread, or one stretch on the event
#: loop's thread before it is handed back.
SLICE_ROWS = 4096
#: Rows per batch of a listing. Small, so a batch's rows and dicts are made and consumed
#: while still in the CPU cache: at 4,096 a listing took about 20% longer. A cursor holds
#: the absolute row index of its batch, so resuming does not depend on this size.
BATCH_ROWS = 128
#: Rows per window of a search. Fixed, because a search cursor counts in windows.
WINDOW_ROWS = 4096
_FIELD_NAMES = ("title", "text", "url", "created_at", "updated_at", "author")
_LONE_CR = re.compile("\r(?!\n)")
_BLANK = re.compile("\n\r?\n")
#: Headers wider than this build their rows' dicts with ``dict(zip())`` (see ``_raws_maker``).
_GENERATED_MAX_WIDTH = 256


class _Index:
    def __repr__(self) -> str:
        return "INDEX"


#: Identify rows by their 0-based index (the default).
INDEX: Any = _Index()


class _RowItems(list[Item]):
    """The items of a listing's batch, built as they are taken: it holds the rows' raw
    dicts and makes each ``Item`` (its row index for identifier) when it is iterated over or
    indexed, so a fresh ``Item`` each time.

    Why: a batch of ready ``Item``s keeps hundreds of objects alive that the cyclic garbage
    collector tracks (dicts of strings it does not), so it ran over and over during a
    listing, a third of its time; an item made on the way out dies young, as the consumer
    drops it. Only what the core asks of a batch's items is supported: ``len``, iteration,
    an index, a slice.
    """

    __slots__ = ("_first", "_repository")

    def __init__(self, raws: list[dict[str, Any]], first: int, repository: Repository) -> None:
        super().__init__(cast("list[Item]", raws))
        self._first = first
        self._repository = repository

    def __iter__(self) -> Iterator[Item]:
        raws = cast("Iterator[dict[str, Any]]", super().__iter__())
        return plain_items(map(str, count(self._first)), raws, self._repository)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            raws = cast("list[dict[str, Any]]", super().__getitem__(index))
            if step == 1:
                return _RowItems(raws, self._first + start, self._repository)
            indices = range(start, stop, step)
            return [
                Item(str(self._first + at), raw, self._repository)
                for at, raw in zip(indices, raws, strict=True)
            ]
        at = range(len(self))[index]  # IndexError, negative indices
        raw = cast("dict[str, Any]", super().__getitem__(at))
        return Item(str(self._first + at), raw, self._repository)


def _malformed(where: str, message: str) -> MalformedResponse:
    """Data that is not the CSV it should be, named by its file and (in ``message``) line."""
    return MalformedResponse(f"{where}: {message}", source=CSVRows.name)


def _raws_maker(
    header: list[str], raw_of: Callable[[list[str]], dict[str, Any]]
) -> Callable[[list[list[str]]], list[dict[str, Any]]]:
    """A function rows -> their raw dicts, as ``csv.DictReader`` makes them.

    Why generated code: a dict display over unpacked values (``{k0: a0, k1: a1, ...} for
    (a0, a1, ...) in rows``) builds a row's dict in about 40% of the time ``dict(zip(header,
    row))`` takes, the largest cost of a listing after the parsing itself. The header's
    names are bound as variables ``k0``, ``k1``...; they never enter the source text. A
    batch with a ragged row (the unpacking fails) is built again row by row by ``raw_of``.
    """
    width = len(header)
    if not 0 < width <= _GENERATED_MAX_WIDTH:
        return lambda rows: [raw_of(row) for row in rows]
    keys = ", ".join(f"k{i}: a{i}" for i in range(width))
    names = "".join(f"a{i}, " for i in range(width))
    namespace = {f"k{i}": name for i, name in enumerate(header)}
    unpacked = eval(f"lambda rows: [{{{keys}}} for ({names}) in rows]", namespace)

    def raws_of(rows: list[list[str]]) -> list[dict[str, Any]]:
        try:
            return cast("list[dict[str, Any]]", unpacked(rows))
        except ValueError:  # a ragged row
            return [raw_of(row) for row in rows]

    return raws_of


class _Rows:
    """Bytes -> (gunzipped) bytes -> text -> CSV rows, incrementally. Runs in a worker thread.

    Text is cut into chunks of whole lines and each chunk is iterated by an ``io.StringIO``
    in universal-newline mode (``\n``, ``\r\n`` or a lone ``\r``, as ``open(newline="")``
    does), so the C ``csv`` reader pulls its lines without a Python call per line.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        encoding: str | None,
        charset: str | None,
        csv_kwargs: Mapping[str, Any],
        where: str,
    ) -> None:
        self._chunks = chunks
        self._encoding = encoding
        self._charset = charset
        self._where = where
        self._text_pieces = self._pieces()
        # The piece the reader reads (its StringIO and text), and one to read next.
        self._current: tuple[io.StringIO, str] = (io.StringIO(""), "")
        self._pending: tuple[io.StringIO, str] | None = None
        self._lines_scanned = 0  # lines the search scan read without the reader
        self.reader = csv.reader(chain.from_iterable(self._feed()), **csv_kwargs)

    def _malformed(self, message: str) -> MalformedResponse:
        return _malformed(self._where, message)

    def _texts(self) -> Iterator[str]:
        decoder = TextDecoder(
            self._encoding, self._charset, self._malformed, lambda: self.lines_read
        )
        for chunk in self._chunks:
            yield from decoder.push(chunk)
        yield from decoder.finish()

    def _pieces(self) -> Iterator[str]:
        """The text in pieces that end at a line end (the last one may not)."""
        rest: list[str] = []
        for text in self._texts():
            if not text:
                continue
            cut = text.rfind("\n")
            cut = max(cut, text.rfind("\r", cut + 1)) + 1
            if not cut:  # no line end yet (a long field): keep collecting
                rest.append(text)
                continue
            # A "\r\n" cut between two pieces reads as "\r" then "\n": the reader takes
            # the lone "\n" for a blank line (skipped) or, inside quotes, for field text.
            head = text[:cut]
            if rest:
                rest.append(head)
                head = "".join(rest)
            rest = [text[cut:]] if cut < len(text) else []
            yield head
        if rest:
            yield "".join(rest)

    def _feed(self) -> Iterator[io.StringIO]:
        """The pieces as ``io.StringIO``s, for the reader; ``_current`` is the one it reads.
        A piece the search scan already took is handed over through ``_pending``."""
        while True:
            pending = self._pending
            if pending is not None:
                self._pending = None
                self._current = pending
            else:
                text = next(self._text_pieces, None)
                if text is None:
                    return
                self._current = (io.StringIO(text, newline=""), text)
            yield self._current[0]

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # a generator still running in a thread
                close()

    def next_rows(self, count: int) -> list[list[str]]:
        """Up to ``count`` rows, blank lines skipped; fewer only at the end of the file."""
        reader = self.reader
        rows: list[list[str]] = []
        try:
            while len(rows) < count:
                want = count - len(rows)
                got = list(islice(reader, want))
                exhausted = len(got) < want
                if [] in got:  # blank lines
                    got = [row for row in got if row]
                if rows:
                    rows += got
                else:
                    rows = got
                if exhausted:
                    break
        except csv.Error as exc:
            raise self._csv_error(exc) from None
        return rows

    @property
    def lines_read(self) -> int:
        """Lines read so far, by the reader or by the search scan."""
        return self.reader.line_num + self._lines_scanned

    def _csv_error(self, exc: csv.Error) -> MalformedResponse:
        return self._malformed(f"line {self.lines_read}: {exc}")

    def matches(self, index: int, terms: tuple[str, ...]) -> Iterator[tuple[int, list[str] | None]]:
        """The rows from here on (row ``index``) that hold every term: ``(index, values)``;
        and, between them, ``(index, None)``: every row before ``index`` has been seen. The
        last thing yielded is ``(number of rows, None)``.

        A row matches when each term is in its values joined by ``"\x00"`` and casefolded.
        Rather than parsing every row, the text is scanned: from a record boundary up to
        the next line that holds a quote or escape character or is blank, rows are lines
        (pieces with a lone ``"\r"`` are left to the reader), so the scan looks for the
        longest term in the casefolded text and parses only the lines it is found in (a
        term's part between ``"\x00"``s is in a row's casefolded text if the row matches).
        Such a special line is parsed alone when it holds a whole record; else, and where
        special lines come thick, the reader parses from there until a row ends.
        """
        reader = self.reader
        dialect = reader.dialect
        needle = max((part for term in terms for part in term.split("\x00")), key=len)
        marks = ""  # characters that make a line special
        if dialect.quotechar and dialect.quoting != csv.QUOTE_NONE:
            marks += dialect.quotechar
        if dialect.escapechar:
            marks += dialect.escapechar
        # QUOTE_NONNUMERIC turns values into floats: the reader's business, every row.
        scan_ok = bool(needle) and dialect.quoting != csv.QUOTE_NONNUMERIC
        infinity = 1 << 62

        def fast(
            text: str, cf: str | None, a: int, b: int, index: int
        ) -> Generator[tuple[int, list[str]], None, int]:
            """The matching rows of ``text[a:b]``, where rows are lines; returns the index
            of the row after them."""
            lines: list[str] | None = None  # the stretch's lines, when positions moved
            if cf is not None:  # casefolding kept the positions: search the piece's
                hay, lo, hi = cf, a, b
            else:
                hay = text[a:b].casefold()
                lo, hi = 0, len(hay)
            first = index
            pos = counted = lo
            while (found := hay.find(needle, pos, hi)) >= 0:
                start = hay.rfind("\n", pos, found) + 1 or pos
                end = hay.find("\n", found, hi) + 1 or hi
                index += hay.count("\n", counted, start)
                counted = start
                if cf is not None:
                    line = text[start:end]
                else:
                    if lines is None:
                        lines = text[a:b].split("\n")
                    line = lines[index - first]
                values = next(csv.reader((line,), dialect))
                haystack = "\x00".join(values).casefold()
                if all(term in haystack for term in terms):
                    yield index, values
                pos = end
            index += hay.count("\n", counted, hi)
            if hi > lo and hay[hi - 1] != "\n":
                index += 1  # the file's last line, without a line end
            self._lines_scanned += index - first
            return index

        def enter(text: str) -> tuple[bool, str | None, list[int]]:
            """A piece's traits: whether all its rows are the reader's (it has a lone
            ``"\r"``), its casefolded text if that keeps positions, where the next
            specials are (unknown yet: -1; a mark character each, then a blank line)."""
            if not scan_ok or _LONE_CR.search(text):
                return True, None, []
            if text.isascii():
                return False, text.lower(), [-1] * (len(marks) + 1)
            folded = text.casefold()
            cf = folded if len(folded) == len(text) else None
            return False, cf, [-1] * (len(marks) + 1)

        sio: io.StringIO | None
        sio, text = self._current
        at = sio.tell()
        every_row, cf, nexts = enter(text)
        run = 0  # special rows in a row: many, and the reader takes them in chunks
        while True:
            if at >= len(text):
                yield index, None
                following = next(self._text_pieces, None)
                if following is None:
                    return
                sio, text, at = None, following, 0
                every_row, cf, nexts = enter(text)
            # Where the next row that needs parsing starts.
            if every_row or (at == 0 and text[:1] in ("\n", "\r")):
                special = at
            else:
                special = infinity
                for k, mark in enumerate(marks):
                    where = nexts[k]
                    if where < at:
                        found = text.find(mark, at)
                        where = nexts[k] = found if found >= 0 else infinity
                    special = min(special, where)
                where = nexts[-1]
                if where < at:  # a blank line: "\n\n" or "\n\r\n" (from the "\n" before)
                    blank = _BLANK.search(text, max(at - 1, 0))
                    where = nexts[-1] = blank.start() + 1 if blank else infinity
                special = min(special, where)
                if special < infinity:
                    special = max(at, text.rfind("\n", 0, special) + 1)
                else:
                    special = len(text)
            if special > at:
                index = yield from fast(text, cf, at, special, index)
                at = special
                run = 0
                continue
            run += 1
            if not every_row and run < 16:
                # The special line alone, if it holds a whole record: the reader then does
                # not ask for the line after it.
                end = text.find("\n", at) + 1 or len(text)
                lines = iter((text[at:end], ""))
                try:
                    values = next(csv.reader(lines, dialect))
                except csv.Error as exc:
                    self._lines_scanned += 1  # the line of the error, for the message
                    raise self._csv_error(exc) from None
                if length_hint(lines):
                    if values:
                        haystack = "\x00".join(values).casefold()
                        if all(term in haystack for term in terms):
                            yield index, values
                        index += 1
                    self._lines_scanned += 1
                    at = end
                    continue
            # The reader parses from ``at``: hand it this piece if it reads another one.
            current = self._current[0]
            if sio is None or current is not sio:
                current.seek(0, io.SEEK_END)  # the reader is done with it: it moves on
                if sio is None:
                    sio = io.StringIO(text, newline="")
                self._pending = (sio, text)
            sio.seek(at)
            chunk = min(run, 512)
            try:
                got = list(islice(reader, chunk))
            except csv.Error as exc:
                raise self._csv_error(exc) from None
            for values in got:
                if values:
                    haystack = "\x00".join(values).casefold()
                    if all(term in haystack for term in terms):
                        yield index, values
                    index += 1
            if len(got) < chunk:  # the end of the file
                yield index, None
                return
            run += chunk
            if self._current[0] is not sio:  # a field ran on into the following pieces
                yield index, None
                sio, text = self._current
                every_row, cf, nexts = enter(text)
            at = sio.tell()

    def skip(self, count: int) -> int:
        """Skip ``count`` non-blank rows without building items; return how many were."""
        skipped = 0
        while skipped < count:
            rows = self.next_rows(min(SLICE_ROWS, count - skipped))
            if not rows:
                break
            skipped += len(rows)
        return skipped


@dataclass
class _Bytes:
    """A file's bytes: ``chunks`` for a worker thread (a download's are read by the event
    loop as the thread asks), ``read()`` for the event loop's thread (``b""`` at the end);
    one or the other, not both. ``charset`` is what the server declared."""

    chunks: Iterator[bytes]
    read: Callable[[], Awaitable[bytes]]
    charset: str | None


def _local(chunks: Iterator[bytes], charset: str | None) -> _Bytes:
    """Bytes already at hand (a file, the cache): reading never waits."""

    async def read() -> bytes:
        return next(chunks, b"")

    return _Bytes(chunks, read, charset)


class CSVRows(Repository):
    """Rows of a CSV file or URL.

    ``identifier``: ``INDEX`` (0-based row index, the default), a column name, or a tuple of
    column names (then ``str(tuple(values))``). ``page_size``: the default page size.
    ``fields`` maps common item fields to columns, e.g. ``{"title": "name",
    "updated_at": "modified"}`` (dates that do not parse are left ``None``); mapping
    ``updated_at`` or ``created_at`` enables ``since=``. ``encoding``: else a BOM, the URL's
    charset, or UTF-8. ``cache``: ``None``, ``"memory"`` or a directory, for URLs, kept
    ``cache_ttl`` seconds and then revalidated (ETag / Last-Modified). Only a download read
    to the end is cached; a ``get`` that finds its row early reads the rest of a download
    into the cache, an abandoned listing keeps nothing. ``worker_thread``: parse in a worker
    thread (the event loop then never waits on parsing, at about a third more time). Without
    it, a listing is parsed on the event loop's thread in slices, as the bytes arrive; so is
    a local file's search and get, while a URL's search and get still parse in a worker
    thread. Other keyword arguments go to
    ``csv.reader`` (``delimiter``, ``quotechar``, ``dialect``...), plus DictReader's
    ``fieldnames``, ``restkey`` and ``restval``.

    A missing file, or a URL that answers 404, is a ``ConfigurationError`` (an
    ``ItemNotFound`` would read as "no such row").
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
        worker_thread: bool | None = None,
        **csv_reader_kwargs: Any,
    ) -> None:
        location = os.fspath(filepath_or_url)
        self.location = location
        self.is_url = urlsplit(location).scheme in ("http", "https")
        self.path = None if self.is_url else Path(location).expanduser()
        self.worker_thread = bool(worker_thread)
        self._pull_in_thread = self.worker_thread or self.is_url
        # Rows skipped per step of a get by index: a cancellation is heard between steps,
        # and on the event loop's thread a step must stay short.
        self._skip_slice = 1 << 16 if self._pull_in_thread else 1 << 13
        if identifier is not INDEX and not (
            isinstance(identifier, str)
            or (
                isinstance(identifier, tuple)
                and identifier
                and all(isinstance(column, str) for column in identifier)
            )
        ):
            raise ConfigurationError(
                "identifier must be INDEX, a column name or a tuple of column names",
                source=self.name,
            )
        self.identifier = identifier
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            raise ConfigurationError(
                f"page_size must be a positive integer, not {page_size!r}", source=self.name
            )
        self.default_page_size = page_size
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ConfigurationError(
                    f"unknown encoding {encoding!r}", source=self.name
                ) from None
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
        try:
            self.cache: DownloadCache | None = make_cache(cache)
        except TypeError as exc:
            raise ConfigurationError(str(exc), source=self.name) from None
        except OSError as exc:
            raise ConfigurationError(
                f"cannot use the cache directory {cache!s}: {exc.strerror or exc}",
                source=self.name,
            ) from None
        self.cache_ttl = cache_ttl
        self.fieldnames = list(fieldnames) if fieldnames is not None else None
        self.restkey = restkey
        self.restval = restval
        try:
            csv.reader([], **csv_reader_kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"bad csv option: {exc}", source=self.name) from None
        self.csv_kwargs = csv_reader_kwargs
        # A listing parses on the loop unless asked not to, and where the dialect allows it
        # (see CompleteRecords). A URL's search and get pull their bytes as they parse,
        # which only a worker thread can wait for (``_pull_in_thread``); a file's never wait.
        self._list_on_loop = not self.worker_thread and CompleteRecords.usable(csv_reader_kwargs)
        self._headers, self._auth, self._retry, self._timeout = headers, auth, retry, timeout
        self._client: HTTPClient | None = None

    def scope(self) -> Any:
        return self.location if self.path is None else str(self.path)

    def __repr__(self) -> str:
        where = redact_url(self.location) if self.is_url else self.location
        return f"<CSVRows {where!r} identifier={self.identifier!r}>"

    async def aclose(self) -> None:
        await super().aclose()
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

    @property
    def _where(self) -> str:
        return redact_url(self.location) if self.is_url else self.location

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[_Rows]:
        """The rows of the file, for a worker thread to read; released on exit."""
        async with self._bytes() as source:
            rows = _Rows(
                source.chunks,
                encoding=self.encoding,
                charset=source.charset,
                csv_kwargs=self.csv_kwargs,
                where=self._where,
            )
            try:
                yield rows
            finally:
                rows.close()

    @asynccontextmanager
    async def _bytes(self) -> AsyncIterator[_Bytes]:
        """The file's bytes (and the charset the server declared), from disk, the cache or
        the network; a download fills the cache as it is read."""
        if self.path is not None:
            try:
                local = FileChunks(self.path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ConfigurationError(f"no such file: {self.path}", source=self.name) from None
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read {self.path}: {exc.strerror or exc}", source=self.name
                ) from None
            try:
                yield _local(local, None)
            finally:
                local.close()
            return
        cache = self.cache
        copy = cache.open(self.location) if cache else None
        async with AsyncExitStack() as stack:
            if copy is not None:
                stack.callback(copy.close)
                if copy.entry.fresh(self.cache_ttl):
                    yield _local(copy.chunks, copy.entry.charset)
                    return
            headers = {"Accept": "text/csv, */*"}
            if copy is not None:
                if copy.entry.etag:
                    headers["If-None-Match"] = copy.entry.etag
                if copy.entry.last_modified:
                    headers["If-Modified-Since"] = copy.entry.last_modified
            try:
                response = await stack.enter_async_context(
                    self.client.stream(self.location, headers=headers)
                )
            except ItemNotFound as exc:
                raise ConfigurationError(
                    f"no CSV file at {self._where} (the server answered 404)",
                    source=self.name,
                    method=exc.method,
                    url=exc.url,
                    status=exc.status,
                ) from None
            if response.status == 304 and cache is not None and copy is not None:
                cache.touch(copy)
                yield _local(copy.chunks, copy.entry.charset)
                return
            if copy is not None:
                copy.close()  # superseded: let the sweep after this download remove it
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
            where = self._where

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
                        "the download stalled", source=CSVRows.name, method="GET", url=where
                    ) from None
                except (aiohttp.ClientError, OSError) as exc:
                    raise SourceUnavailable(
                        f"the connection broke during the download ({type(exc).__name__})",
                        source=CSVRows.name,
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
                yield _Bytes(chunks(), next_chunk, charset)
                if writer is not None and not complete:
                    # A get() that stopped early: keep the rest, so the next call is cached.
                    while chunk := await read():
                        writer.write(chunk)
                    complete = True
            finally:
                if writer is not None:
                    # Only a download read to the end is kept.
                    writer.commit() if complete else writer.abort()

    def _header(self, rows: _Rows) -> list[str]:
        if self.fieldnames is not None:
            return self.fieldnames
        first = rows.next_rows(1)
        return first[0] if first else []

    def _column(self, header: list[str], column: str, option: str) -> int:
        """Where ``column``'s value sits in a row (DictReader: the last of equal names)."""
        for position in range(len(header) - 1, -1, -1):
            if header[position] == column:
                return position
        shown = ", ".join(repr(name) for name in header[:20])
        raise ConfigurationError(
            f"{option}: no column {column!r} in {self._where} (columns: {shown})",
            source=self.name,
        )

    def _key(self, header: list[str]) -> Callable[[int, list[str]], str]:
        """A function (row index, values) -> the row's identifier, without building it."""
        identifier = self.identifier
        restval = self.restval
        if identifier is INDEX:
            return lambda index, values: str(index)
        if not header:  # an empty file: no rows to identify
            return lambda index, values: ""
        if isinstance(identifier, str):
            at = self._column(header, identifier, "identifier")
            return lambda index, values: str(values[at] if at < len(values) else restval)
        positions = [self._column(header, column, "identifier") for column in identifier]
        return lambda index, values: str(
            tuple(values[at] if at < len(values) else restval for at in positions)
        )

    def _raw_maker(self, header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
        """A function values -> the row's raw dict, as ``csv.DictReader`` makes it."""
        width = len(header)
        restkey, restval = self.restkey, self.restval

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

        return raw_of

    def _builder(self, header: list[str]) -> Callable[[int, list[str]], Item]:
        """A function (row index, values) -> Item, specialised for this file's options."""
        raw_of = self._raw_maker(header)
        key = self._key(header)
        fields = self.fields
        repository = self
        if header:
            for column in fields.values():
                for name in [column] if isinstance(column, str) else column:
                    self._column(header, name, "fields")

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

        if not fields:
            return lambda index, values: Item(key(index, values), raw_of(values), repository)

        def build(index: int, values: list[str]) -> Item:
            raw = raw_of(values)
            return Item(key(index, values), raw, repository, **common(raw))

        return build

    def _items_maker(self, header: list[str]) -> Callable[[list[list[str]], int], list[Item]]:
        """A function (a batch's rows, the index of its first) -> the batch's items."""
        build = self._builder(header)
        raws_of = _raws_maker(header, self._raw_maker(header))
        repository = self
        if not self.fields and self.identifier is INDEX:  # the hot path: no call per row
            return lambda rows, first: _RowItems(raws_of(rows), first, repository)
        return lambda rows, first: [build(index, row) for index, row in enumerate(rows, first)]

    def _batch_maker(self, rows: _Rows, header: list[str]) -> Callable[[int], list[list[Item]]]:
        """A function (index of the next row) -> the items of the next ``SLICE_ROWS`` rows in
        batches of ``BATCH_ROWS`` (fewer only at the end of the file, where the last batch is
        shorter or, if the rows ran out exactly, empty)."""
        items_of = self._items_maker(header)
        reader = rows.reader

        def next_batches(first: int) -> list[list[Item]]:
            batches: list[list[Item]] = []
            for _ in range(SLICE_ROWS // BATCH_ROWS):
                try:
                    # Blank lines (empty rows) are dropped by filter(), in C.
                    values = list(islice(filter(None, reader), BATCH_ROWS))
                except csv.Error as exc:
                    raise rows._csv_error(exc) from None
                batches.append(items_of(values, first))
                if len(values) < BATCH_ROWS:
                    break
                first += BATCH_ROWS
            return batches

        return next_batches

    def _window_maker(
        self, rows: _Rows, header: list[str], terms: tuple[str, ...], start: int
    ) -> Callable[[], tuple[list[tuple[int, list[Item], int | None]], bool]]:
        """A function () -> (windows, whether the file is done), run in the worker.

        A search's batches are windows of ``WINDOW_ROWS`` rows from ``start``: each holds the
        matches of its rows (often none), whatever the text's chunking, so that a cursor
        (window start + index among its matches) finds the same item again. A call returns
        the windows completed since the last one, at least one unless the file is done; the
        last window (shorter) has no next state.
        """
        build = self._builder(header)
        found = rows.matches(start, terms)
        window = [start, start + WINDOW_ROWS, start]  # start, end, rows seen
        items: list[Item] = []

        def next_windows() -> tuple[list[tuple[int, list[Item], int | None]], bool]:
            nonlocal items
            done: list[tuple[int, list[Item], int | None]] = []
            for index, values in found:
                while index >= window[1]:  # the rows before index were all seen
                    done.append((window[0], items, window[1]))
                    items = []
                    window[0] = window[1]
                    window[1] += WINDOW_ROWS
                if values is not None:
                    items.append(build(index, values))
                else:
                    window[2] = index
                    if done:
                        return done, False
            if window[2] > window[0]:  # the last, shorter window
                done.append((window[0], items, None))
                window[0] = window[2]
            return done, True

        return next_windows

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """Parsing work: in a worker thread, or (local files, by default) right here in
        slices of ``SLICE_ROWS`` rows, handing the event loop back after each slice. On one
        GIL the thread buys the loop's responsiveness, not speed: measured on a 1,000,000-row
        file, its hand-offs cost about a quarter of the listing's time."""
        if self._pull_in_thread:
            return await asyncio.to_thread(work, *args)
        result = work(*args)
        await asyncio.sleep(0)  # other tasks run between slices
        return result

    async def stream(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        if state is None:
            state = 0
        if not isinstance(state, int) or isinstance(state, bool) or state < 0:
            raise InvalidCursor("not a cursor of a CSV listing", source=self.name)
        start = state
        terms = request.terms
        if terms is not None:
            async with self._open() as rows:
                header = await self._run(self._header, rows)
                next_windows = self._window_maker(rows, header, terms, start)
                if start:
                    await self._run(rows.skip, start)
                while True:
                    windows, finished = await self._run(next_windows)
                    for first, found, end in windows:
                        yield first, Batch(found, end)
                    if finished:
                        return
        on_loop = self._list_on_loop
        batches = self._pushed_batches(start) if on_loop else self._pulled_batches(start)
        position = start
        # A full batch waits for the next one: if that is empty, the file ended with it,
        # and its next state is None (no last page with a cursor to an empty one).
        held: list[Item] | None = None
        try:
            async for items in batches:
                if held is not None:
                    yield position - BATCH_ROWS, Batch(held, position if items else None)
                    held = None
                if len(items) < BATCH_ROWS:  # the end of the file
                    if items:
                        yield position, Batch(items, None)
                    return
                held = items
                position += BATCH_ROWS
        finally:
            await batches.aclose()

    async def _pulled_batches(self, start: int) -> AsyncGenerator[list[Item], None]:
        """The listing's batches, parsed in a worker thread a slice at a time (the last batch
        is shorter, maybe empty)."""
        async with self._open() as rows:
            header = await self._run(self._header, rows)
            next_batches = self._batch_maker(rows, header)
            if start:
                await self._run(rows.skip, start)
            position = start
            while True:
                for items in await self._run(next_batches, position):
                    yield items
                    if len(items) < BATCH_ROWS:
                        return
                    position += BATCH_ROWS

    async def _pushed_batches(self, start: int) -> AsyncGenerator[list[Item], None]:
        """The listing's batches (the last shorter, maybe empty), parsed on the event loop's
        thread as the bytes arrive: only records known to be complete are parsed (see
        ``CompleteRecords``), so nothing ever waits for bytes to come. The loop is handed
        back after every ``SLICE_ROWS`` rows and whenever the download has to be waited for.
        """
        where = self._where

        def malformed(message: str) -> MalformedResponse:
            return _malformed(where, message)

        def csv_error(exc: csv.Error, line: int) -> MalformedResponse:
            return _malformed(where, f"line {line}: {exc}")

        async with self._bytes() as source:
            records = CompleteRecords(self.csv_kwargs, csv_error)
            decoder = TextDecoder(
                self.encoding, source.charset, malformed, lambda: records.lines_pushed
            )
            finished = False

            async def take(count: int) -> list[list[str]]:
                """``count`` rows, fewer only at the end of the file."""
                nonlocal finished
                rows = records.rows(count)
                while len(rows) < count and not finished:
                    chunk = await source.read()
                    for text in decoder.push(chunk) if chunk else decoder.finish():
                        records.push(text)
                    if not chunk:
                        records.finish()
                        finished = True
                    rows += records.rows(count - len(rows))
                return rows

            header = self.fieldnames
            if header is None:
                first = await take(1)
                header = first[0] if first else []
            skipped = 0
            while skipped < start:
                step = len(await take(min(SLICE_ROWS, start - skipped)))
                if not step:
                    break
                skipped += step
                await asyncio.sleep(0)
            items_of = self._items_maker(header)
            position = start
            while True:
                values = await take(BATCH_ROWS)
                yield items_of(values, position)
                if len(values) < BATCH_ROWS:
                    return
                position += BATCH_ROWS
                if not (position - start) % SLICE_ROWS:
                    await asyncio.sleep(0)  # other tasks run between slices

    async def get(self, identifier: str) -> Item:
        """The row with this identifier: skips to it by index (``INDEX``), else scans the
        rows in the worker, comparing identifiers before building any item."""
        identifier = str(identifier)
        by_index = self.identifier is INDEX
        if by_index and not (
            identifier.isascii() and identifier.isdigit() and str(int(identifier)) == identifier
        ):
            raise self.not_found(identifier, "row identifiers are 0-based row numbers")
        async with self._open() as rows:
            header = await self._run(self._header, rows)
            build = self._builder(header)
            if by_index:
                index = int(identifier)
                skipped = 0
                while skipped < index:  # in slices, so a cancellation is heard
                    step = await self._run(rows.skip, min(index - skipped, self._skip_slice))
                    if not step:
                        break
                    skipped += step
                if skipped < index:
                    raise self.not_found(identifier, "the file has fewer rows")
                found = await self._run(rows.next_rows, 1)
                if not found:
                    raise self.not_found(identifier, "the file has fewer rows")
                return build(index, found[0])
            key = self._key(header)

            def scan(first: int) -> tuple[int, Item | None]:
                values = rows.next_rows(SLICE_ROWS)
                for k, row in enumerate(values):
                    if key(first + k, row) == identifier:
                        return len(values), build(first + k, row)
                return len(values), None

            position = 0
            while True:
                read, item = await self._run(scan, position)
                if item is not None:
                    return item
                if not read:
                    raise self.not_found(identifier)
                position += read
