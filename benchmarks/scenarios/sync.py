"""Unified search: ``asyncrepo.sync`` into the SQLite index, and searches of that index.

* sync: the initial sync of 100,000 generated items (2,000 in smoke mode) from a local,
  in-memory source (pages of 1,000) into a new ``SQLiteIndex``, against the raw loop that
  writes the same rows into the same schema (an items table and its FTS5 index) with
  ``sqlite3``, one transaction per 1,000 rows: a plain ``executemany`` INSERT (no upsert,
  the index being new) and one ``INSERT ... SELECT`` into the FTS5 table. Target: 20,000
  items/s, i.e. the whole sync within ``items / 20,000`` seconds; the ratio to the raw loop
  is shown.
* search: 200 queries (two words each, from ranks 30 to 600 of a Zipf vocabulary: each term
  is in 0.1% to 12% of the items, median 1.3%; a query matches up to 0.8%) over an index of
  1,000,000 items (20,000 in smoke mode; built once with ``sync`` and cached under
  ``benchmarks/.data/``), first page of 20 with BM25 ranking and snippets:
  ``SQLiteIndex.search_pages`` against the same SQL run directly with ``sqlite3``. Target:
  < 50 ms a query (as the mean over the 200, which is at least the median for these
  right-skewed latencies), i.e. the 200 within 10 s. The asyncrepo job also writes each
  run's per-query p50/p95 to ``benchmarks/results/sync-search-latency.json``.
* opensearch: ``sync()`` of 10,000 items (1,000 in smoke mode) into an ``OpenSearchIndex``
  on osmem-server (an OpenSearch-compatible server, its own process) against a raw aiohttp
  loop of ``_bulk`` requests of 1,000 documents. Target: <= 1.2x the raw loop's time.

The "nothing changed" incremental sync (one request per page of ``since`` results) is a
count, not a time: ``tests/test_sync.py`` checks it against the Jira fake.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import random
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..harness import ROOT, Comparison, Target, Variant

DATA = ROOT / "benchmarks" / ".data"
MODULES = ["asyncrepo.sync", "asyncrepo.index.sqlite"]
RATE = 20_000  # items/s
SEARCH_BUDGET = 0.050  # seconds a query
QUERIES = 200
PAGE = 1_000
VOCABULARY = 5_000
RUNS = 3
_BASE = datetime(2024, 1, 1, tzinfo=UTC)


@functools.cache
def _words() -> list[str]:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(letters) for _ in range(rng.randrange(4, 10))))
    return sorted(words)


@functools.cache
def _phrases() -> list[str]:
    """4,096 phrases of 6 words drawn from a Zipf distribution over the vocabulary."""
    words = _words()
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(VOCABULARY)))
    rng = random.Random(20240601)
    return [" ".join(rng.choices(words, cum_weights=cumulative, k=6)) for _ in range(4096)]


def generate(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` deterministic records: a title of 6 words and a text of 30, made of phrases
    picked by a hash of the record number (cheap: the source must not be the bottleneck)."""
    phrases = _phrases()
    for i in range(start, start + n):
        h = (i * 2654435761) & 0xFFFFFFFF
        yield {
            "id": f"doc-{i}",
            "title": phrases[h & 4095],
            "text": f"{phrases[(h >> 4) & 4095]} {phrases[(h >> 8) & 4095]} "
            f"{phrases[(h >> 12) & 4095]} {phrases[(h >> 16) & 4095]} {phrases[(h >> 20) & 4095]}",
            "author": f"user{i % 97}",
            "kind": ("issue", "page", "file")[i % 3],
            "updated": (_BASE + timedelta(seconds=i * 37)).isoformat(),
        }


def queries() -> list[str]:
    words = _words()
    rng = random.Random(99)
    return [f"{rng.choice(words[30:600])} {rng.choice(words[30:600])}" for _ in range(QUERIES)]


# -- sync ------------------------------------------------------------------------------------


def _remove(path: str) -> None:
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.remove(name)


_RAW_INSERT = """
INSERT INTO items (source, identifier, title, body, has_text, url, author, kind, created_at,
                   updated_at, stamp, raw, seen, deleted_at, indexed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
"""
_RAW_FTS = """
INSERT INTO items_fts (rowid, title, body, author)
SELECT rowid, title, body, author FROM items WHERE rowid > ?
"""


