"""GitHub: ``Repos.list()`` against a raw aiohttp loop following ``Link`` headers.

The project's GitHub fake (``tests/fakes/github.py``) serves one account's 5,000
repositories (300 in smoke mode), in a process of its own, with 0 ms and then 20 ms of
latency per request. Both sides ask for ``per_page=100`` in creation order, decode every
page's JSON (orjson, as asyncrepo does) and build a record per repository (name, description,
URL, parsed creation date). The raw loop is sequential, as a loop over ``rel="next"`` is;
asyncrepo fetches up to ``page_concurrency`` (8) pages at once once ``rel="last"`` is known
(fewer when the rate-limit headers say few requests are left). At 20 ms it is compared with
the unbounded raw loop too (page 1, then every other page at once), which GitHub's
guidance asks clients not to do; the asyncrepo job fails if it met a secondary limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import GITHUB_TOKEN, GITHUB_USER, serve_all

MODULE = "asyncrepo.repositories.github.repos"


async def raw_list(probe: Any, base_url: str, user: str) -> tuple[int, str]:
    import aiohttp
    import orjson

    headers = {
        "Authorization": f"Bearer {GITHUB_TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    url: str | None = f"{base_url}/users/{user}/repos?per_page=100&sort=created&direction=asc"
    count, last = 0, ""
    async with aiohttp.ClientSession(headers=headers) as session:
        while url:
            async with session.get(url) as response:
                response.raise_for_status()
                page = orjson.loads(await response.read())
                following = response.links.get("next")
                url = str(following["url"]) if following else None
            for raw in page:
                record = (
                    raw["full_name"],
                    raw["description"],
                    raw["html_url"],
                    datetime.fromisoformat(raw["created_at"]),
                )
                count += 1
                last = record[0]
    return count, last


async def raw_unbounded(probe: Any, base_url: str, user: str) -> tuple[int, str]:
    """Page 1, then every following page at once (from ``rel="last"``), in page order."""
    import asyncio
    from urllib.parse import parse_qsl, urlencode, urlsplit

    import aiohttp
    import orjson

    headers = {
        "Authorization": f"Bearer {GITHUB_TOKEN}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    first = f"{base_url}/users/{user}/repos?per_page=100&sort=created&direction=asc"
    count, last = 0, ""
    async with aiohttp.ClientSession(headers=headers) as session:

        async def fetch(url: str) -> tuple[Any, Any]:
            async with session.get(url) as response:
                response.raise_for_status()
                return orjson.loads(await response.read()), response.links

        page, links = await fetch(first)
        pages = [page]
        if "last" in links:
            last_url = str(links["last"]["url"])
            parts = urlsplit(last_url)
            query = dict(parse_qsl(parts.query))
            urls = [
                parts._replace(query=urlencode({**query, "page": str(n)})).geturl()
                for n in range(2, int(query["page"]) + 1)
            ]
            pages += [body for body, _ in await asyncio.gather(*(fetch(u) for u in urls))]
        for page in pages:
            for raw in page:
                record = (
                    raw["full_name"],
                    raw["description"],
                    raw["html_url"],
                    datetime.fromisoformat(raw["created_at"]),
                )
                count += 1
                last = record[0]
    return count, last


async def asyncrepo_list(probe: Any, base_url: str, user: str) -> tuple[int, str]:
    from asyncrepo.repositories.github.repos import Repos

    count, last = 0, ""
    async with Repos(GITHUB_TOKEN, user=user, base_url=base_url) as repo:
        async for item in repo.list():
            count += 1
            last = item.identifier
        if repo.client.secondary_limited_at is not None:
            raise RuntimeError("the listing hit a secondary rate limit")
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 300 if smoke else 5_000
    here = "benchmarks.scenarios.github"
    cases = ((0.0, Target("wall", 1.1)), (0.02, Target("wall", 1.0, strict=True)))
    specs = [("github", {"n_repos": n, "latency": latency}) for latency, _ in cases]
    with serve_all(specs) as urls:
        out = []
        for (latency, target), url in zip(cases, urls, strict=True):
            p = {"base_url": url, "user": GITHUB_USER}
            out.append(
                Comparison(
                    f"github list ({n:,} repos, {latency * 1000:.0f} ms)",
                    Variant(
                        "aiohttp Link loop", f"{here}:raw_list", p, ["aiohttp", "orjson"], expect=n
                    ),
                    Variant("Repos.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                    [target],
                    show=["cpu"],
                )
            )
        # The unbounded loop: every following page at once (GitHub asks clients not to).
        latency, _ = cases[1]
        p = {"base_url": urls[1], "user": GITHUB_USER}
        out.append(
            Comparison(
                f"github list ({n:,} repos, {latency * 1000:.0f} ms)",
                Variant(
                    "aiohttp, all pages at once",
                    f"{here}:raw_unbounded",
                    p,
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant("Repos.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.25)],
                show=["cpu"],
            )
        )
        yield out
