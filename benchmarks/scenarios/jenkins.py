"""Jenkins: ``Builds(job=...).list()`` against a raw aiohttp loop over ``allBuilds`` ranges.

The project's Jenkins fake (``tests/fakes/jenkins.py``) serves one job with 10,000 builds
(300 in smoke mode), in a process of its own, with 20 ms of latency per request. Both sides
ask for ``tree=allBuilds[number,url,result,timestamp,duration,...]{M,M+100}`` page after
page until a short page (a range is the only way to page Jenkins' builds; the next range is
asked once the previous one is in), decode every page (orjson) and build a record per build
(number, URL, result, start time). asyncrepo prefetches the next range while the caller
consumes the current one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import JENKINS_TOKEN, JENKINS_USER, serve

MODULE = "asyncrepo.repositories.jenkins.builds"
FIELDS = "number,url,result,timestamp,duration,building,displayName,fullDisplayName,description,id"
PAGE = 100


async def raw_list(probe: Any, base_url: str) -> tuple[int, str]:
    import base64

    import aiohttp
    import orjson

    count, last = 0, ""
    offset = 0
    token = base64.b64encode(f"{JENKINS_USER}:{JENKINS_TOKEN}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        while True:
            tree = f"allBuilds[{FIELDS}]{{{offset},{offset + PAGE}}}"
            url = f"{base_url}/job/big/api/json"
            async with session.get(url, params={"tree": tree}) as response:
                response.raise_for_status()
                page = orjson.loads(await response.read())
            builds = page["allBuilds"]
            for raw in builds:
                started = datetime.fromtimestamp(raw["timestamp"] / 1000, UTC)
                record = (f"big#{raw['number']}", raw["url"], raw["result"], started)
                count += 1
                last = record[0]
            if len(builds) < PAGE:
                break
            offset += PAGE
    return count, last


async def asyncrepo_list(probe: Any, base_url: str) -> tuple[int, str]:
    from asyncrepo.repositories.jenkins.builds import Builds

    count, last = 0, ""
    async with Builds(base_url, JENKINS_USER, JENKINS_TOKEN, job="big") as repo:
        async for item in repo.list(page_size=PAGE):
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 300 if smoke else 10_000
    here = "benchmarks.scenarios.jenkins"
    with serve("jenkins", n_builds=n, latency=0.02) as url:
        p = {"base_url": url}
        yield [
            Comparison(
                f"jenkins builds of one job ({n:,} builds, 20 ms)",
                Variant(
                    "aiohttp allBuilds{M,N} loop",
                    f"{here}:raw_list",
                    p,
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant("Builds.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.1)],
                show=["cpu"],
            )
        ]
