"""Listing a CSV file: its rows' items in batches of ``BATCH_ROWS``, either parsed on the
event loop's thread as the bytes arrive (``pushed_batches``) or pulled by the parser in a
worker thread a slice at a time (``pulled_batches``)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncGenerator, Callable
from itertools import islice
from typing import Any

from ...exceptions import MalformedResponse
from ...pagination import Batch
from ...repository import Item
from ._arrow import arrow_batches
from ._errors import malformed
from ._incremental import CompleteRecords, TextDecoder
from ._rows import SLICE_ROWS, Parsing, Rows

__all__ = ["BATCH_ROWS", "batch_maker", "list_batches", "pulled_batches", "pushed_batches"]

#: Rows per batch of a listing. Small, so a batch's rows and dicts are made and consumed
#: while still in the CPU cache: at 4,096 a listing took about 20% longer. A cursor holds
#: the absolute row index of its batch, so resuming does not depend on this size.
BATCH_ROWS = 128


async def list_batches(source: Parsing, start: int) -> AsyncGenerator[tuple[Any, Batch], None]:
    """``(first row index, batch)`` from row ``start`` on; a full last batch has no next
    state."""
    batches = native_batches(source, start) if source._native else python_batches(source, start)
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


def python_batches(source: Parsing, start: int) -> AsyncGenerator[list[Item], None]:
    """The pure-Python path's batches (the last shorter, maybe empty)."""
    if source._list_on_loop:
        return pushed_batches(source, start)
    return pulled_batches(source, start)


async def native_batches(source: Parsing, start: int) -> AsyncGenerator[list[Item], None]:
    """The batches from pyarrow's reader (``_arrow``) where the file allows it; from the
    first row it cannot read as the csv module does, the pure-Python path's."""
    plan = await source._native_plan()
    if plan is not None:
        items_of = source._shape().items_maker(plan.header)
        path = str(source.path)
        native = arrow_batches(path, plan, start, BATCH_ROWS, items_of)
        try:
            async for position, items in native:
                if items is None:
                    start = position
                    break
                yield items
            else:
                return
        finally:
            await native.aclose()
    rest = python_batches(source, start)
    try:
        async for items in rest:
            yield items
    finally:
        await rest.aclose()


async def pulled_batches(source: Parsing, start: int) -> AsyncGenerator[list[Item], None]:
    """The listing's batches, parsed in a worker thread a slice at a time (the last batch
    is shorter, maybe empty)."""
    async with source._open() as rows:
        header = await source._run(source._header, rows)
        next_batches = batch_maker(rows, source._shape().items_maker(header))
        if start:
            await source._run(rows.skip, start)
        position = start
        while True:
            for items in await source._run(next_batches, position):
                yield items
                if len(items) < BATCH_ROWS:
                    return
                position += BATCH_ROWS


async def pushed_batches(source: Parsing, start: int) -> AsyncGenerator[list[Item], None]:
    """The listing's batches (the last shorter, maybe empty), parsed on the event loop's
    thread as the bytes arrive: only records known to be complete are parsed (see
    ``CompleteRecords``), so nothing ever waits for bytes to come. The loop is handed
    back after every ``SLICE_ROWS`` rows and whenever the download has to be waited for.
    """
    where = source._where

    def malformed_data(message: str) -> MalformedResponse:
        return malformed(where, message)

    def csv_error(exc: csv.Error, line: int) -> MalformedResponse:
        return malformed(where, f"line {line}: {exc}")

    async with source._bytes() as data:
        records = CompleteRecords(source.csv_kwargs, csv_error)
        decoder = TextDecoder(
            source.encoding, data.charset, malformed_data, lambda: records.lines_pushed
        )
        finished = False

        async def parsed(count: int) -> list[list[str]]:
            # A long record (a 50 MB field) is parsed in a worker thread, so that the loop
            # is not held for all of it (see CompleteRecords.long_record).
            if records.long_record:
                return await asyncio.to_thread(records.rows, count)
            return records.rows(count)

        async def take(count: int) -> list[list[str]]:
            """``count`` rows, fewer only at the end of the file. The loop is handed back
            after every chunk of bytes that completes no row (a long record): the work per
            slice is bounded by bytes, not only by rows."""
            nonlocal finished
            rows = await parsed(count)
            while len(rows) < count and not finished:
                chunk = await data.read()
                for piece, text in enumerate(decoder.push(chunk) if chunk else decoder.finish()):
                    if piece:  # a gzip chunk inflates to many pieces
                        await asyncio.sleep(0)
                    records.push(text)
                if not chunk:
                    records.finish()
                    finished = True
                got = await parsed(count - len(rows))
                if not got:  # a chunk inside one long record: the loop's turn
                    await asyncio.sleep(0)
                rows += got
            return rows

        header = source.fieldnames
        if header is None:
            first = await take(1)
            header = source._columns(first[0]) if first else []
        skipped = 0
        while skipped < start:
            step = len(await take(min(SLICE_ROWS, start - skipped)))
            if not step:
                break
            skipped += step
            await asyncio.sleep(0)
        items_of = source._shape().items_maker(header)
        position = start
        while True:
            values = await take(BATCH_ROWS)
            yield items_of(values, position)
            if len(values) < BATCH_ROWS:
                return
            position += BATCH_ROWS
            if not (position - start) % SLICE_ROWS:
                await asyncio.sleep(0)  # other tasks run between slices


def batch_maker(
    rows: Rows, items_of: Callable[[list[list[str]], int], list[Item]]
) -> Callable[[int], list[list[Item]]]:
    """A function (index of the next row) -> the items of the next ``SLICE_ROWS`` rows in
    batches of ``BATCH_ROWS`` (fewer only at the end of the file, where the last batch is
    shorter or, if the rows ran out exactly, empty)."""
    reader = rows.reader

    def next_batches(first: int) -> list[list[Item]]:
        batches: list[list[Item]] = []
        for _ in range(SLICE_ROWS // BATCH_ROWS):
            try:
                # Blank lines (empty rows) are dropped by filter(), in C.
                values = list(islice(filter(None, reader), BATCH_ROWS))
            except csv.Error as exc:
                raise rows.csv_error(exc) from None
            batches.append(items_of(values, first))
            if len(values) < BATCH_ROWS:
                break
            first += BATCH_ROWS
        return batches

    return next_batches