def raw_sync(probe: Any, path: str, items: int) -> int:
    """The same rows, straight into the same schema with sqlite3: a plain INSERT of each
    page (a new index: no upsert), then its full-text entries in one INSERT ... SELECT."""
    import orjson

    from asyncrepo.index.sqlite import _SCHEMA

    _remove(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_SCHEMA)
    count = 0
    last = 0
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal last
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_RAW_INSERT, batch)
        conn.execute(_RAW_FTS, (last,))
        last = conn.execute("SELECT max(rowid) FROM items").fetchone()[0]
        conn.execute("COMMIT")
        batch.clear()

    for r in generate(items):
        stamp = datetime.fromisoformat(r["updated"]).timestamp()
        batch.append(
            (
                "bench",
                r["id"],
                r["title"],
                r["text"],
                1,
                None,
                r["author"],
                r["kind"],
                None,
                stamp,
                stamp,
                orjson.dumps(r),
                1,
                0.0,
            )
        )
        count += 1
        if len(batch) == PAGE:
            flush()
    if batch:
        flush()
    conn.close()
    return count


def _source(items: int) -> Any:
    from asyncrepo import Batch, Capabilities, Item, PageRequest, Repository

    class Generated(Repository):
        """A local source: pages of generated records."""

        name = "bench.generated"
        capabilities = Capabilities(since="client")
        default_page_size = PAGE

        async def fetch_page(self, request: PageRequest, state: Any) -> Batch:
            start = int(state or 0)
            size = min(request.page_size, items - start)
            out = [
                Item(
                    r["id"],
                    r,
                    self,
                    title=r["title"],
                    text=r["text"],
                    author=r["author"],
                    kind=r["kind"],
                    updated_at=datetime.fromisoformat(r["updated"]),
                )
                for r in generate(size, start)
            ]
            end = start + size
            return Batch(out, end if end < items else None)

    return Generated()


async def asyncrepo_sync(probe: Any, path: str, items: int) -> int:
    from asyncrepo.index.sqlite import SQLiteIndex
    from asyncrepo.sync import sync

    await asyncio.to_thread(_remove, path)
    async with SQLiteIndex(path) as index:
        reports = await sync({"bench": _source(items)}, index, page_size=PAGE)
    report = reports["bench"]
    if not report.ok:
        raise RuntimeError(report.error)
    return report.seen


# -- search ----------------------------------------------------------------------------------


def ensure_index(items: int) -> Path:
    """The search benchmark's index (built once through the public index API, then kept)."""
    path = DATA / f"sync-search-v1-{items}.db"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for leftover in DATA.glob(partial.name + "*"):
        leftover.unlink()
    asyncio.run(_build(partial, items))
    os.replace(partial, path)
    return path


