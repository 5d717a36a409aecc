"""Getting one row of a CSV file by its identifier: by row index, skipping rows without
building them; else by scanning, comparing identifiers before building any item."""

from __future__ import annotations

from ...repository import Item
from ._items import INDEX
from ._rows import SLICE_ROWS, Parsing

__all__ = ["get_row"]


async def get_row(source: Parsing, identifier: str) -> Item:
    """The row with this identifier: skips to it by index (``INDEX``), else scans the
    rows in the worker, comparing identifiers before building any item."""
    identifier = str(identifier)
    by_index = source.identifier is INDEX
    if by_index and not (
        identifier.isascii() and identifier.isdigit() and str(int(identifier)) == identifier
    ):
        raise source.not_found(identifier, "row identifiers are 0-based row numbers")
    async with source._open() as rows:
        header = await source._run(source._header, rows)
        shape = source._shape()
        build = shape.builder(header)
        if by_index:
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
