"""Elasticsearch / OpenSearch: ``Documents.list()`` walking a whole index against a raw
aiohttp loop doing the same walk, on a real OpenSearch-compatible server (osmem-server).

The scenario starts osmem-server (``tests/osmem_server.py``) and bulk-loads 100,000
documents (2,000 in smoke mode; ``_bulk`` in chunks of 5,000) into one index. The raw loop
is the walk OpenSearch documents: open a point in time
(``POST /{index}/_search/point_in_time``), ``POST /_search`` with the PIT, ``sort:
_shard_doc`` and ``search_after``, 10,000 hits a page (500 in smoke mode), until a short
page, then delete the PIT; it decodes every page with orjson and builds a record per
document (id, title, text, URL, parsed timestamp). asyncrepo does the same through
``Documents.list()`` (which also asks ``GET /`` once for the flavour, and prefetches the
next page while the caller reads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from ..harness import BenchmarkError, Comparison, Target, Variant

MODULE = "asyncrepo.repositories.elastic.documents"
INDEX = "bench-docs"
#: osmem-server answers a PIT page in about the same time whatever its size (~0.5-1 s at
#: 100,000 documents on 2 cores): pages of 10,000 (the most ``max_result_window`` allows)
#: keep a run near 10 s. Three runs, no warm-up round (the server keeps no cache).
RUNS = 3
WARMUP = False


async def raw_list(probe: Any, base_url: str, index: str, page: int) -> tuple[int, str]:
    import aiohttp
    import orjson

    count, last = 0, ""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(
            f"{base_url}/{index}/_search/point_in_time", params={"keep_alive": "5m"}
        ) as response:
            response.raise_for_status()
            pit = orjson.loads(await response.read())["pit_id"]
        body: dict[str, Any] = {
            "size": page,
            "query": {"match_all": {}},
            "sort": [{"_shard_doc": "asc"}],
            "track_total_hits": False,
        }
        try:
            while True:
                body["pit"] = {"id": pit, "keep_alive": "5m"}
                async with session.post(f"{base_url}/_search", data=orjson.dumps(body)) as response:
                    response.raise_for_status()
                    answer = orjson.loads(await response.read())
                hits = answer["hits"]["hits"]
                for hit in hits:
                    source = hit["_source"]
                    record = (
                        hit["_id"],
                        source.get("title"),
                        source.get("body"),
                        f"{base_url}/{hit['_index']}/_doc/{hit['_id']}",
                        datetime.fromisoformat(source["@timestamp"]),
                    )
                    count += 1
                    last = record[0]
                pit = answer.get("pit_id") or pit
                if len(hits) < page:
                    break
                body["search_after"] = hits[-1]["sort"]
        finally:
            async with session.delete(
                f"{base_url}/_search/point_in_time", data=orjson.dumps({"pit_id": [pit]})
            ) as response:
                response.raise_for_status()
    return count, last


async def asyncrepo_list(probe: Any, base_url: str, index: str, page: int) -> tuple[int, str]:
    from asyncrepo.repositories.elastic.documents import Documents

    count, last = 0, ""
    async with Documents(base_url, index) as repo:
        async for item in repo.list(page_size=page):
            count += 1
            last = item.identifier
    return count, last


def _documents(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(n):
        animal = ("cats", "dogs", "birds")[i % 3]
        yield (
            f"doc-{i:06d}",
            {
                "title": f"Document {i} about {animal}",
                "body": f"A short text about {animal}, written for the benchmark; number {i}.",
                "@timestamp": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                "n": i,
            },
        )


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    from tests.osmem_server import OsmemUnavailable, bulk_index, running_osmem

    n = 2_000 if smoke else 100_000
    here = "benchmarks.scenarios.elastic"
    try:
        server = running_osmem()
        url = server.__enter__()
    except OsmemUnavailable as exc:
        raise BenchmarkError(f"osmem-server cannot run here: {exc}") from None
    try:
        mappings = {"properties": {"@timestamp": {"type": "date"}}}
        asyncio.run(bulk_index(url, INDEX, _documents(n), mappings=mappings))
        p = {"base_url": url, "index": INDEX, "page": 500 if smoke else 10_000}
        yield [
            Comparison(
                f"elastic list with PIT ({n:,} docs, osmem-server)",
                Variant(
                    "aiohttp PIT + search_after loop",
                    f"{here}:raw_list",
                    p,
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant("Documents.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.1)],
                show=["cpu"],
            )
        ]
    finally:
        server.__exit__(None, None, None)
