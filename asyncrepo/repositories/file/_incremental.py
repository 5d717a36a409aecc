"""CSV text and records, pushed a piece at a time: for parsing on the event loop's thread
while a download arrives, where nothing may wait for the next chunk.

``TextDecoder``: bytes -> (gunzipped) bytes -> text. ``CompleteRecords``: text -> the rows of
its records that are known to be complete. Both are fed what has arrived and hand back only
what that settles; neither ever asks for more.
"""

from __future__ import annotations

import codecs
import csv
import io
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain, islice
from operator import length_hint
from typing import Any

_CHUNK = 1 << 20
#: A record this long (in characters) is long: ``CompleteRecords.long_record`` says so, so
#: its parsing can go to a worker thread, and its lines are fed to the reader by a
#: generator, so that another thread (the event loop's) can take the GIL between them.
LONG_TEXT = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def _utf8_sig(encoding: str) -> str:
    """``encoding``, with UTF-8 read as ``utf-8-sig`` (drops a BOM; else the same)."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


class TextDecoder:
    """Bytes in, text out: gunzipped when the data starts with the gzip magic number (several
    members are read one after the other), decoded with ``encoding``, else the BOM, else the
    server's ``charset``, else UTF-8 (a UTF-8 BOM is dropped).

    Errors are ``malformed(message)``, naming the line: ``lines_before()`` is the number of
    lines in the text handed out so far (counting them here would cost a scan of every byte).
    """

    def __init__(
        self,
        encoding: str | None,
        charset: str | None,
        malformed: Callable[[str], Exception],
        lines_before: Callable[[], int] = lambda: 0,
    ) -> None:
        self._encoding = encoding
        self._charset = charset
        self._malformed = malformed
        self._lines_before = lines_before
        self._gzip: bool | None = None  # unknown until two bytes are seen
        self._magic = b""  # the bytes before that
        self._inflate: Any = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._bom = b""  # the first plain bytes, until four show whether there is a BOM
        self._encoding_used = ""

    def push(self, data: bytes) -> Iterator[str]:
        """The text these bytes complete (in pieces)."""
        if self._gzip is None:
            data = self._magic + data
            if len(data) < 2:
                self._magic = data
                return
            self._magic = b""
            self._gzip = data[:2] == _GZIP_MAGIC
            if self._gzip:
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not self._gzip:
            yield from self._plain(data)
            return
        pending = data
        try:
            while pending:
                if self._inflate.eof:  # a member ended: another one follows (or padding)
                    if not pending.strip(b"\x00"):
                        return
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                # Bounded: a small compressed chunk never becomes one huge piece of text.
                plain = self._inflate.decompress(pending, _CHUNK)
                pending = self._inflate.unconsumed_tail or self._inflate.unused_data
                yield from self._plain(plain)
        except zlib.error as exc:
            raise self._malformed(f"not valid gzip data ({exc})") from None

    def finish(self) -> Iterator[str]:
        """The rest of the text, at the end of the data."""
        if self._gzip is None and self._magic:  # one byte in all
            self._gzip = False
            yield from self._plain(self._magic)
        if self._gzip and not self._inflate.eof:
            raise self._malformed("the gzip data is truncated")
        if self._decoder is None and self._bom:
            self._start(self._bom)
        if self._decoder is not None:
            data, self._bom = self._bom, b""
            yield self._decode(data, final=True)

    def _plain(self, data: bytes) -> Iterator[str]:
        if self._decoder is None:
            data = self._bom + data
            if len(data) < 4:
                self._bom = data
                return
            self._bom = b""
            self._start(data)
        if data:
            yield self._decode(data)

    def _start(self, head: bytes) -> None:
        encoding = self._choose(head)
        self._encoding_used = encoding.removesuffix("-sig")
        self._decoder = codecs.getincrementaldecoder(encoding)("strict")

    def _choose(self, head: bytes) -> str:
        if self._encoding:
            return _utf8_sig(self._encoding)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if self._charset:
            try:
                return _utf8_sig(self._charset)
            except LookupError:  # a charset Python does not know: assume UTF-8
                pass
        return "utf-8-sig"

    def _decode(self, data: bytes, final: bool = False) -> str:
        assert self._decoder is not None
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            line = self._lines_before() + data[: max(exc.start, 0)].count(b"\n") + 1
            raise self._malformed(
                f"line {line}: bytes that are not valid {self._encoding_used} "
                f"({exc.reason}); pass encoding= if the file uses another one"
            ) from None
        return text


#: Line ends besides "\n" and "\r" that ``str.splitlines`` splits at and the csv module
#: (reading ``open(newline="")`` lines) does not.
_OTHER_LINE_ENDS = ("\v", "\f", "\x1c", "\x1d", "\x1e")
_OTHER_LINE_ENDS_UNICODE = ("\x85", "\u2028", "\u2029")


def split_lines(text: str) -> list[str]:
    """``text``'s lines with their ends, as ``open(newline="")`` reads them ("\n", "\r\n"
    or "\r"; the last one may have none). ``str.splitlines`` when it splits the same way:
    an ``io.StringIO`` would first copy the text into a buffer four times its size."""
    ends = _OTHER_LINE_ENDS if text.isascii() else _OTHER_LINE_ENDS + _OTHER_LINE_ENDS_UNICODE
    if any(end in text for end in ends):
        return list(io.StringIO(text, newline=""))
    return text.splitlines(keepends=True)


class CompleteRecords:
    """Text in, rows out: only rows of records known to be complete, so that parsing never
    needs text that has not arrived, and never guesses where a record ends.

    Text is cut into lines; the complete lines are parsed a stretch at a time by a
    ``csv.reader`` that starts at a record boundary, and after the stretch comes a probe line
    (a private-use character, quoted). Parsed from a record's start, the probe is a row of
    its own: then every record of the stretch was complete. If the stretch ended inside a
    record (a quoted field running on), the probe is swallowed into it: that last row is
    dropped, and its lines are parsed again with the lines that follow. Which lines those
    are is found by parsing the stretch again up to them, which happens only when a chunk
    ends inside a record. The csv module decides every boundary; nothing here counts quotes.

    ``usable(csv_kwargs)`` says whether a dialect allows this (the probe must parse as one
    row of one value).
    """

    def __init__(
        self, csv_kwargs: Mapping[str, Any], error: Callable[[csv.Error, int], Exception]
    ) -> None:
        self._kwargs = csv_kwargs
        self._error = error
        self._probe, self._probe_row = _probe(csv_kwargs)  # ValueError: see usable()
        self._lines: list[str] = []  # complete lines not parsed yet, from a record boundary
        self._tail = ""  # the line after them, not ended yet (or ended by a last "\r")
        self._tail_parts: list[str] | None = None  # the tail's later parts, if it is long
        self._size = 0  # characters in _lines
        self._retry_at = 0  # a record ran past the lines: parse at this many characters
        self._final = False
        self._reader: Any = None  # the current stretch's reader, its lines and probe
        self._stretch: list[str] = []
        self._probe_left: Iterator[str] = iter(())
        self._probing = False  # whether the stretch ends with the probe (all but the last)
        self._taken = 0  # rows (blank ones too) taken from the stretch's reader
        self._lines_before = 0  # lines of the stretches done

    @staticmethod
    def usable(csv_kwargs: Mapping[str, Any]) -> bool:
        try:
            _probe(csv_kwargs)
        except ValueError:
            return False
        return True

    @property
    def lines_read(self) -> int:
        reader = self._reader
        return self._lines_before + (reader.line_num if reader is not None else 0)

    @property
    def lines_pushed(self) -> int:
        """Lines ended in the text pushed so far."""
        return self._lines_before + len(self._stretch) + len(self._lines)

    def push(self, text: str) -> None:
        if not text:
            return
        if self._tail_parts is not None:
            # A long line goes on: its parts are joined once it ends, not at every push.
            if "\n" not in text and "\r" not in text:
                self._tail_parts.append(text)
                return
            self._tail = "".join([self._tail, *self._tail_parts])
            self._tail_parts = None
        lines = split_lines(text)
        tail = self._tail
        if tail:
            if tail[-1] != "\r" or text[0] == "\n":  # the same line goes on
                lines[0] = tail + lines[0]
            else:  # the "\r" was a line end of its own
                lines.insert(0, tail)
        last = lines[-1]
        # Unended, or ended by a "\r" that a "\n" in the next text may belong to.
        self._tail = lines.pop() if last[-1] not in "\r\n" or last[-1] == "\r" else ""
        self._lines += lines
        self._size += len(text) + len(tail) - len(self._tail)
        if len(self._tail) >= LONG_TEXT and self._tail[-1] != "\r":
            self._tail_parts = []

    def finish(self) -> None:
        """No more text: the rest is parsed as it is (a record cut short ends there)."""
        self._final = True
        if self._tail_parts is not None:
            self._tail = "".join([self._tail, *self._tail_parts])
            self._tail_parts = None
        if self._tail:
            self._lines.append(self._tail)
            self._tail = ""

    @property
    def long_record(self) -> bool:
        """Whether a record ran past the text so far and is long (``LONG_TEXT``): parsing it
        takes a while, better spent off the event loop's thread."""
        return self._retry_at >= LONG_TEXT or self._tail_parts is not None

    @property
    def exhausted(self) -> bool:
        """Whether every row has been handed out (only after ``finish()``)."""
        return self._final and self._reader is None and not self._lines

    def rows(self, count: int) -> list[list[str]]:
        """Up to ``count`` complete rows, blank lines skipped; fewer when the text so far
        holds no more, or at the end of the text."""
        out: list[list[str]] = []
        while len(out) < count:
            if self._reader is None and not self._next_stretch():
                break
            want = count - len(out)
            got: list[list[str]] = []
            error: csv.Error | None = None
            try:
                got.extend(islice(self._reader, want))  # keeps the rows before an error
            except csv.Error as exc:
                error = exc
            if self._probing and length_hint(self._probe_left) == 0:
                # The reader reached the probe, so got's last row is the stretch's last:
                # the probe's own (every record was complete), or a record that ran on
                # past the stretch and swallowed it (strict: "unexpected end of data").
                if error is None and got and got[-1] == self._probe_row:
                    got.pop()
                    self._end_stretch(None)
                else:
                    if error is None and got:
                        got.pop()
                    self._end_stretch(self._taken + len(got))
            elif error is not None:
                raise self._error(error, self.lines_read) from None
            elif len(got) < want:  # the end of the last stretch
                self._end_stretch(None)
            else:
                self._taken += len(got)
            out += filter(None, got)
        return out

    def _next_stretch(self) -> bool:
        """A reader over the complete lines (all of them, at the end), and then the probe."""
        if not self._lines or (self._size < self._retry_at and not self._final):
            return False
        long = self._retry_at >= LONG_TEXT
        self._stretch, self._lines = self._lines, []
        self._size = 0
        self._retry_at = 0
        probe = () if self._final else (self._probe,)
        self._probe_left = iter(probe)
        self._probing = bool(probe)
        lines: Iterable[str] = self._stretch
        if long:  # one line at a time through Python code: the GIL can move between them
            lines = (line for line in lines)
        self._reader = csv.reader(chain(lines, self._probe_left), **self._kwargs)
        self._taken = 0
        return True

    def _end_stretch(self, complete: int | None) -> None:
        """The stretch is done: all of it (``None``), or its first ``complete`` rows, the
        rest going back in front of the lines still to parse."""
        reader, self._reader = self._reader, None
        stretch, self._stretch = self._stretch, []
        if complete is None:
            self._lines_before += reader.line_num - (1 if self._probing else 0)
            return
        counter = csv.reader(stretch, **self._kwargs)
        for _ in islice(counter, complete):  # the complete records, once more
            pass
        self._lines_before += counter.line_num
        rest = stretch[counter.line_num :]
        self._lines[:0] = rest
        started = sum(map(len, rest))  # the record's text so far
        self._size += started
        # Parse again once as much text again has come: a record running over many chunks
        # is parsed a number of times logarithmic in its size, not linear.
        self._retry_at = 2 * started


def _probe(csv_kwargs: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The probe line for this dialect and the row it parses to; ValueError if none works."""
    dialect = csv.reader([], **csv_kwargs).dialect
    specials = {dialect.delimiter, dialect.quotechar, dialect.escapechar}
    for mark in ("\ue000", "\ue001", "\ue002", "\ue003"):
        if mark in specials:
            continue
        quote = dialect.quotechar if dialect.quoting != csv.QUOTE_NONE else ""
        line = f"{quote}{mark}{quote}\n" if quote else f"{mark}\n"
        try:
            rows = list(csv.reader([line], **csv_kwargs))
        except (csv.Error, ValueError):
            continue
        if len(rows) == 1 and rows[0] and rows[0] != [""]:
            return line, rows[0]
    raise ValueError("no probe line parses as a row of its own in this dialect")
