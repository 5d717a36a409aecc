"""S3: ``S3Objects.list()`` against aiobotocore's ``ListObjectsV2`` paginator, on moto.

moto's server (``ThreadedMotoServer``) runs in a process of its own, filled straight through
its backend store. moto answers slowly (it renders every page in Python), so its time
dominates the wall clock: the client's CPU time is reported too, and has its own target.

Both variants use the same kind of client (one aiobotocore S3 client, credentials from the
environment) and read every key. The raw paginator asks for S3's default page (1,000 keys);
``S3Objects.list()`` is measured as a user calls it (its default ``page_size``), and, as a
second comparison, with ``page_size=1000``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import Comparison, Target, Variant
from ..servers import AWS_ENV, S3_BUCKET, serve

MODULE = "asyncrepo.repositories.aws.s3_objects"
#: moto takes ~10 s per listing of 20,000 keys (far more at 100 keys a page): 3 runs, and
#: no warm-up round (moto has nothing to warm).
RUNS = 3
WARMUP = False


async def raw_list(probe: Any, endpoint: str, bucket: str) -> tuple[int, str]:
    from aiobotocore.session import get_session

    count, last = 0, ""
    session = get_session()
    async with session.create_client("s3", endpoint_url=endpoint) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket):
            for raw in page.get("Contents", []):
                record = {"Key": raw["Key"], "Size": raw["Size"], "Modified": raw["LastModified"]}
                count += 1
                last = record["Key"]
    return count, last


async def asyncrepo_list(
    probe: Any, endpoint: str, bucket: str, page_size: int | None = None
) -> tuple[int, str]:
    from asyncrepo.repositories.aws.s3_objects import S3Objects

    count, last = 0, ""
    async with S3Objects(bucket, client_kwargs={"endpoint_url": endpoint}) as repo:
        async for item in repo.list(page_size=page_size):
            count += 1
            last = item.identifier
    return count, last


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n = 200 if smoke else 20_000
    here = "benchmarks.scenarios.s3"
    targets = [Target("wall", 1.1), Target("cpu", 1.1)]
    with serve("moto", n_objects=n, bucket=S3_BUCKET) as endpoint:
        p = {"endpoint": endpoint, "bucket": S3_BUCKET}
        raw = Variant(
            "aiobotocore paginator",
            f"{here}:raw_list",
            p,
            ["aiobotocore.session"],
            AWS_ENV,
        )
        out = [
            Comparison(
                f"s3 list ({n:,} objects, moto)",
                raw,
                Variant("S3Objects.list()", f"{here}:asyncrepo_list", p, [MODULE], AWS_ENV),
                targets,
                show=["cpu"],
            )
        ]
        if not smoke:  # the same listing with S3's own page size
            out.append(
                Comparison(
                    f"s3 list ({n:,} objects, moto)",
                    raw,
                    Variant(
                        "S3Objects.list(page_size=1000)",
                        f"{here}:asyncrepo_list",
                        {**p, "page_size": 1000},
                        [MODULE],
                        AWS_ENV,
                    ),
                    targets,
                    show=["cpu"],
                )
            )
        yield out
