"""Jira Cloud: ``Issues.list()`` against a raw aiohttp loop over ``/search/jql``.

The project's Jira fake (``tests/fakes/jira.py``, Cloud mode) serves 10,000 issues (300 in
smoke mode) with 20 ms of latency per request, in a process of its own. The raw loop is what
Atlassian's documentation shows: ``POST /rest/api/3/search/jql`` with the full
(``*navigable``) fields, 100 issues a page (the cap with fields), following
``nextPageToken``; it decodes every page (orjson) and builds a record per issue. asyncrepo
pages the ids (1,000 a request) and fetches the issues with ``/issue/bulkfetch``, several at
once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import JIRA_TOKEN, JIRA_USER, serve

MODULE = "asyncrepo.repositories.jira.issues"
JQL = "created >= -36500d ORDER BY created ASC, key ASC"


async def raw_list(probe: Any, base_url: str) -> tuple[int, str]:
    import aiohttp
    import orjson

    body: dict[str, Any] = {"jql": JQL, "fields": ["*navigable"], "maxResults": 100}
    count, last = 0, ""
    auth = aiohttp.BasicAuth(JIRA_USER, JIRA_TOKEN)
    async with aiohttp.ClientSession(auth=auth) as session:
        while True:
            async with session.post(f"{base_url}/rest/api/3/search/jql", json=body) as response:
                response.raise_for_status()
                page = orjson.loads(await response.read())
            for raw in page["issues"]:
                fields = raw["fields"]
                record = (raw["id"], raw["key"], fields["summary"], fields["created"])
                count += 1
                last = record[0]
            token = page.get("nextPageToken")
            if not token or not page["issues"]:
                break
            body["nextPageToken"] = token
    return count, last


async def asyncrepo_list(probe: Any, base_url: str) -> tuple[int, str]:
    from asyncrepo.repositories.jira.issues import Issues

    count, last = 0, ""
    async with Issues(base_url, JIRA_USER, JIRA_TOKEN, deployment="cloud") as repo:
        async for item in repo.list():
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 300 if smoke else 10_000
    here = "benchmarks.scenarios.jira"
    with serve("jira", n_issues=n, latency=0.02) as url:
        p = {"base_url": url}
        yield [
            Comparison(
                f"jira cloud list ({n:,} issues, 20 ms)",
                Variant(
                    "aiohttp /search/jql loop",
                    f"{here}:raw_list",
                    p,
                    ["aiohttp", "orjson"],
                    expect=n,
                ),
                Variant("Issues.list()", f"{here}:asyncrepo_list", p, [MODULE], expect=n),
                [Target("wall", 1.0)],
                show=["cpu"],
            )
        ]
