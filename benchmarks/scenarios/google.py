"""Google Drive: ``Files.list()`` against a raw aiohttp loop over ``files.list``.

The project's Drive fake (``tests/fakes/google.py``) serves 10,000 files (300 in smoke
mode) with 20 ms of latency per request, in a process of its own. The raw loop is what
Google's documentation shows: ``GET /drive/v3/files`` with ``pageSize=1000``, the same
``fields`` selector and ``q`` as asyncrepo sends, following ``nextPageToken``; it decodes every
page (orjson) and builds a record per file (id, name, modified time). asyncrepo builds full
items (dates parsed, author, URL) and prefetches the next page while the caller consumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import GOOGLE_TOKEN, serve

MODULE = "asyncrepo.repositories.google.drive"


async def raw_list(probe: Any, base_url: str) -> tuple[int, str]:
    import aiohttp
    import orjson

    from asyncrepo.repositories.google.drive import LIST_FIELDS

    params = {"pageSize": "1000", "fields": LIST_FIELDS, "q": "trashed = false"}
    count, last = 0, ""
    headers = {"Authorization": f"Bearer {GOOGLE_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{base_url}/drive/v3/files", params=params) as response:
                response.raise_for_status()
                page = orjson.loads(await response.read())
            for raw in page["files"]:
                record = (raw["id"], raw["name"], raw["modifiedTime"])
                count += 1
                last = record[0]
            token = page.get("nextPageToken")
            if not token:
                break
            params["pageToken"] = token
    return count, last


async def asyncrepo_list(probe: Any, base_url: str) -> tuple[int, str]:
    from asyncrepo.repositories.google.drive import Files

    count, last = 0, ""
    async with Files(GOOGLE_TOKEN, base_url=base_url) as repo:
        async for item in repo.list():
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 300 if smoke else 10_000
    here = "benchmarks.scenarios.google"
    with serve("google", n_files=n, latency=0.02) as url:
        p = {"base_url": url}
        yield [
            Comparison(
                f"google drive list ({n:,} files, 20 ms)",
                Variant(
                    "aiohttp files.list loop",
                    f"{here}:raw_list",
                    p,
                    ["aiohttp", "orjson", MODULE],
                    expect=n,
                ),
                Variant("Files.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.1)],
                show=["cpu"],
            )
        ]
