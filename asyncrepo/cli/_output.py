"""Output that streams: every format writes items as they arrive, in constant memory.

* ``jsonl``: one JSON object a line.
* ``json``: one JSON array, written element by element (``[`` first, ``]`` last).
* ``table``: the columns and their widths are chosen from the first items (up to
  ``SAMPLE_ITEMS``, or what has arrived after ``SAMPLE_WAIT`` seconds), then every row is
  printed as it comes, cut to those widths. No box drawing: a pager or ``grep`` reads it.

Columns come from the data: the identifier, then the common fields (title, author, kind,
date, url) that are set in the first items; when none of title and text is set, the first
few raw fields. ``--columns a,b,c`` picks them: a common field name, or a raw field (``name``
or ``raw.name``; ``raw.fields.summary`` goes into nested objects).

Output is flushed when the source pauses (a ticker flushes what is buffered every
``FLUSH_EVERY`` seconds), so a reader sees the first rows while a slow source is still
working. A live progress display (items, items/s, a bar when the total is known) runs on
stderr when stderr is a terminal and stdout is not (on a terminal the rows themselves show
the progress, and a summary line follows them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson

from ._app import Format

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..repository import Item, Stream

SAMPLE_ITEMS = 100
SAMPLE_WAIT = 0.3
FLUSH_EVERY = 0.1
PROGRESS_AFTER = 0.5  # seconds before a progress display appears (no flash on quick runs)
MAX_RAW_COLUMNS = 6
MAX_WIDTH = 60  # a column's width when the output is not a terminal

COMMON_FIELDS = (
    "identifier",
    "source",
    "title",
    "text",
    "url",
    "created_at",
    "updated_at",
    "author",
    "kind",
)
#: The common fields a table shows when they are set (a date: updated, else created).
TABLE_FIELDS = ("title", "author", "kind", "date", "url")

# Control characters (newlines, tabs, terminal escapes) become spaces in a table cell:
# a cell is one line, and a value from a source cannot drive the terminal.
_CONTROL = {c: " " for c in (*range(32), 127, *range(0x80, 0xA0))}
# In a key/value listing, values keep their line breaks (and tabs); the rest as above.
_CONTROL_KEEP_LINES = {c: v for c, v in _CONTROL.items() if c not in (9, 10)} | {13: ""}


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _text(value: Any, *, short: bool = False) -> str:
    """A value as text; ``short``: a table cell's date, to the minute (``Z`` for UTC)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if not short:
            return value.isoformat(sep=" ", timespec="seconds")
        offset = value.utcoffset()
        zone = "" if offset is None else "Z" if not offset else value.strftime("%z")
        return value.strftime("%Y-%m-%d %H:%M") + zone
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | float):
        return str(value)
    return _dump(value).decode()


