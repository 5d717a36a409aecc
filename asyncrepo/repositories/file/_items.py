"""CSV rows (lists of values) -> items: identifiers, raw dicts as ``csv.DictReader`` makes
them, and the common fields; specialised once per file's header."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, count
from types import CodeType, FunctionType
from typing import Any, SupportsIndex, cast, overload

from ...convert import parse_datetime
from ...exceptions import ConfigurationError
from ...item import Item, plain_items
from ...repository import Repository
from ._errors import SOURCE

__all__ = ["FIELD_NAMES", "INDEX", "RowItems", "RowShape", "raws_maker", "unique_columns"]

FIELD_NAMES = ("title", "text", "url", "created_at", "updated_at", "author")
#: Headers wider than this build their rows' dicts with ``dict(zip())`` (see ``raws_maker``).
_GENERATED_MAX_WIDTH = 256


class _Index:
    def __repr__(self) -> str:
        return "INDEX"


#: Identify rows by their 0-based index (the default).
INDEX: Any = _Index()


class RowItems(list[Item]):
    """The items of a listing's batch, built as they are taken: it holds the rows' raw
    dicts and makes each ``Item`` (its row index for identifier) when it is iterated over or
    indexed, so a fresh ``Item`` each time.

    Why: a batch of ready ``Item``s keeps hundreds of objects alive that the cyclic garbage
    collector tracks (dicts of strings it does not), so it ran over and over during a
    listing, a third of its time; an item made on the way out dies young, as the consumer
    drops it. Only what the core asks of a batch's items is supported: ``len``, iteration,
    an index, a slice.
    """

    __slots__ = ("_first", "_repository")

    def __init__(self, raws: list[dict[str, Any]], first: int, repository: Repository) -> None:
        super().__init__(cast("list[Item]", raws))
        self._first = first
        self._repository = repository

    def __iter__(self) -> Iterator[Item]:
        raws = cast("Iterator[dict[str, Any]]", super().__iter__())
        return plain_items(map(str, count(self._first)), raws, self._repository)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            raws = cast("list[dict[str, Any]]", super().__getitem__(index))
            if step == 1:
                return RowItems(raws, self._first + start, self._repository)
            indices = range(start, stop, step)
            return [
                Item(str(self._first + at), raw, self._repository)
                for at, raw in zip(indices, raws, strict=True)
            ]
        at = range(len(self))[index]  # IndexError, negative indices
        raw = cast("dict[str, Any]", super().__getitem__(at))
        return Item(str(self._first + at), raw, self._repository)


def raws_maker(
    header: list[str], raw_of: Callable[[list[str]], dict[str, Any]]
) -> Callable[[list[list[str]]], list[dict[str, Any]]]:
    """A function rows -> their raw dicts, as ``csv.DictReader`` makes them.

    Why generated code: a dict display over unpacked values (``{"id": a0, "name": a1, ...}
    for (a0, a1, ...) in rows``) builds a row's dict in about 40% of the time ``dict(zip(
    header, row))`` takes, the largest cost of a listing after the parsing itself; with the
    keys as constants (one tuple the interpreter hands to the dict at once) it is about 10%
    faster again than with the keys in variables. The header's names never enter the source
    text: it is compiled with placeholder keys, which are then swapped for the names in the
    compiled code's constants (``_with_keys``). A batch with a ragged row (the unpacking
    fails) is built again row by row by ``raw_of``.
    """
    width = len(header)
    if not 0 < width <= _GENERATED_MAX_WIDTH:
        return lambda rows: [raw_of(row) for row in rows]
    placeholders = [f"\x00asyncrepo-key-{i}" for i in range(width)]
    keys = ", ".join(f"{p!r}: a{i}" for i, p in enumerate(placeholders))
    names = "".join(f"a{i}, " for i in range(width))
    template = eval(f"lambda rows: [{{{keys}}} for ({names}) in rows]", {})
    real = dict(zip(placeholders, header, strict=True))
    unpacked = FunctionType(_with_keys(template.__code__, real), {})

    def raws_of(rows: list[list[str]]) -> list[dict[str, Any]]:
        try:
            return cast("list[dict[str, Any]]", unpacked(rows))
        except ValueError:  # a ragged row
            return [raw_of(row) for row in rows]

    return raws_of


def _with_keys(code: CodeType, real: dict[str, str]) -> CodeType:
    """``code`` with every placeholder constant (in tuples and nested code too) replaced."""

    def swap(constant: Any) -> Any:
        if isinstance(constant, str):
            return real.get(constant, constant)
        if isinstance(constant, tuple):
            return tuple(swap(c) for c in constant)
        if isinstance(constant, CodeType):
            return _with_keys(constant, real)
        return constant

    return code.replace(co_consts=tuple(swap(c) for c in code.co_consts))


def unique_columns(names: list[str]) -> tuple[list[str], list[str]]:
    """A header with every column kept: a repeated name gets ``_2``, ``_3``... (``a``,
    ``a_2``), an empty one ``column_<position>`` (1-based), never a name already taken.
    Returns the names and what was renamed (``"'a' (column 2) -> 'a_2'"``), empty if
    nothing was: ``csv.DictReader`` would have dropped those columns' values."""
    taken = set(names)
    if len(taken) == len(names) and "" not in taken:
        return names, []
    seen: set[str] = set()
    out: list[str] = []
    renamed: list[str] = []
    for position, name in enumerate(names, 1):
        if name and name not in seen:
            seen.add(name)
            out.append(name)
            continue
        stem = name or f"column_{position}"
        candidates = (f"{stem}_{k}" for k in count(2))
        new = next(c for c in chain([] if name else [stem], candidates) if c not in taken)
        seen.add(new)
        taken.add(new)
        out.append(new)
        renamed.append(f"{name!r} (column {position}) -> {new!r}")
    return out, renamed


