"""In-memory sources for the sync, index and serve tests (and the SIGKILL child).

``MemorySource`` pages over a dict of records, sorted by identifier (not by date: a sync must
not rely on date order), filters ``since`` natively (or cannot, with ``since=False``), counts
its ``fetch_page`` calls and can be told to fail at a page.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from asyncrepo import Batch, Capabilities, Item, PageRequest, Repository, SourceUnavailable

BASE = datetime(2025, 3, 1, tzinfo=UTC)


def record(n: int, **extra: Any) -> dict[str, Any]:
    words = ["apple", "banana", "cherry", "damson", "elder"]
    return {
        "title": f"Record {n} {words[n % 5]}",
        "text": f"Body of record {n}: {words[(n * 3) % 5]} and more words",
        "author": f"user{n % 3}",
        "kind": "note" if n % 2 else "task",
        "updated": (BASE + timedelta(minutes=n)).isoformat(),
        **extra,
    }


class MemorySource(Repository):
    name = "test.memory"
    capabilities: ClassVar[Capabilities] = Capabilities(since="native", get="naive")

    def __init__(
        self,
        records: dict[str, dict[str, Any]],
        *,
        since: bool = True,
        delay: float = 0.0,
        fail_at_page: int | None = None,
        page_size: int = 10,
    ) -> None:
        self.records = records
        self.delay = delay
        self.fail_at_page = fail_at_page
        self.default_page_size = page_size
        self.calls: list[Any] = []
        self.active = 0
        self.max_active = 0
        if not since:
            self.capabilities = Capabilities(get="naive")  # type: ignore[misc]

    async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
        self.calls.append(state)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            else:
                await asyncio.sleep(0)
            offset = int(state or 0)
            if self.fail_at_page is not None and offset // request.page_size >= self.fail_at_page:
                raise SourceUnavailable("the source broke", source=self.name)
            keys = sorted(self.records)
            if request.since is not None:
                keys = [k for k in keys if self._updated(k) >= request.since]
            chunk = keys[offset : offset + request.page_size]
            items = [self.item(k) for k in chunk]
            end = offset + len(chunk)
            return Batch(items, end if end < len(keys) else None)
        finally:
            self.active -= 1

    def _updated(self, key: str) -> datetime:
        return datetime.fromisoformat(self.records[key]["updated"])

    def item(self, key: str) -> Item:
        r = self.records[key]
        return Item(
            key,
            dict(r),
            self,
            title=r["title"],
            text=r["text"],
            author=r["author"],
            kind=r["kind"],
            url=f"https://example.invalid/{key}",
            updated_at=self._updated(key),
        )


def from_uri(parts: Any, options: dict[str, Any]) -> MemorySource:
    """``memtest:///path/to/records.json``: a MemorySource over a JSON file (the CLI tests
    register this scheme through ``asyncrepo.registry.register_scheme``)."""
    import orjson

    with open(parts.path, "rb") as f:
        records = orjson.loads(f.read())
    return MemorySource(records, **options)


def handbook() -> dict[str, dict[str, dict[str, Any]]]:
    """A few readable records per source, for the page tests and the screenshot."""
    rows = {
        "jira": [
            ("AS-101", "Search results miss items updated during a reindex", "alice", "bug"),
            ("AS-117", "Add a date filter to the unified search page", "bob", "story"),
            ("AS-130", "Reindex <b>fails</b> when a source returns 503", "carol", "bug"),
        ],
        "wiki": [
            ("ENG/Sync", "How the incremental sync keeps the index fresh", "dave", "page"),
            ("ENG/Search", "Search tips: phrases, prefixes and filters", "alice", "page"),
        ],
        "github": [
            ("asyncrepo#42", "Index search results with highlights and snippets", "erin", "pr"),
            ("asyncrepo#57", "OpenSearch bulk upserts for large indexes", "bob", "issue"),
        ],
    }
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for source, entries in rows.items():
        out[source] = {}
        for n, (key, title, author, kind) in enumerate(entries):
            out[source][key] = {
                "title": title,
                "text": f"{title}. The search index is kept fresh by asyncrepo sync; "
                f"every source is searchable in one place (entry {n}).",
                "author": author,
                "kind": kind,
                "updated": (BASE + timedelta(days=30 * n + len(source))).isoformat(),
            }
    return out
