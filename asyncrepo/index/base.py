"""The index interface: what the sync engine writes to and what ``serve`` reads from.

An ``Index`` is itself a ``Repository`` (``get``, ``list``, ``search``, pages, cursors), so
it can be opened by URI, searched like any source, and federated with live ones. Its items
are ``IndexedItem``: identifier ``"<source>:<identifier>"`` (as in ``Federated``),
``source`` the source key they were synced from, plus a search ``snippet`` and ``score``.

Besides the ``Repository`` interface, an index has five methods:

* ``upsert(source, items, generation=..., state=...)``: write items by ``(source,
  identifier)``; when ``state`` is given it is stored *with* the items (SQLite: in the same
  transaction; OpenSearch: after the bulk write is acknowledged), so a checkpoint never moves
  ahead of the items it covers;
* ``delete(source, identifiers, not_seen_since=..., state=...)``: mark items deleted, by
  identifier or as "not seen by the listing of generation N" (the deletion sweep);
* ``search`` / ``get`` (the ``Repository`` ones);
* ``state(source)`` / ``states()``: the per-source sync state (``SourceState``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..exceptions import InvalidQuery
from ..repository import Capabilities, Item, Repository

__all__ = [
    "FILTER_OPTIONS",
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "Index",
    "IndexedItem",
    "SourceState",
    "split_identifier",
]

#: Around highlighted terms in ``IndexedItem.snippet`` (private-use characters: a consumer
#: escapes the text for its medium first, then turns these into <mark> or bold).
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_END = "\ue001"

#: Options ``list``/``search`` of every index accept.
FILTER_OPTIONS = frozenset({"source", "kind", "author", "until", "sort"})
SORTS = ("relevance", "date")  # date: newest first


class IndexedItem(Item):
    """An item read back from an index: ``source`` is the key of the source it was synced
    from; ``source_identifier`` its identifier there; ``snippet`` the matching text with
    terms between ``HIGHLIGHT_START``/``HIGHLIGHT_END`` (searches only); ``score`` the
    relevance (higher is better; searches only)."""

    __slots__ = ("deleted_at", "score", "snippet", "source_identifier", "source_key")

    def __init__(
        self,
        source_key: str,
        source_identifier: str,
        raw: dict[str, Any],
        repository: Repository | None = None,
        *,
        snippet: str | None = None,
        score: float | None = None,
        deleted_at: datetime | None = None,
        **common: Any,
    ) -> None:
        super().__init__(f"{source_key}:{source_identifier}", raw, repository, **common)
        self.source_key = source_key
        self.source_identifier = source_identifier
        self.snippet = snippet
        self.score = score
        self.deleted_at = deleted_at

    @property
    def source(self) -> str | None:
        return self.source_key

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["source_identifier"] = self.source_identifier
        out["snippet"] = self.snippet
        out["score"] = self.score
        return out


def split_identifier(identifier: str, source: str = "index") -> tuple[str, str]:
    """``"<source>:<identifier>"`` -> ``(source, identifier)``."""
    key, sep, rest = str(identifier).partition(":")
    if not sep or not key:
        raise InvalidQuery(
            f"index identifiers are '<source>:<identifier>', not {identifier!r}", source=source
        )
    return key, rest


_KEY = re.compile(r"^[^:\s][^:]*$")


def check_source_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidQuery(f"a source key is a non-empty name without ':', not {key!r}")
    return key


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_DATES = (
    "last_run",
    "last_success",
    "last_full",
    "high_water",
    "pending_high_water",
    "cursor_since",
    "listing_started",
)


@dataclass
class SourceState:
    """Where the sync of one source stands. Stored in the index, next to its items.

    * ``cursor``: the page cursor of an unfinished listing (resume there), with
      ``cursor_since`` (the ``since`` that listing used), ``listing`` (``"full"`` or
      ``"incremental"``), ``listing_started`` and ``pending_high_water`` (the newest date
      seen so far by that listing; it becomes ``high_water`` when the listing completes);
    * ``generation``: the number of the current full listing; items it sees are stamped
      with it, and its successful end marks every item with an older stamp deleted;
    * ``high_water``: the newest ``updated_at``/``created_at`` of a completed listing;
      incremental runs ask ``since=high_water - overlap``;
    * ``last_full``: when the last *complete* full listing started;
    * counts of the last run and the current total, ``last_error`` of the last run.
    """

    source: str
    uri: str | None = None
    status: str = "new"  # new, running, ok, failed
    last_run: datetime | None = None
    last_success: datetime | None = None
    last_full: datetime | None = None
    high_water: datetime | None = None
    cursor: str | None = None
    cursor_since: datetime | None = None
    listing: str | None = None  # "full" or "incremental" while a cursor is set
    listing_started: datetime | None = None
    pending_high_water: datetime | None = None
    generation: int = 0
    items: int = 0
    seen_last_run: int = 0
    deleted_last_run: int = 0
    pages_last_run: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in _DATES:
            out[name] = _iso(getattr(self, name))
        return out

    def public_json(self) -> dict[str, Any]:
        """What ``--status`` and ``GET /sources`` show: no cursor, no key."""
        out = self.to_json()
        out.pop("extra", None)
        out["cursor"] = "yes" if self.cursor else None
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in _DATES:
            if name in values:
                values[name] = _parse(values[name])
        return cls(**values)


class Index(Repository):
    """Base class of the indexes (SQLite, OpenSearch). See the module docstring."""

    name: ClassVar[str] = "index"
    capabilities: ClassVar[Capabilities] = Capabilities(
        get="native",
        search="native",
        since="native",
        orders=frozenset({"updated", "-updated"}),
        options=FILTER_OPTIONS,
        max_page_size=1000,
    )
    default_page_size = 20

    def check_options(self, operation: str, options: Mapping[str, Any]) -> None:
        for name in ("source", "kind", "author"):
            value = options.get(name)
            if value is None:
                continue
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
                raise InvalidQuery(f"{name} takes a string or a list of strings", source=self.name)
        until = options.get("until")
        if until is not None and not (isinstance(until, datetime) and until.tzinfo is not None):
            raise InvalidQuery("until must be a timezone-aware datetime", source=self.name)
        sort = options.get("sort")
        if sort is not None and sort not in SORTS:
            raise InvalidQuery(f"sort is one of {', '.join(SORTS)}, not {sort!r}", source=self.name)

    async def upsert(
        self,
        source: str,
        items: Sequence[Item],
        *,
        generation: int = 0,
        state: SourceState | None = None,
    ) -> None:
        raise NotImplementedError

    async def delete(
        self,
        source: str,
        identifiers: Iterable[str] = (),
        *,
        not_seen_since: int | None = None,
        state: SourceState | None = None,
    ) -> int:
        """Mark items deleted; return how many. ``not_seen_since=N``: every item of the
        source whose last listing generation is older than N."""
        raise NotImplementedError

    async def state(self, source: str) -> SourceState | None:
        raise NotImplementedError

    async def states(self) -> dict[str, SourceState]:
        raise NotImplementedError

    async def save_state(self, state: SourceState) -> None:
        raise NotImplementedError

    async def count(self, source: str | None = None) -> int:
        """Live (not deleted) items, of one source or all."""
        raise NotImplementedError


def filter_values(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def as_list(values: Iterable[str] | str) -> list[str]:
    return [values] if isinstance(values, str) else list(values)