async def _build(path: Path, items: int) -> None:
    from asyncrepo.index.sqlite import SQLiteIndex
    from asyncrepo.sync import sync

    async with SQLiteIndex(path) as index:
        await sync({"bench": _source(items)}, index, page_size=PAGE)
        await index._write(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        await index._write(
            lambda c: c.execute("INSERT INTO items_fts (items_fts) VALUES ('optimize')")
        )


def raw_search(probe: Any, path: str) -> tuple[int, str]:
    from asyncrepo.index.base import HIGHLIGHT_END, HIGHLIGHT_START
    from asyncrepo.index.sqlite import _COLUMNS, _SNIPPET_TOKENS, _WEIGHTS, fts_query

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    sql = (
        f"SELECT {_COLUMNS}, snippet(items_fts, -1, ?, ?, '…', {_SNIPPET_TOKENS}), "
        f"bm25(items_fts, {_WEIGHTS}) AS rank "
        "FROM items_fts JOIN items i ON i.rowid = items_fts.rowid "
        "WHERE items_fts MATCH ? AND i.deleted_at IS NULL ORDER BY rank, i.rowid LIMIT 20"
    )
    import orjson

    count, last = 0, ""
    for q in queries():
        for row in conn.execute(sql, (HIGHLIGHT_START, HIGHLIGHT_END, fts_query(q))):
            orjson.loads(row[10])
            count += 1
            last = f"{row[0]}:{row[1]}"
    conn.close()
    return count, last


async def asyncrepo_search(probe: Any, path: str) -> tuple[int, str]:
    import json
    import statistics
    import time

    from asyncrepo.index.sqlite import SQLiteIndex

    count, last = 0, ""
    latencies = []
    async with SQLiteIndex(path) as index:
        for q in queries():
            began = time.perf_counter()
            stream = index.search_pages(q, page_size=20)
            page = await anext(stream)
            await stream.aclose()
            latencies.append(time.perf_counter() - began)
            for item in page:
                count += 1
                last = item.identifier
    latencies.sort()
    summary = {
        "index": path,
        "queries": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p95_ms": round(1000 * latencies[int(0.95 * len(latencies)) - 1], 2),
        "max_ms": round(1000 * latencies[-1], 2),
    }
    out = ROOT / "benchmarks" / "results" / "sync-search-latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary) + "\n")
    return count, last


# -- OpenSearch bulk ---------------------------------------------------------------------------


def _document(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": "bench",
        "identifier": r["id"],
        "title": r["title"],
        "body": r["text"],
        "has_text": True,
        "url": None,
        "author": r["author"],
        "kind": r["kind"],
        "created_at": None,
        "updated_at": r["updated"],
        "stamp": r["updated"],
        "seen": 1,
        "indexed_at": r["updated"],
        "raw": r,
    }


async def raw_bulk(probe: Any, base_url: str, items: int) -> int:
    """The raw loop: create the index with the same mappings, ``_bulk`` 1,000 documents a
    request (aiohttp, orjson), check each answer's ``errors``, refresh."""
    import uuid

    import aiohttp
    import orjson

    from asyncrepo.index.opensearch import mappings

    name = f"raw-{uuid.uuid4().hex[:8]}"
    count = 0
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{base_url}/{name}", json={"mappings": mappings()}) as response:
            response.raise_for_status()
        lines: list[bytes] = []

        async def send() -> None:
            body = b"\n".join(lines) + b"\n"
            headers = {"Content-Type": "application/x-ndjson"}
            async with session.post(f"{base_url}/_bulk", data=body, headers=headers) as response:
                answer = orjson.loads(await response.read())
                if response.status >= 300 or answer.get("errors"):
                    raise RuntimeError("bulk failed")

        for r in generate(items):
            lines.append(orjson.dumps({"index": {"_index": name, "_id": f"bench:{r['id']}"}}))
            lines.append(orjson.dumps(_document(r)))
            count += 1
            if len(lines) == 2 * PAGE:
                await send()
                lines = []
        if lines:
            await send()
        async with session.post(f"{base_url}/{name}/_refresh") as response:
            response.raise_for_status()
        async with session.delete(f"{base_url}/{name}") as response:
            response.raise_for_status()
    return count


async def asyncrepo_bulk(probe: Any, base_url: str, items: int) -> int:
    """``sync()`` of the same records into an ``OpenSearchIndex`` (bulk upserts of 1,000,
    a state write after each page), then a refresh."""
    import uuid

    from asyncrepo.index.opensearch import OpenSearchIndex
    from asyncrepo.sync import sync

    name = f"ar-{uuid.uuid4().hex[:8]}"
    async with OpenSearchIndex(base_url, name, batch_size=PAGE) as index:
        reports = await sync({"bench": _source(items)}, index, page_size=PAGE)
        await index.refresh()
        await index.client.request("DELETE", f"/{name},{name}-sources")
    report = reports["bench"]
    if not report.ok:
        raise RuntimeError(report.error)
    return report.seen


# -- the scenario ----------------------------------------------------------------------------


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    items = 2_000 if smoke else 100_000
    indexed = 20_000 if smoke else 1_000_000
    here = "benchmarks.scenarios.sync"
    work = DATA / "sync-work"
    work.mkdir(parents=True, exist_ok=True)
    search_db = ensure_index(indexed)
    bulk_items = 1_000 if smoke else 10_000
    from tests.osmem_server import running_osmem

    with running_osmem() as os_url:
        yield [
            Comparison(
                f"sync: initial, {items:,} items into SQLite",
                Variant(
                    "sqlite3 executemany",
                    f"{here}:raw_sync",
                    {"path": str(work / "raw.db"), "items": items},
                    ["sqlite3", "orjson"],
                    expect=items,
                ),
                Variant(
                    "sync() -> SQLiteIndex",
                    f"{here}:asyncrepo_sync",
                    {"path": str(work / "asyncrepo.db"), "items": items},
                    MODULES,
                    expect=items,
                ),
                [Target("wall", items / RATE, absolute=True)],
                show=("wall", "cpu"),
            ),
            Comparison(
                f"sync: search {indexed:,} items, {QUERIES} queries",
                Variant("sqlite3 FTS5 query", f"{here}:raw_search", {"path": str(search_db)}),
                Variant(
                    "SQLiteIndex.search_pages()",
                    f"{here}:asyncrepo_search",
                    {"path": str(search_db)},
                    ["asyncrepo.index.sqlite"],
                ),
                [Target("wall", QUERIES * SEARCH_BUDGET, absolute=True, strict=True)],
                show=("wall",),
            ),
            Comparison(
                f"sync: {bulk_items:,} items into OpenSearch (osmem-server)",
                Variant(
                    "aiohttp _bulk loop",
                    f"{here}:raw_bulk",
                    {"base_url": os_url, "items": bulk_items},
                    ["aiohttp", "orjson", "asyncrepo.index.opensearch"],
                    expect=bulk_items,
                ),
                Variant(
                    "sync() -> OpenSearchIndex",
                    f"{here}:asyncrepo_bulk",
                    {"base_url": os_url, "items": bulk_items},
                    ["asyncrepo.sync", "asyncrepo.index.opensearch"],
                    expect=bulk_items,
                ),
                [Target("wall", 1.2)],
                show=("cpu",),
            ),
        ]
    shutil.rmtree(work, ignore_errors=True)
