"""``Item``: one record of a source, the same shape over every source.

The bottom of the core's layers: it imports nothing of asyncrepo's, so the pagination
strategies, the transport and the repository can all carry items without importing each
other. An item names the repository it came from through ``ItemSource`` (anything with a
registry ``name``), so this module needs no ``Repository``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, Protocol

__all__ = ["Item", "ItemSource", "collect_strings", "plain_items"]

_ITEM_FIELDS = ("title", "text", "url", "created_at", "updated_at", "author", "kind")


class ItemSource(Protocol):
    """What an item knows of its repository: the registry name (``Repository`` is one)."""

    @property
    def name(self) -> str: ...


class Item:
    """One record of a source.

    ``identifier`` is unique within its repository; ``raw`` is the source's own record
    (JSON-serialisable); the common fields are the same over every source (``None`` when
    the source has no such thing). Slotted: an item costs little more than its raw dict.
    """

    __slots__ = (
        "author",
        "created_at",
        "identifier",
        "kind",
        "raw",
        "repository",
        "text",
        "title",
        "updated_at",
        "url",
    )

    def __init__(
        self,
        identifier: str,
        raw: dict[str, Any],
        repository: ItemSource | None = None,
        *,
        title: str | None = None,
        text: str | None = None,
        url: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        author: str | None = None,
        kind: str | None = None,
    ) -> None:
        self.identifier = identifier
        self.raw = raw
        self.repository = repository
        self.title = title
        self.text = text
        self.url = url
        self.created_at = created_at
        self.updated_at = updated_at
        self.author = author
        self.kind = kind

    @property
    def source(self) -> str | None:
        """The registry name of the repository this item came from."""
        return self.repository.name if self.repository is not None else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: identifier, source, the common fields (ISO dates) and raw."""
        out: dict[str, Any] = {"identifier": self.identifier, "source": self.source}
        for name in _ITEM_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime | date) else value
        out["raw"] = self.raw
        return out

    def __repr__(self) -> str:
        title = f", title={self.title!r}" if self.title is not None else ""
        return f"Item({self.identifier!r}{title}, source={self.source!r})"


def plain_items(
    identifiers: Iterable[str], raws: Iterable[dict[str, Any]], repository: ItemSource | None
) -> Iterator[Item]:
    """Items with only an identifier, a raw dict and a repository (every common field
    ``None``), one per pair, made as they are taken: the path for connectors that hand out
    many plain items (CSV rows). It skips ``Item.__init__``'s call, about 40% of an item's
    cost; a test keeps it setting every slot ``__init__`` sets."""
    new = object.__new__
    for identifier, raw in zip(identifiers, raws, strict=False):  # identifiers may be endless
        item = new(Item)
        item.identifier = identifier
        item.raw = raw
        item.repository = repository
        item.title = item.text = item.url = item.author = item.kind = None
        item.created_at = item.updated_at = None
        yield item


def collect_strings(value: Any, out: list[str]) -> None:
    """Append to ``out`` every string and number in ``value`` (a raw record), at any depth:
    the text a naive search matches and an index makes searchable."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            collect_strings(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            collect_strings(v, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out.append(str(value))