def _raw_path(raw: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(key)
    return raw


class Federation(Protocol):
    """How a federated search names an item's source and identifier: readably (the
    name the user gave, or ``host:port/space``) and the source's own identifier."""

    def source_of(self, item: Item) -> str: ...

    def identifier_of(self, item: Item) -> str: ...


class Column:
    """A column: its header and how to get its value from an item."""

    def __init__(self, name: str, get: Callable[[Item], Any]) -> None:
        self.name = name
        self.get = get

    @classmethod
    def named(cls, name: str, federation: Federation | None = None) -> Column:
        """``identifier``/``title``... (a common field), ``date`` (updated, else created),
        ``source``, or a raw field: ``name``, ``raw.name``, ``raw.a.b``."""
        if federation is not None and name == "source":
            return cls(name, federation.source_of)
        if federation is not None and name == "identifier":
            return cls(name, federation.identifier_of)
        if name == "date":
            return cls(name, lambda item: item.updated_at or item.created_at)
        if name in COMMON_FIELDS:
            return cls(name, lambda item: getattr(item, name))
        path = name.split(".")[1:] if name.startswith("raw.") else [name]
        if len(path) == 1:
            key = path[0]
            return cls(name, lambda item: item.raw.get(key) if isinstance(item.raw, dict) else None)
        return cls(name, lambda item: _raw_path(item.raw, path))


def choose_columns(sample: Sequence[Item], federation: Federation | None) -> list[Column]:
    """The identifier, the common fields set in ``sample``; else its first raw fields."""
    names = ["source"] if federation is not None else []
    names.append("identifier")
    shown = [name for name in TABLE_FIELDS if any(Column.named(name).get(item) for item in sample)]
    if not any(item.title or item.text for item in sample):
        raw_keys: dict[str, None] = {}
        for item in sample:
            if isinstance(item.raw, dict):
                raw_keys.update(dict.fromkeys(item.raw))
            if len(raw_keys) >= MAX_RAW_COLUMNS:
                break
        raw_names = [k if k not in COMMON_FIELDS and k != "date" else f"raw.{k}" for k in raw_keys]
        shown = raw_names[:MAX_RAW_COLUMNS] + [n for n in shown if n in ("date", "url")]
    return [Column.named(name, federation) for name in names + shown]


class Output:
    """Writes items to stdout in one format. ``needs_sample``: wants the first items
    before the first is written (to choose columns)."""

    needs_sample = False

    def __init__(
        self,
        out: IO[bytes],
        columns: Sequence[Column] | None,
        federation: Federation | None = None,
    ) -> None:
        self.out = out
        self.columns = columns
        self.federation = federation
        self.count = 0
        self.dirty = False

    def start(self, sample: Sequence[Item]) -> None:
        pass

    #: Text (tables, key/value) is written in stdout's encoding; JSON is always UTF-8.
    encoding = "utf-8"

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding, "replace")

    def write(self, item: Item) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        self.flush()

    def flush(self) -> None:
        if self.dirty:
            self.dirty = False
            self.out.flush()

    def record(self, item: Item) -> dict[str, Any]:
        if self.columns is not None:
            return {c.name: c.get(item) for c in self.columns}
        record = _record(item)
        if self.federation is not None:
            record["identifier"] = self.federation.identifier_of(item)
            record["federated_source"] = self.federation.source_of(item)
        return record


def _record(item: Item) -> dict[str, Any]:
    """``item.to_dict()``, built in one dict display: dates stay datetimes, which orjson
    writes as ``isoformat()`` does (RFC 3339), at a fraction of the cost a row."""
    return {
        "identifier": item.identifier,
        "source": item.source,  # an index's items name the source they were synced from
        "title": item.title,
        "text": item.text,
        "url": item.url,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "author": item.author,
        "kind": item.kind,
        "raw": item.raw,
    }


class JSONLines(Output):
    def write(self, item: Item) -> None:
        self.out.write(_dump(self.record(item)) + b"\n")
        self.count += 1
        self.dirty = True


class JSONArray(Output):
    def write(self, item: Item) -> None:
        self.out.write((b",\n" if self.count else b"[\n") + _dump(self.record(item)))
        self.count += 1
        self.dirty = True

    def finish(self) -> None:
        self.out.write(b"\n]\n" if self.count else b"[]\n")
        self.dirty = True
        self.flush()


