"""Federation: five sources at 20, 40, 60, 80 and 100 ms of latency per request.

Each source is the project's GitHub fake in a process of its own, with 300 repositories
(60 in smoke mode), read 50 a page (20 in smoke mode) through ``Repos``. ``Federated`` over
the five is compared with one source alone: its total time with the slowest source's
(target: within 1.2x), its first item with the fastest source's (target: within 1.5x).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import GITHUB_TOKEN, GITHUB_USER, serve_all

MODULES = ["asyncrepo.federation", "asyncrepo.repositories.github.repos"]
LATENCIES = (0.02, 0.04, 0.06, 0.08, 0.1)


async def listing(probe: Any, urls: list[str], page_size: int) -> int:
    """Every item of the sources at ``urls``: one alone, or several federated."""
    from asyncrepo.federation import Federated
    from asyncrepo.repositories.github.repos import Repos
    from asyncrepo.repository import Repository

    sources = {
        f"s{i}": Repos(GITHUB_TOKEN, user=GITHUB_USER, base_url=u) for i, u in enumerate(urls)
    }
    repo: Repository = Federated(sources) if len(sources) > 1 else sources["s0"]
    count = 0
    async with repo:
        async for _item in repo.list(page_size=page_size):
            if not count:
                probe.first()
            count += 1
    return count


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n, page_size = (60, 20) if smoke else (300, 50)
    here = "benchmarks.scenarios.federation"
    specs = [("github", {"n_repos": n, "latency": latency}) for latency in LATENCIES]
    with serve_all(specs) as urls:

        def variant(label: str, chosen: list[str]) -> Variant:
            kwargs = {"urls": chosen, "page_size": page_size}
            return Variant(label, f"{here}:listing", kwargs, MODULES, expect=n * len(chosen))

        federated = variant("Federated, 5 sources", urls)
        size = f"5 x {n} repos, 20-100 ms"
        yield [
            Comparison(
                f"federation total ({size})",
                variant("slowest source alone", urls[-1:]),
                federated,
                [Target("wall", 1.2)],
                same_work=False,
            ),
            Comparison(
                f"federation first item ({size})",
                variant("fastest source alone", urls[:1]),
                federated,
                [Target("first", 1.5)],
                same_work=False,
            ),
        ]
