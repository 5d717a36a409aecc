"""Rows of a CSV file or URL (``.csv`` or gzip-compressed ``.csv.gz``).

Speed and memory: the file is read in 1 MiB chunks, decoded incrementally and parsed by the
C ``csv`` module; memory stays flat in the file size (unless ``cache="memory"``).

* A listing is parsed on the event loop's thread as the bytes arrive (``_listing.pushed_batches``):
  ``CompleteRecords`` parses only the records the csv module shows complete, so nothing
  waits for bytes. Rows' dicts come from generated code (``_items.raws_maker``) in batches of
  ``BATCH_ROWS``, and each ``Item`` is made as the consumer takes it (``_items.RowItems``).
  The loop is handed back after every chunk of bytes too, and a long record (a 50 MB
  field) is parsed in a worker thread, so no record holds the loop for long.
* A search and a get pull their bytes as they parse (``_rows.Rows``), in a worker thread
  (a URL's waits for each network chunk from the loop; a local file's could parse on the
  loop, but a long record would then hold it). A naive search scans the text for the
  longest term and parses only the rows it is found in (see ``_search.matches``); its
  batches are fixed windows of rows, so cursors do not depend on the chunking.
* A get on a file on disk (a local file, a download in the disk cache) indexes the file
  on its first call (``_offsets``): later gets seek to their row. Elsewhere a get by row
  index skips rows without building them, and a get by column compares identifiers before
  building any item.
* ``worker_thread=True`` runs all parsing in a worker thread, listings too (``_rows.Rows``).
* A URL's download has no total time limit by default (a big file may take minutes);
  ``download_timeout=`` sets one, so a server trickling bytes cannot hold a call open
  (``timeout=`` bounds connecting and each read).

Ragged rows follow ``csv.DictReader``: values past the header go to a list under
``restkey`` (default ``"_extra"``, JSON-friendly where DictReader uses ``None``), missing
ones are ``restval`` (default ``None``). Blank lines are skipped and do not count as rows
(nor as the header). A header with a repeated or empty name keeps every column: ``a``,
``a_2``; an empty one is ``column_<position>`` (a warning is logged). Lines end as
``open(newline="")`` sees them: ``\n``, ``\r\n`` or ``\r``.
Bytes that do not decode, and gzip data that is corrupt or cut short, raise
``MalformedResponse`` naming the file and the line. An identifier or ``fields`` column that
is not in the header is a ``ConfigurationError``.

The parts, each in its own module: ``_download`` (the bytes: disk, cache, network),
``_incremental`` and ``_rows`` (bytes -> text -> rows, pushed or pulled), ``_items`` (rows
-> items), ``_listing``, ``_search``, ``_get`` and its ``_offsets`` index; this module holds
the repository class.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import logging
import os
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from ...exceptions import ConfigurationError, InvalidCursor
from ...http import Auth, HTTPClient, RetryPolicy, redact_url
from ...pagination import Batch
from ...repository import Capabilities, Item, PageRequest, Repository
from ._arrow import Plan
from ._arrow import available as native_available
from ._arrow import plan as native_plan
from ._cache import DownloadCache, make_cache
from ._dialect import detect_delimiter
from ._download import PEEK, Bytes, looks_like_html, open_bytes
from ._errors import SOURCE
from ._get import get_row
from ._incremental import CompleteRecords, TextDecoder
from ._items import FIELD_NAMES, INDEX, RowShape, unique_columns
from ._listing import BATCH_ROWS, list_batches
from ._offsets import RowIndex
from ._rows import SLICE_ROWS, Rows, open_rows, read_header
from ._search import WINDOW_ROWS, search_batches

T = TypeVar("T")

__all__ = ["BATCH_ROWS", "INDEX", "SLICE_ROWS", "WINDOW_ROWS", "CSVRows"]

log = logging.getLogger("asyncrepo.file")


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
    it, a listing is parsed on the event loop's thread in slices, as the bytes arrive (a
    long record in a worker thread); a search and a get parse in a worker thread.
    ``reject_html``: an HTML page (``text/html``, or a file whose first bytes are HTML: a
    login wall answered with a 200) is ``MalformedResponse``; ``False`` reads it as CSV.
    Other keyword arguments go to
    ``csv.reader`` (``delimiter``, ``quotechar``, ``dialect``...), plus DictReader's
    ``fieldnames``, ``restkey`` and ``restval``. Without ``delimiter`` or ``dialect``, the
    delimiter (comma, semicolon, tab or pipe) is told from the file's first KiB on the first
    read, and kept (logged at debug level; see ``_dialect``).

    A missing file, or a URL that answers 404, is a ``ConfigurationError`` (an
    ``ItemNotFound`` would read as "no such row").
    """

    name = SOURCE
    capabilities: ClassVar[Capabilities] = Capabilities(get="naive", search="naive")
    filters_search_terms = True
    default_page_size = 20
    # One stream of rows, numbered as read: no page can repeat or shift, and a file may hold
    # two rows with the same identifier column, which a listing must not drop.
    dedupe_identifiers = False

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
        download_timeout: float | None = None,
        worker_thread: bool | None = None,
        reject_html: bool = True,
        backend: str = "auto",
        **csv_reader_kwargs: Any,
    ) -> None:
        location = os.fspath(filepath_or_url)
        self.location = location
        self.is_url = urlsplit(location).scheme in ("http", "https")
        self.path = None if self.is_url else Path(location).expanduser()
        self.worker_thread = bool(worker_thread)
        self.reject_html = reject_html
        # Rows skipped per step of a get by index: a cancellation is heard between steps.
        self._skip_slice = 1 << 16
        self._row_index: RowIndex | None = None
        self._unindexable: Hashable = None
        self._index_lock = asyncio.Lock()
        self._warned: set[tuple[str, ...]] = set()  # headers whose renames were logged
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
        unknown = set(self.fields) - set(FIELD_NAMES)
        if unknown:
            raise ConfigurationError(
                f"fields= knows {', '.join(FIELD_NAMES)}, not {', '.join(sorted(unknown))}",
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
        # No delimiter given: it is told from the file's first KiB on the first read.
        self._sniffing = "delimiter" not in csv_reader_kwargs and "dialect" not in csv_reader_kwargs
        # A listing parses on the loop unless asked not to, and where the dialect allows it
        # (see CompleteRecords). A search and a get pull their bytes as they parse, in a
        # worker thread: a URL's must wait for them, and a long record must not hold the loop.
        self._list_on_loop = not self.worker_thread and CompleteRecords.usable(csv_reader_kwargs)
        if backend not in ("auto", "python", "arrow"):
            raise ConfigurationError(
                f"backend must be 'auto', 'python' or 'arrow', not {backend!r}", source=self.name
            )
        if backend == "arrow" and not native_available():
            raise ConfigurationError(
                "backend='arrow' needs pyarrow: pip install 'asyncrepo[fast]'", source=self.name
            )
        self.backend = backend
        # pyarrow lists local files where it is installed (see _arrow), unless told not to.
        self._native = backend != "python" and self.path is not None and native_available()
        self._headers, self._auth, self._retry, self._timeout = headers, auth, retry, timeout
        self._download_timeout = download_timeout
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
                download_timeout=self._download_timeout,
            )
        return self._client

    @property
    def _where(self) -> str:
        return redact_url(self.location) if self.is_url else self.location

    def _open(self) -> AbstractAsyncContextManager[Rows]:
        """The rows of the file, for a worker thread to read; released on exit."""
        return open_rows(
            self._bytes(),
            encoding=self.encoding,
            csv_kwargs=lambda: self.csv_kwargs,
            where=self._where,
        )

    def _bytes(self) -> AbstractAsyncContextManager[Bytes]:
        """The file's bytes (and the charset the server declared), from disk, the cache or
        the network; a download fills the cache as it is read."""
        return open_bytes(
            path=self.path,
            location=self.location,
            where=self._where,
            cache=self.cache,
            cache_ttl=self.cache_ttl,
            client=lambda: self.client,
            html=not self.reject_html,
            sniff=self._sniff if self._sniffing else None,
        )

    async def _native_plan(self) -> Plan | None:
        """How pyarrow reads this local file, or ``None`` (the pure-Python path then reads
        it, and raises what it raises: a missing file, an HTML page...)."""
        path = self.path
        assert path is not None

        def head() -> bytes:
            with open(path, "rb") as file:
                return file.read(PEEK)

        try:
            first = await asyncio.to_thread(head)
        except OSError:
            return None
        if self.reject_html and looks_like_html(first):
            return None
        if self._sniffing:
            self._sniff(first, len(first) < PEEK, None)
        try:
            return await asyncio.to_thread(
                native_plan,
                str(path),
                self.csv_kwargs,
                self.encoding,
                self.fieldnames,
                self._columns,
            )
        except (OSError, ValueError, LookupError):
            return None

    def _sniff(self, head: bytes, whole: bool, charset: str | None) -> None:
        """Tell the delimiter from the file's first KiB (see ``_dialect``), once."""
        if not self._sniffing:
            return
        self._sniffing = False
        texts: list[str] = []
        decoder = TextDecoder(self.encoding, charset, lambda message: ValueError(message))
        try:
            texts.extend(decoder.push(head))
            if whole:
                texts.extend(decoder.finish())
        except ValueError:  # bytes that do not decode: the reading says where
            pass
        delimiter = detect_delimiter("".join(texts), whole)
        log.debug("%s: the delimiter is %r (detected)", self._where, delimiter)
        if delimiter != ",":
            self.csv_kwargs = {**self.csv_kwargs, "delimiter": delimiter}

    def _header(self, rows: Rows) -> list[str]:
        header = read_header(rows, self.fieldnames)
        return header if self.fieldnames is not None else self._columns(header)

    def _columns(self, names: list[str]) -> list[str]:
        """The file's header with every column kept (see ``unique_columns``); the renames
        are logged once per repository and header."""
        columns, renamed = unique_columns(names)
        if renamed and tuple(names) not in self._warned:
            self._warned.add(tuple(names))
            log.warning(
                "%s: repeated or empty column names, renamed to keep every column: %s",
                self._where,
                "; ".join(renamed[:20]) + (" ..." if len(renamed) > 20 else ""),
            )
        return columns

    def _shape(self) -> RowShape:
        """What this repository's rows become (its identifier, fields, restkey, restval)."""
        return RowShape(
            repository=self,
            identifier=self.identifier,
            fields=self.fields,
            restkey=self.restkey,
            restval=self.restval,
            where=self._where,
        )

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """Parsing work that pulls its bytes (a search, a get, a listing with
        ``worker_thread``), a slice at a time in a worker thread. On one GIL the thread buys
        the loop's responsiveness, not speed (for a listing, its hand-offs cost about a
        quarter of the time, so a listing parses on the loop by default); but only there
        does a long record not hold the loop: the parser takes the GIL back between its
        pieces of text."""
        return await asyncio.to_thread(work, *args)

    async def stream(self, request: PageRequest, state: Any) -> AsyncIterator[tuple[Any, Batch]]:
        if state is None:
            state = 0
        if not isinstance(state, int) or isinstance(state, bool) or state < 0:
            raise InvalidCursor("not a cursor of a CSV listing", source=self.name)
        terms = request.terms
        batches = (
            search_batches(self, state, terms) if terms is not None else list_batches(self, state)
        )
        try:
            async for state_and_batch in batches:
                yield state_and_batch
        finally:
            await batches.aclose()

    async def get(self, identifier: str) -> Item:
        """The row with this identifier: skips to it by index (``INDEX``), else scans the
        rows in the worker, comparing identifiers before building any item."""
        return await get_row(self, identifier)
