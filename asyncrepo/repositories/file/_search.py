"""A naive search of a CSV file: the rows that hold every term, in fixed windows of rows
(so that a cursor does not depend on the text's chunking), found by scanning the text and
parsing only the lines a term is in."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from itertools import islice
from operator import length_hint
from typing import Any

from ...pagination import Batch
from ...repository import Item
from ._rows import Parsing, Rows

__all__ = ["WINDOW_ROWS", "matches", "search_batches", "window_maker"]

#: Rows per window of a search. Fixed, because a search cursor counts in windows.
WINDOW_ROWS = 4096
_LONE_CR = re.compile("\r(?!\n)")
_BLANK = re.compile("\n\r?\n")


async def search_batches(
    source: Parsing, start: int, terms: tuple[str, ...]
) -> AsyncGenerator[tuple[Any, Batch], None]:
    """``(window start, its matches)`` from the window at row ``start`` on."""
    async with source._open() as rows:
        header = await source._run(source._header, rows)
        build = source._shape().builder(header)
        next_windows = window_maker(rows, build, terms, start)
        if start:
            await source._run(rows.skip, start)
        while True:
            windows, finished = await source._run(next_windows)
            for first, found, end in windows:
                yield first, Batch(found, end)
            if finished:
                return


def matches(
    rows: Rows, index: int, terms: tuple[str, ...]
) -> Iterator[tuple[int, list[str] | None]]:
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
    reader = rows.reader
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
        rows.lines_scanned += index - first
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
    sio, text = rows.current
    at = sio.tell()
    every_row, cf, nexts = enter(text)
    run = 0  # special rows in a row: many, and the reader takes them in chunks
    while True:
        if at >= len(text):
            yield index, None
            following = next(rows.text_pieces, None)
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
            special = max(at, text.rfind("\n", 0, special) + 1) if special < infinity else len(text)
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
                rows.lines_scanned += 1  # the line of the error, for the message
                raise rows.csv_error(exc) from None
            if length_hint(lines):
                if values:
                    haystack = "\x00".join(values).casefold()
                    if all(term in haystack for term in terms):
                        yield index, values
                    index += 1
                rows.lines_scanned += 1
                at = end
                continue
        # The reader parses from ``at``: hand it this piece if it reads another one.
        current = rows.current[0]
        if sio is None or current is not sio:
            current.seek(0, io.SEEK_END)  # the reader is done with it: it moves on
            if sio is None:
                sio = io.StringIO(text, newline="")
            rows.pending = (sio, text)
        sio.seek(at)
        chunk = min(run, 512)
        try:
            got = list(islice(reader, chunk))
        except csv.Error as exc:
            raise rows.csv_error(exc) from None
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
        if rows.current[0] is not sio:  # a field ran on into the following pieces
            yield index, None
            sio, text = rows.current
            every_row, cf, nexts = enter(text)
        at = sio.tell()


def window_maker(
    rows: Rows, build: Callable[[int, list[str]], Item], terms: tuple[str, ...], start: int
) -> Callable[[], tuple[list[tuple[int, list[Item], int | None]], bool]]:
    """A function () -> (windows, whether the file is done), run in the worker.

    A search's batches are windows of ``WINDOW_ROWS`` rows from ``start``: each holds the
    matches of its rows (often none), whatever the text's chunking, so that a cursor
    (window start + index among its matches) finds the same item again. A call returns
    the windows completed since the last one, at least one unless the file is done; the
    last window (shorter) has no next state.
    """
    found = matches(rows, start, terms)
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