class Table(Output):
    """Rows as they come, cut to widths chosen from the first items."""

    needs_sample = True

    def __init__(
        self,
        out: IO[bytes],
        columns: Sequence[Column] | None,
        federation: Federation | None,
        *,
        width: int | None,
        styled: bool,
    ) -> None:
        super().__init__(out, columns, federation)
        self.width = width
        self.styled = styled
        self.widths: list[int] = []
        self.chosen: list[Column] = []

    def start(self, sample: Sequence[Item]) -> None:
        from rich.cells import cell_len

        self.chosen = list(self.columns or choose_columns(sample, self.federation))
        if not sample and self.columns is None:
            return  # nothing found: no header (the summary on stderr says 0 items)
        natural = []
        for column in self.chosen:
            cells = [cell_len(self._cell(column, item)) for item in sample]
            natural.append(max([len(column.name), *cells]))
        self.widths = _fit(natural, self.width)
        header = "  ".join(
            _pad(c.name, w) for c, w in zip(self.chosen, self.widths, strict=True)
        ).rstrip()
        line = "─" if self.encode("─") != b"?" else "-"  # an ASCII terminal: dashes
        rule = "  ".join(line * w for w in self.widths)
        if self.styled:
            header = f"\x1b[1m{header}\x1b[0m"
        self.out.write(self.encode(f"{header}\n{rule}\n"))
        self.dirty = True

    @staticmethod
    def _cell(column: Column, item: Item) -> str:
        return _text(column.get(item), short=True).translate(_CONTROL)

    def write(self, item: Item) -> None:
        cells = []
        for column, width in zip(self.chosen, self.widths, strict=True):
            value = column.get(item)
            text = value if type(value) is str else _text(value, short=True)
            if text.isascii() and text.isprintable():  # the common case, without rich
                if len(text) > width:
                    text = text[: width - 1] + "…"
                cells.append(text.ljust(width))
            else:
                cells.append(_pad(text.translate(_CONTROL), width))
        self.out.write(self.encode("  ".join(cells).rstrip() + "\n"))
        self.count += 1
        self.dirty = True


def _pad(text: str, width: int) -> str:
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else "…"
    return set_cell_size(text, width)


def _fit(natural: list[int], total: int | None) -> list[int]:
    """Column widths: natural widths (capped), shrunk evenly from the widest to fit
    ``total`` cells with two-space gaps (``None``: no limit)."""
    widths = [min(w, MAX_WIDTH) if total is None else w for w in natural]
    if total is None:
        return widths
    room = total - 2 * (len(widths) - 1)
    if sum(widths) <= room:
        return widths
    low, high = 4, max(widths)  # the largest cap that fits
    while low < high:
        cap = (low + high + 1) // 2
        if sum(min(w, cap) for w in widths) <= room:
            low = cap
        else:
            high = cap - 1
    return [min(w, low) for w in widths]


class KeyValue(Output):
    """One item as ``key  value`` lines: the common fields that are set, then every raw
    field (nested values as JSON), nothing cut (``get`` on a terminal)."""

    def write(self, item: Item) -> None:
        pairs: list[tuple[str, str]] = []
        for name in COMMON_FIELDS:
            value = getattr(item, name)
            if value is not None and value != "":
                pairs.append((name, _text(value)))
        if isinstance(item.raw, dict):
            for key, value in item.raw.items():
                label = f"raw.{key}" if key in COMMON_FIELDS else str(key)
                pairs.append((label, _text(value)))
        width = max((len(k) for k, _ in pairs), default=0)
        lines = []
        for key, value in pairs:
            value = value.translate(_CONTROL_KEEP_LINES)
            indent = "\n" + " " * (width + 2)
            label = f"\x1b[1m{key.ljust(width)}\x1b[0m" if self.styled else key.ljust(width)
            lines.append(f"{label}  {value.replace(chr(10), indent)}")
        self.out.write(self.encode("\n".join(lines) + "\n"))
        self.count += 1
        self.dirty = True

    styled = False


def make_output(
    fmt: Format,
    *,
    columns: Sequence[str] | None = None,
    federation: Federation | None = None,
    single: bool = False,
) -> Output:
    """The writer for ``fmt`` on this process's stdout."""
    out = sys.stdout.buffer
    tty = sys.stdout.isatty()
    chosen = [Column.named(c, federation) for c in columns] if columns else None
    if fmt is Format.jsonl:
        return JSONLines(out, chosen, federation)
    if fmt is Format.json:
        return JSONArray(out, chosen, federation)
    styled = tty and not os.environ.get("NO_COLOR")
    if single and not chosen:
        kv = KeyValue(out, None)
        kv.styled = styled
        kv.encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        return kv
    width = _terminal_width() if tty else None
    table = Table(out, chosen, federation, width=width, styled=styled)
    table.encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return table


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        return int(os.environ.get("COLUMNS", "100") or 100)


# -- progress -----------------------------------------------------------------------------