@dataclass(frozen=True)
class RowShape:
    """What a row becomes, by the repository's options: ``identifier`` (``INDEX``, a column
    or a tuple of columns), ``fields`` (common fields from columns), DictReader's
    ``restkey`` and ``restval``. ``where`` names the file in messages."""

    repository: Repository
    identifier: Any
    fields: Mapping[str, str | Sequence[str]]
    restkey: str
    restval: Any
    where: str

    def column(self, header: list[str], column: str, option: str) -> int:
        """Where ``column``'s value sits in a row (DictReader: the last of equal names)."""
        for position in range(len(header) - 1, -1, -1):
            if header[position] == column:
                return position
        shown = ", ".join(repr(name) for name in header[:20])
        raise ConfigurationError(
            f"{option}: no column {column!r} in {self.where} (columns: {shown})",
            source=SOURCE,
        )

    def key(self, header: list[str]) -> Callable[[int, list[str]], str]:
        """A function (row index, values) -> the row's identifier, without building it."""
        identifier = self.identifier
        restval = self.restval
        if identifier is INDEX:
            return lambda index, values: str(index)
        if not header:  # an empty file: no rows to identify
            return lambda index, values: ""
        if isinstance(identifier, str):
            at = self.column(header, identifier, "identifier")
            return lambda index, values: str(values[at] if at < len(values) else restval)
        positions = [self.column(header, column, "identifier") for column in identifier]
        return lambda index, values: str(
            tuple(values[at] if at < len(values) else restval for at in positions)
        )

    def raw_maker(self, header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
        """A function values -> the row's raw dict, as ``csv.DictReader`` makes it."""
        width = len(header)
        restkey, restval = self.restkey, self.restval

        def raw_of(values: list[str]) -> dict[str, Any]:
            if len(values) == width:
                return dict(zip(header, values, strict=True))
            raw: dict[str, Any] = dict(zip(header, values, strict=False))
            if len(values) > width:
                raw[restkey] = values[width:]
            else:
                for name in header[len(values) :]:
                    raw[name] = restval
            return raw

        return raw_of

    def builder(self, header: list[str]) -> Callable[[int, list[str]], Item]:
        """A function (row index, values) -> Item, specialised for this file's options."""
        raw_of = self.raw_maker(header)
        key = self.key(header)
        fields = self.fields
        repository = self.repository
        if header:
            for column in fields.values():
                for name in [column] if isinstance(column, str) else column:
                    self.column(header, name, "fields")

        def common(raw: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, column in fields.items():
                if isinstance(column, str):
                    value = raw.get(column)
                else:
                    value = " ".join(str(raw.get(c) or "") for c in column).strip() or None
                if name in ("created_at", "updated_at"):
                    try:
                        value = parse_datetime(value)
                    except (ValueError, TypeError, OverflowError):
                        value = None  # a messy date cell does not stop the listing
                out[name] = value
            return out

        if not fields:
            return lambda index, values: Item(key(index, values), raw_of(values), repository)

        def build(index: int, values: list[str]) -> Item:
            raw = raw_of(values)
            return Item(key(index, values), raw, repository, **common(raw))

        return build

    def items_maker(self, header: list[str]) -> Callable[[list[list[str]], int], list[Item]]:
        """A function (a batch's rows, the index of its first) -> the batch's items."""
        build = self.builder(header)
        raws_of = raws_maker(header, self.raw_maker(header))
        repository = self.repository
        if not self.fields and self.identifier is INDEX:  # the hot path: no call per row
            return lambda rows, first: RowItems(raws_of(rows), first, repository)
        return lambda rows, first: [build(index, row) for index, row in enumerate(rows, first)]
