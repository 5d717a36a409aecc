"""The offset index of a get: where a file's rows start, in bytes, so that a get seeks to
its row instead of reading the file up to it.

Built by one scan of the file (in a worker thread) the first time a get needs it, and kept
for that version of the file (its identity, size, mtime and ctime: ``file_version``; a cached
download's blob). Memory is bounded by the row count: the byte offset of every
``CHECKPOINT``-th row (8 bytes per 64 rows), and, for a column identifier, each row's
identifier hash and row number, sorted by hash (16 bytes a row); a get reads at most
``CHECKPOINT`` rows from a checkpoint and compares identifiers, so a hash collision costs
a little time, never a wrong row.

How bytes map to rows without decoding twice: the scan parses the bytes decoded as
latin-1 (one character a byte, so character offsets are byte offsets). That finds the same
record boundaries as the real text when the encoding is UTF-8 or a single-byte
ASCII-compatible one and the dialect's special characters are ASCII: no byte of a
multi-byte UTF-8 character is an ASCII byte. Other files (gzip, UTF-16, multi-byte legacy
encodings, non-ASCII delimiters) are not indexed: their gets scan, as before.
"""

from __future__ import annotations

import codecs
import csv
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import Any, BinaryIO

from ._incremental import split_lines

__all__ = ["CHECKPOINT", "RowIndex", "build_index", "index_encoding", "read_rows_at"]

#: Rows between two stored offsets.
CHECKPOINT = 64
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class RowIndex:
    """Where the rows of one version of a file start. ``offsets[k]`` is the byte offset of
    row ``k * CHECKPOINT``, and ``offsets[-1]`` the end of the last row."""

    version: Any
    encoding: str
    header: list[str]
    rows: int
    offsets: array[int]
    hashes: array[int] | None  # sorted hashes of the rows' identifiers (column identifiers)
    order: array[int] | None  # the row number of each of those hashes

    def candidates(self, identifier: str) -> Iterator[int]:
        """The rows whose identifier may be ``identifier`` (same hash), in file order."""
        hashes, order = self.hashes, self.order
        assert hashes is not None and order is not None
        wanted = hash(identifier)
        at = bisect_left(hashes, wanted)
        while at < len(hashes) and hashes[at] == wanted:
            yield order[at]
            at += 1

    def span(self, row: int) -> tuple[int, int, int]:
        """(offset, length in bytes, rows to skip) of the stretch that holds ``row``."""
        checkpoint, skip = divmod(row, CHECKPOINT)
        start = self.offsets[checkpoint]
        return start, self.offsets[checkpoint + 1] - start, skip

    @property
    def size(self) -> int:
        """Bytes the index keeps (its arrays), for the README's claim and the tests."""
        arrays = [self.offsets, self.hashes, self.order]
        return sum(len(a) * a.itemsize for a in arrays if a is not None)


def index_encoding(
    head: bytes, encoding: str | None, charset: str | None, csv_kwargs: Mapping[str, Any]
) -> tuple[str, int] | None:
    """The encoding the file is read with and the offset of its text (after a BOM), if an
    index can be built for it (see the module's docstring); else ``None``. ``head`` is the
    file's first bytes; the choice follows ``TextDecoder``'s."""
    if head.startswith(_GZIP_MAGIC):
        return None
    dialect = csv.reader([], **csv_kwargs).dialect
    specials = (dialect.delimiter, dialect.quotechar or "", dialect.escapechar or "")
    if not all(special.isascii() for special in specials):
        return None
    if dialect.quoting == csv.QUOTE_NONNUMERIC:
        return None  # values become floats: not text to compare
    if encoding:
        chosen = encoding
    elif head.startswith(codecs.BOM_UTF8):
        chosen = "utf-8"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    else:
        chosen = charset or "utf-8"
    try:
        name = codecs.lookup(chosen).name
    except LookupError:
        name = "utf-8"  # TextDecoder's choice for a charset Python does not know
    if name in ("utf-8", "utf-8-sig"):
        return "utf-8", 3 if head.startswith(codecs.BOM_UTF8) else 0
    try:
        table = bytes(range(256)).decode(name, errors="replace")  # cp1252 leaves 5 out
    except LookupError:
        return None
    if len(table) != 256 or table[:128] != bytes(range(128)).decode("ascii"):
        return None  # not one character a byte, or not ASCII below 128
    return name, 0


