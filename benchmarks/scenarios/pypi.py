"""PyPI: ``Packages.list()`` of a large Simple index against a raw aiohttp download.

The project's index fake (``tests/fakes/pypi.py``) serves a PEP 691 JSON project list of
200,000 projects (2,000 in smoke mode; about 10 MB), streamed in 64 KiB chunks, in a
process of its own, after 20 ms of latency. The raw client does what a script would: one
GET with the JSON ``Accept``, ``orjson.loads`` of the whole body, and a record per project
(PEP 503 normalised name, display name). asyncrepo parses the list as it arrives (ijson's
C parser) and never holds it whole: the comparison shows what streaming costs, or saves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import serve

MODULE = "asyncrepo.repositories.pypi.packages"
ACCEPT = "application/vnd.pypi.simple.v1+json"


async def raw_list(probe: Any, base_url: str) -> tuple[int, str]:
    import aiohttp
    import orjson

    separators = re.compile(r"[-_.]+")
    count, last = 0, ""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base_url}/simple/", headers={"Accept": ACCEPT}) as response:
            response.raise_for_status()
            document = orjson.loads(await response.read())
        for project in document["projects"]:
            name = project["name"]
            record = (separators.sub("-", name).lower(), name)
            count += 1
            last = record[0]
    return count, last


async def asyncrepo_list(probe: Any, base_url: str) -> tuple[int, str]:
    from asyncrepo.repositories.pypi.packages import Packages

    count, last = 0, ""
    async with Packages(f"{base_url}/simple") as repo:
        async for item in repo.list():
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 2_000 if smoke else 200_000
    here = "benchmarks.scenarios.pypi"
    with serve("pypi", n_projects=n, latency=0.02) as url:
        p = {"base_url": url}
        yield [
            Comparison(
                f"pypi simple index list ({n:,} projects, JSON, 20 ms)",
                Variant(
                    "aiohttp GET + orjson", f"{here}:raw_list", p, ["aiohttp", "orjson"], expect=n
                ),
                Variant("Packages.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.1)],
                show=["cpu", "rss"],
            )
        ]
