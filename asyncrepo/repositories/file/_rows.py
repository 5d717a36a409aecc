"""The parsing pipeline that pulls its bytes: bytes -> (gunzipped) bytes -> text -> CSV
rows, run in a worker thread (a download's bytes are waited for there; a long record
would hold the event loop). A listing that parses as the bytes are pushed, on the loop,
uses ``_incremental``.

``Parsing`` is what the listing, the search and the get need of the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ...exceptions import ItemNotFound, MalformedResponse
from ._arrow import Plan
from ._download import Bytes
from ._errors import malformed
from ._incremental import TextDecoder
from ._items import RowShape
from ._offsets import RowIndex

T = TypeVar("T")

__all__ = ["SLICE_ROWS", "Parsing", "Rows", "open_rows", "read_header"]

# A 1 MB field (and far larger) must parse; the csv module's default limit is 128 KiB.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))

#: Rows parsed per slice of work: one hop to the worker thread, or one stretch on the event
#: loop's thread before it is handed back.
SLICE_ROWS = 4096


class Rows:
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
        self.text_pieces = self._pieces()
        # The piece the reader reads (its StringIO and text), and one to read next.
        self.current: tuple[io.StringIO, str] = (io.StringIO(""), "")
        self.pending: tuple[io.StringIO, str] | None = None
        self.lines_scanned = 0  # lines the search scan read without the reader
        self.reader = csv.reader(chain.from_iterable(self._feed()), **csv_kwargs)

    def _malformed(self, message: str) -> MalformedResponse:
        return malformed(self._where, message)

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
        """The pieces as ``io.StringIO``s, for the reader; ``current`` is the one it reads.
        A piece the search scan already took is handed over through ``pending``."""
        while True:
            pending = self.pending
            if pending is not None:
                self.pending = None
                self.current = pending
            else:
                text = next(self.text_pieces, None)
                if text is None:
                    return
                self.current = (io.StringIO(text, newline=""), text)
            yield self.current[0]

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
            raise self.csv_error(exc) from None
        return rows

    @property
    def lines_read(self) -> int:
        """Lines read so far, by the reader or by the search scan."""
        return self.reader.line_num + self.lines_scanned

    def csv_error(self, exc: csv.Error) -> MalformedResponse:
        return self._malformed(f"line {self.lines_read}: {exc}")

    def skip(self, count: int) -> int:
        """Skip ``count`` non-blank rows without building items; return how many were."""
        skipped = 0
        while skipped < count:
            rows = self.next_rows(min(SLICE_ROWS, count - skipped))
            if not rows:
                break
            skipped += len(rows)
        return skipped


@asynccontextmanager
async def open_rows(
    source: AbstractAsyncContextManager[Bytes],
    *,
    encoding: str | None,
    csv_kwargs: Callable[[], Mapping[str, Any]],
    where: str,
) -> AsyncIterator[Rows]:
    """The rows of the file, for a worker thread to read; released on exit. ``csv_kwargs``
    is asked once the bytes are open (the dialect may be told from their start)."""
    async with source as data:
        rows = Rows(
            data.chunks,
            encoding=encoding,
            charset=data.charset,
            csv_kwargs=csv_kwargs(),
            where=where,
        )
        try:
            yield rows
        finally:
            rows.close()


def read_header(rows: Rows, fieldnames: list[str] | None) -> list[str]:
    """The header: ``fieldnames`` if given, else the first row (none in an empty file)."""
    if fieldnames is not None:
        return fieldnames
    first = rows.next_rows(1)
    return first[0] if first else []


class Parsing(Protocol):
    """What the listing, the search and the get need of the repository (``CSVRows``)."""

    _row_index: RowIndex | None  # the offset index of a get, for one version of the file
    _unindexable: Hashable  # a version of the file found not to be indexable
    _index_lock: asyncio.Lock

    @property
    def _where(self) -> str: ...

    @property
    def encoding(self) -> str | None: ...

    @property
    def csv_kwargs(self) -> Mapping[str, Any]: ...

    @property
    def fieldnames(self) -> list[str] | None: ...

    @property
    def identifier(self) -> Any: ...

    @property
    def _skip_slice(self) -> int: ...

    @property
    def _list_on_loop(self) -> bool: ...

    @property
    def _native(self) -> bool: ...

    @property
    def path(self) -> Path | None: ...

    async def _native_plan(self) -> Plan | None: ...

    def _bytes(self) -> AbstractAsyncContextManager[Bytes]: ...

    def _open(self) -> AbstractAsyncContextManager[Rows]: ...

    def _header(self, rows: Rows) -> list[str]: ...

    def _columns(self, names: list[str]) -> list[str]: ...

    def _shape(self) -> RowShape: ...

    async def _run(self, work: Callable[..., T], *args: Any) -> T: ...

    def not_found(self, identifier: str, reason: str | None = None) -> ItemNotFound: ...