class Ticker:
    """Every ``FLUSH_EVERY`` seconds: flush buffered output (so a paused source's rows are
    seen) and update the progress display, shown on stderr only if it is a terminal."""

    def __init__(self, output: Output, *, total: int | None, enabled: bool) -> None:
        self.output = output
        self.total = total
        self.show = enabled and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.task_id: TaskID | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._stop_progress()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            self.output.flush()
            if self.show:
                self._update()

    def _update(self) -> None:
        if self.progress is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            self._start_progress()
        assert self.progress is not None and self.task_id is not None
        self.progress.update(self.task_id, completed=self.output.count)

    def _start_progress(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            Task,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Task) -> Text:
                speed = task.speed  # recent samples; else the run's average
                if not speed and task.elapsed:
                    speed = task.completed / task.elapsed
                return Text(f"{speed:,.0f} items/s" if speed else "", style="progress.data.speed")

        columns: list[ProgressColumn] = [SpinnerColumn()]
        if self.total is not None:
            columns += [BarColumn(), TextColumn("{task.completed:,.0f} / {task.total:,.0f} items")]
        else:
            columns.append(TextColumn("{task.completed:,.0f} items"))
        columns += [Rate(), TimeElapsedColumn()]
        self.progress = Progress(
            *columns,
            console=Console(stderr=True),
            transient=True,
            refresh_per_second=8,
            speed_estimate_period=5,
        )
        self.progress.start()
        self.task_id = self.progress.add_task("items", total=self.total)

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def summary(self) -> None:
        """``N items in S s`` on stderr, when stderr is a terminal (the table's footer)."""
        if sys.stderr.isatty():
            elapsed = time.monotonic() - self.started
            n = self.output.count
            rate = f", {n / elapsed:,.0f} items/s" if elapsed > 1 and n else ""
            noun = "item" if n == 1 else "items"
            sys.stderr.write(f"{n:,} {noun} in {elapsed:.1f} s{rate}\n")


# -- the loop -----------------------------------------------------------------------------


async def _sample(
    stream: Stream[Item], size: int, wait: float
) -> tuple[list[Item], asyncio.Future[Item] | None, bool]:
    """The first items of ``stream``: up to ``size``, or what has come ``wait`` seconds
    after the start (at least one, unless the stream is empty). Returns the items, the
    fetch still running (awaited, never cancelled: cancelling it would end the stream)
    and whether the stream ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    items: list[Item] = []
    pending: asyncio.Future[Item] | None = None
    try:
        while len(items) < size:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            timeout = max(0.0, deadline - loop.time()) if items else None
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:
                return items, pending, False
            fetched, pending = pending, None
            try:
                items.append(fetched.result())
            except StopAsyncIteration:
                return items, None, True
    except BaseException:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        raise
    return items, pending, False


async def drain(
    stream: Stream[Item],
    output: Output,
    *,
    limit: int | None,
    progress: bool,
) -> int:
    """Write ``stream``'s items (at most ``limit``) as they come; returns how many."""
    ticker = Ticker(output, total=limit, enabled=progress and not sys.stdout.isatty())
    try:
        async with ticker:
            pending: asyncio.Future[Item] | None = None
            ended = False
            if output.needs_sample:
                size = SAMPLE_ITEMS if limit is None else min(limit, SAMPLE_ITEMS)
                sample, pending, ended = await _sample(stream, size, SAMPLE_WAIT)
                output.start(sample)
                for item in sample:
                    output.write(item)
            if limit is None or output.count < limit:
                if pending is not None:
                    try:
                        item = await pending
                    except StopAsyncIteration:
                        ended = True
                    else:
                        output.write(item)
                if not ended and (limit is None or output.count < limit):
                    write = output.write
                    if limit is None:
                        async for item in stream:
                            write(item)
                    else:
                        async for item in stream:
                            write(item)
                            if output.count >= limit:
                                break
    finally:
        await stream.aclose()
    output.finish()
    if isinstance(output, Table):
        ticker.summary()
    return output.count
