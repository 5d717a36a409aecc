"""The native listing backend (``pip install 'asyncrepo[fast]'``): pyarrow's streaming CSV
reader parses a local file in blocks, in its own threads without the GIL, while the event
loop's thread turns the columns into the same rows' dicts as the pure-Python path
(``_items.raws_maker``), in the same batches, with the same identifiers and cursors.

It takes only what it reads exactly like the csv module: a local, uncompressed UTF-8 file
(BOM or not), a plain dialect (``delimiter``, ``quotechar``, ``doublequote``,
``escapechar``), a header on the file's first line. A row pyarrow would read differently
(a ragged row, a blank line with spaces...), bytes that are not UTF-8, a lone quote: at
the first doubt, the listing goes on from that row with the pure-Python path, which reads
the file as it always has (and raises what it raises). Memory stays flat: one block of
``BLOCK`` bytes is parsed at a time.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import importlib.util
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, cast

from ...repository import Item
from ._incremental import split_lines

__all__ = ["BLOCK", "Plan", "arrow_batches", "available", "plan"]

#: Bytes pyarrow parses per block (a record batch).
BLOCK = 1 << 20
_HEAD = 1 << 16
_PLAIN_OPTIONS = {"delimiter", "quotechar", "doublequote", "escapechar"}


def available() -> bool:
    """Whether pyarrow is installed (found, not imported: importing it takes a while)."""
    return importlib.util.find_spec("pyarrow") is not None


class Plan:
    """How pyarrow reads this file: the header (its names made unique), where the data
    starts (bytes), and the options."""

    def __init__(self, header: list[str], offset: int, kwargs: Mapping[str, Any]) -> None:
        self.header = header
        self.offset = offset
        self.kwargs = kwargs


def plan(
    path: str,
    csv_kwargs: Mapping[str, Any],
    encoding: str | None,
    fieldnames: list[str] | None,
    columns: Callable[[list[str]], list[str]],
) -> Plan | None:
    """A plan for reading ``path`` with pyarrow, or ``None`` if the file needs the
    pure-Python path."""
    if set(csv_kwargs) - _PLAIN_OPTIONS:
        return None
    dialect = csv.reader([], **csv_kwargs).dialect
    if dialect.quoting != csv.QUOTE_MINIMAL or dialect.skipinitialspace:
        return None
    if encoding is not None and codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return None
    with open(path, "rb") as file:
        head = file.read(_HEAD)
    if head.startswith((b"\x1f\x8b", codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    offset = 3 if head.startswith(codecs.BOM_UTF8) else 0
    if fieldnames is not None:
        return Plan(fieldnames, offset, csv_kwargs)
    # The header: the first line, whole (no blank line or quoted line break before it).
    text = head[offset:].decode("latin-1")  # one character a byte: offsets are bytes
    lines = split_lines(text)
    if not lines or lines[0].strip("\r\n") == "" or len(lines) < 2:
        return None
    first = lines[0]
    try:
        values = next(csv.reader([first], **csv_kwargs))
        names = [value.encode("latin-1").decode("utf-8") for value in values]
    except (csv.Error, UnicodeDecodeError, StopIteration):
        return None
    if csv.reader([first, "\ue000\n"], **csv_kwargs).__next__() != values:
        return None  # the header's record goes on past its first line
    return Plan(columns(names), offset + len(first), csv_kwargs)


async def arrow_batches(
    path: str,
    the_plan: Plan,
    start: int,
    rows_per_batch: int,
    items_of: Callable[[list[list[str]], int], list[Item]],
) -> AsyncGenerator[tuple[int, list[Item] | None], None]:
    """``(position, items)`` for batches of ``rows_per_batch`` rows from row ``start``;
    ``(position, None)`` when pyarrow cannot go on: the pure-Python path takes over at
    ``position``. The last batch is shorter, maybe empty."""
    import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import pyarrow.csv as pacsv  # type: ignore[import-untyped,import-not-found,unused-ignore]

    header = the_plan.header
    width = len(header)
    dialect = csv.reader([], **the_plan.kwargs).dialect
    names = [f"c{k}" for k in range(width)]  # pyarrow wants unique, non-empty names
    read_options = pacsv.ReadOptions(
        column_names=names, block_size=BLOCK, use_threads=True, encoding="utf8"
    )
    parse_options = pacsv.ParseOptions(
        delimiter=dialect.delimiter,
        quote_char=dialect.quotechar or False,
        double_quote=dialect.doublequote,
        escape_char=dialect.escapechar or False,
        newlines_in_values=True,
        ignore_empty_lines=True,
    )
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
        check_utf8=True,
    )
    file = await asyncio.to_thread(open, path, "rb")  # closed in the finally below
    position = 0
    ahead: asyncio.Future[Any] | None = None  # the next block, parsed while this one is used
    try:
        file.seek(the_plan.offset)
        try:
            reader = await asyncio.to_thread(
                pacsv.open_csv,
                file,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            yield start, None
            return
        pending: list[Any] = []  # rows (tuples) not yet in a batch
        batch_first = start
        ahead = asyncio.ensure_future(asyncio.to_thread(_next_block, reader))
        while True:
            try:
                block = await ahead
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                ahead = None
                yield batch_first, None  # every row before it was handed out
                return
            ahead = None
            if block is None:
                break
            # pyarrow parses the next block (without the GIL) while this one becomes items.
            ahead = asyncio.ensure_future(asyncio.to_thread(_next_block, reader))
            count = block.num_rows
            if position + count <= start:
                position += count
                continue
            skip = max(0, start - position)
            position += count
            columns = [column.to_pylist() for column in block.columns]
            del block
            if skip:
                columns = [column[skip:] for column in columns]
                count -= skip
            size = rows_per_batch
            at = 0
            if pending:  # the rows left over from the block before, and the first here
                at = min(size - len(pending), count)
                pending += zip(*[column[:at] for column in columns], strict=True)
                if len(pending) < size:
                    continue
                yield batch_first, items_of(pending, batch_first)
                batch_first += size
            # The rows of a batch straight from the columns (zip reuses its tuple while
            # each row's dict display unpacks it): no list of rows in between.
            while at + size <= count:
                rows = zip(*[column[at : at + size] for column in columns], strict=True)
                yield batch_first, items_of(cast("list[list[str]]", rows), batch_first)
                batch_first += size
                at += size
            pending = list(zip(*[column[at:] for column in columns], strict=True))
        yield batch_first, items_of(pending, batch_first)
    finally:
        if ahead is not None and not ahead.done():
            # The thread still parses a block from the file: wait for it (one block), then
            # close the file; if this wait is cancelled, close it when the thread is done.
            try:
                await asyncio.wait({ahead})
            except BaseException:
                ahead.add_done_callback(lambda done: _close_after(done, file))
                raise
        if ahead is not None and ahead.done() and not ahead.cancelled():
            ahead.exception()  # retrieved: an abandoned read's error is not logged
        if ahead is None or ahead.done():
            file.close()


def _close_after(done: asyncio.Future[Any], file: Any) -> None:
    if not done.cancelled():
        done.exception()  # retrieved: an abandoned read's error is not logged
    file.close()


def _next_block(reader: Any) -> Any:
    """The reader's next record batch, ``None`` at the end (a StopIteration cannot cross
    from a thread into a future)."""
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
