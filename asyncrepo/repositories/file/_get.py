"""Getting one row of a CSV file by its identifier. A file on disk (a local file, a
download in the disk cache) is indexed by its first get (``_offsets``): later gets seek to
their row. Other files are read up to the row: by row index, skipping rows without
building them; else by scanning, comparing identifiers before building any item."""

from __future__ import annotations

import asyncio
import csv

from ...repository import Item
from ._download import Bytes, looks_like_html
from ._incremental import LONG_TEXT
from ._items import INDEX
from ._offsets import RowIndex, build_index, index_encoding, read_rows_at
from ._rows import SLICE_ROWS, Parsing, Rows

__all__ = ["get_row"]

#: Bytes looked at to choose the encoding (a BOM) and to spot an HTML page.
_HEAD = 256


async def get_row(source: Parsing, identifier: str) -> Item:
    """The row with this identifier."""
    identifier = str(identifier)
    by_index = source.identifier is INDEX
    if by_index and not (
        identifier.isascii() and identifier.isdigit() and str(int(identifier)) == identifier
    ):
        raise source.not_found(identifier, "row identifiers are 0-based row numbers")
    async with source._bytes() as data:
        # Where the bytes' reader is (past what was read ahead of it): a scan goes on there.
        if data.file is not None and data.file.closed:  # all read ahead: nothing to seek
            data.file = None
        position = data.file.tell() if data.file is not None else 0
        index = await _index(source, data)
        if index is not None:
            try:
                return await _indexed(source, index, data, identifier)
            except (csv.Error, UnicodeError):
                pass  # the scan says where the data is wrong
            source._row_index = None
        if data.file is not None:
            data.file.seek(position)
        rows = Rows(
            data.chunks,
            encoding=source.encoding,
            charset=data.charset,
            csv_kwargs=source.csv_kwargs,
            where=source._where,
        )
        try:
            return await _scan(source, rows, identifier)
        finally:
            rows.close()


async def _index(source: Parsing, data: Bytes) -> RowIndex | None:
    """The offset index of this file (built now if the file changed), or ``None`` if it
    is not on disk or cannot be indexed."""
    file, version = data.file, data.version
    if file is None or version is None:
        return None
    async with source._index_lock:
        index = source._row_index
        if index is not None and index.version == version:
            return index
        if source._unindexable == version:
            return None
        file.seek(0)
        head = file.read(_HEAD)
        file.seek(0)
        choice = index_encoding(head, source.encoding, data.charset, source.csv_kwargs)
        if choice is None or looks_like_html(head):  # the scan raises for HTML
            source._unindexable = version
            return None
        encoding, offset = choice
        keyer = None if source.identifier is INDEX else source._shape().key
        try:
            index = await asyncio.to_thread(
                build_index,
                file,
                version=version,
                encoding=encoding,
                offset=offset,
                csv_kwargs=source.csv_kwargs,
                fieldnames=source.fieldnames,
                columns=source._columns,
                keyer=keyer,
            )
        except (csv.Error, UnicodeError):
            source._unindexable = version  # the scan says where the data is wrong
            file.seek(0)
            return None
        source._row_index = index
        return index


async def _indexed(source: Parsing, index: RowIndex, data: Bytes, identifier: str) -> Item:
    file = data.file
    assert file is not None
    shape = source._shape()
    build = shape.builder(index.header)

    async def row(number: int) -> list[str]:
        offset, length, skip = index.span(number)
        args = (file, offset, length, skip, index.encoding, source.csv_kwargs)
        # A stretch of long records is read in a worker thread, short ones right here.
        found = (
            await asyncio.to_thread(read_rows_at, *args)
            if length > LONG_TEXT
            else read_rows_at(*args)
        )
        if found is None:  # the index does not match the file
            raise csv.Error(f"no row {number} where the index says")
        return found

    if source.identifier is INDEX:
        number = int(identifier)
        if number >= index.rows:
            raise source.not_found(identifier, "the file has fewer rows")
        return build(number, await row(number))
    if index.hashes is None:  # a file without a header: no rows
        raise source.not_found(identifier)
    key = shape.key(index.header)
    for number in index.candidates(identifier):
        values = await row(number)
        if key(number, values) == identifier:
            return build(number, values)
    raise source.not_found(identifier)


async def _scan(source: Parsing, rows: Rows, identifier: str) -> Item:
    header = await source._run(source._header, rows)
    shape = source._shape()
    build = shape.builder(header)
    if source.identifier is INDEX:
        index = int(identifier)
        skipped = 0
        while skipped < index:  # in slices, so a cancellation is heard
            step = await source._run(rows.skip, min(index - skipped, source._skip_slice))
            if not step:
                break
            skipped += step
        if skipped < index:
            raise source.not_found(identifier, "the file has fewer rows")
        found = await source._run(rows.next_rows, 1)
        if not found:
            raise source.not_found(identifier, "the file has fewer rows")
        return build(index, found[0])
    key = shape.key(header)

    def scan(first: int) -> tuple[int, Item | None]:
        values = rows.next_rows(SLICE_ROWS)
        for k, row in enumerate(values):
            if key(first + k, row) == identifier:
                return len(values), build(first + k, row)
        return len(values), None

    position = 0
    while True:
        read, item = await source._run(scan, position)
        if item is not None:
            return item
        if not read:
            raise source.not_found(identifier)
        position += read