class _Lines:
    """The file's lines (latin-1), from ``offset`` on, in lists, one per chunk; remembers
    where the recent lines start, for ``offset_of``. ``ascii`` turns ``False`` at the first
    chunk that is not ASCII."""

    def __init__(self, file: BinaryIO, offset: int, encoding: str) -> None:
        self._file = file
        # Every byte is decoded once for real too: bytes that are not valid raise
        # UnicodeDecodeError here, and the caller scans instead (the scan names the line).
        self._check = codecs.getincrementaldecoder(encoding)("strict").decode
        self._offset = offset
        self._segments: deque[tuple[int, list[int]]] = deque()  # (first line, starts)
        self.lines = 0
        self.end = offset
        self.ascii = True

    def __iter__(self) -> Iterator[list[str]]:
        file = self._file
        file.seek(self._offset)
        carry: list[str] = []
        while chunk := file.read(_CHUNK):
            if self.ascii and not chunk.isascii():
                self.ascii = False
            self._check(chunk)
            text = chunk.decode("latin-1")
            if "\n" not in text and "\r" not in text:
                carry.append(text)  # a long line goes on
                continue
            if carry:
                carry.append(text)
                text = "".join(carry)
                carry = []
            lines = split_lines(text)
            last = lines[-1]
            if last[-1] not in "\r\n" or last[-1] == "\r":  # a "\n" may follow the "\r"
                carry.append(lines.pop())
            if lines:
                yield self._counted(lines)
        self._check(b"", True)
        if carry:
            yield self._counted(["".join(carry)])

    def _counted(self, lines: list[str]) -> list[str]:
        starts = list(accumulate(map(len, lines), initial=self.end))
        self._segments.append((self.lines, starts))
        self.lines += len(lines)
        self.end = starts[-1]
        return lines

    def offset_of(self, line: int) -> int:
        """The byte offset where line number ``line`` (0-based) starts; lines before the
        last one asked for are forgotten."""
        segments = self._segments
        while len(segments) > 1 and segments[1][0] <= line:
            segments.popleft()
        first, starts = segments[0]
        return starts[line - first]


def build_index(
    file: BinaryIO,
    *,
    version: Any,
    encoding: str,
    offset: int,
    csv_kwargs: Mapping[str, Any],
    fieldnames: list[str] | None,
    columns: Callable[[list[str]], list[str]],
    keyer: Callable[[list[str]], Callable[[int, list[str]], str]] | None,
) -> RowIndex:
    """One scan of ``file`` from ``offset``: the offsets of its rows and, with ``keyer``
    (header -> a function (row index, values) -> identifier), their identifiers' hashes.
    ``columns`` makes the header's names (unique). Raises ``csv.Error`` and
    ``UnicodeDecodeError`` as the data has them (the caller then scans instead)."""
    lines = _Lines(file, offset, encoding)
    # A generator per chunk: the GIL can go to the event loop's thread between chunks.
    reader = csv.reader(chain.from_iterable(lines), **csv_kwargs)

    def real(values: list[str]) -> list[str]:
        if lines.ascii:
            return values
        return [v if v.isascii() else v.encode("latin-1").decode(encoding) for v in values]

    header = fieldnames
    start = 0  # the line the next record starts at
    if header is None:
        for values in reader:
            start = reader.line_num
            if values:
                header = columns(real(values))
                break
        else:
            header = []
    offsets = array("q")
    hashes = array("q")
    key = keyer(header) if keyer is not None and header else None
    count = 0
    for values in reader:
        if values:
            if not count % CHECKPOINT:
                offsets.append(lines.offset_of(start))
            if key is not None:
                hashes.append(hash(key(count, real(values))))
            count += 1
        start = reader.line_num
    offsets.append(lines.end)
    if key is None:
        return RowIndex(version, encoding, header, count, offsets, None, None)
    order = sorted(range(count), key=hashes.__getitem__)
    sorted_hashes = array("q", (hashes[row] for row in order))
    del hashes
    return RowIndex(version, encoding, header, count, offsets, sorted_hashes, array("q", order))


def read_rows_at(
    file: BinaryIO,
    offset: int,
    length: int,
    skip: int,
    encoding: str,
    csv_kwargs: Mapping[str, Any],
) -> list[str] | None:
    """The row ``skip`` rows after the record at ``offset`` (blank lines not counted), from
    the ``length`` bytes there (whole records); ``None`` if there are fewer."""
    file.seek(offset)
    text = file.read(length).decode(encoding)
    lines: Iterable[str] = split_lines(text)
    if length > _CHUNK:  # long records, read in a worker thread: let the GIL move between lines
        lines = (line for line in lines)
    for values in csv.reader(lines, **csv_kwargs):
        if values:
            if not skip:
                return values
            skip -= 1
    return None
