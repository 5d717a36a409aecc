"""S3: ``S3Objects.list()`` against boto3, aiobotocore and plain HTTP + ``xml.etree``.

Two servers, each in a process of its own:

* a fast local ``ListObjectsV2`` server (``fast_s3_app``, below): pages rendered once and
  replayed, so a listing's time is the client's (botocore's XML parsing, mostly). 20,000
  keys (20 pages of 1,000); the target is S3Objects at most 0.3x boto3's paginator. The
  same server behind 20 ms a request shows what ``partitions=8`` is for (no target).
* moto's server (``ThreadedMotoServer``), filled straight through its backend store. moto
  renders every page in Python and dominates the wall clock, so the client's CPU time is
  reported too. Targets: no slower than the aiobotocore paginator, and the fast parser no
  slower than ``parser="botocore"``.

Every variant reads every key and builds a record per key (key, size, modification time
as a datetime); the clients take credentials from the environment (``AWS_ENV``). The plain
HTTP baseline does not sign its requests (neither server checks signatures): it is the
floor, not a client one would ship.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from ..harness import Comparison, Target, Variant
from ..servers import AWS_ENV, S3_BUCKET, serve, serve_all

MODULE = "asyncrepo.repositories.aws.s3_objects"
#: moto takes ~10 s per listing of 20,000 keys: 3 runs, and no warm-up round (neither
#: server has anything to warm).
RUNS = 3
WARMUP = False


def keys_of(n_objects: int) -> list[str]:
    """The benchmark bucket's keys (``servers._run_moto`` puts the same)."""
    width = len(str(n_objects))
    return sorted(f"data/{i % 50:02d}/object-{i:0{width}d}.json" for i in range(n_objects))


# -- the jobs ---------------------------------------------------------------------------------


def boto3_list(probe: Any, endpoint: str, bucket: str) -> tuple[int, str]:
    import boto3  # type: ignore[import-untyped]

    count, last = 0, ""
    client = boto3.client("s3", endpoint_url=endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for raw in page.get("Contents", []):
            record = {"Key": raw["Key"], "Size": raw["Size"], "Modified": raw["LastModified"]}
            count += 1
            last = record["Key"]
    client.close()
    return count, last


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


async def http_list(probe: Any, endpoint: str, bucket: str) -> tuple[int, str]:
    """Plain aiohttp GETs (unsigned) + ``ElementTree.fromstring``, a dict per object."""
    from datetime import datetime
    from urllib.parse import unquote_plus
    from xml.etree.ElementTree import fromstring

    import aiohttp

    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    key_tag, size_tag, date_tag = f"{ns}Key", f"{ns}Size", f"{ns}LastModified"
    count, last = 0, ""
    token: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"list-type": "2", "encoding-type": "url"}
            if token:
                params["continuation-token"] = token
            async with session.get(f"{endpoint}/{bucket}", params=params) as response:
                response.raise_for_status()
                root = fromstring(await response.read())
            for node in root.iter(f"{ns}Contents"):
                key = unquote_plus(node.findtext(key_tag) or "")
                record = {
                    "Key": key,
                    "Size": int(node.findtext(size_tag) or 0),
                    "Modified": datetime.fromisoformat(node.findtext(date_tag) or ""),
                }
                count += 1
                last = key
                del record
            if root.findtext(f"{ns}IsTruncated") != "true":
                return count, last
            token = root.findtext(f"{ns}NextContinuationToken")


async def asyncrepo_list(
    probe: Any,
    endpoint: str,
    bucket: str,
    page_size: int | None = None,
    parser: str = "fast",
    partitions: int | None = None,
) -> tuple[int, str]:
    from asyncrepo.repositories.aws.s3_objects import S3Objects

    options: dict[str, Any] = {} if partitions is None else {"partitions": partitions}
    count, last = 0, ""
    async with S3Objects(bucket, parser=parser, client_kwargs={"endpoint_url": endpoint}) as repo:
        async for item in repo.list(page_size=page_size, **options):
            count += 1
            last = item.identifier
    return count, last


# -- the fast server --------------------------------------------------------------------------


def fast_s3_app(n_objects: int, bucket: str = S3_BUCKET, latency: float = 0.0) -> Any:
    """A fast ``ListObjectsV2`` server over ``keys_of(n_objects)``: answers rendered as S3
    renders them (namespace, ``EncodingType=url``, continuation tokens, ``StartAfter``,
    ``Delimiter``, ``FetchOwner``), each rendered once and replayed (keyed by the query:
    signatures are not checked). It answers in microseconds, so a listing's time is the
    client's. ``latency``: seconds added to every answer (waited concurrently)."""
    import asyncio

    from aiohttp import web

    keys = keys_of(n_objects)
    cache: dict[str, bytes] = {}

    def render(query: Any) -> bytes:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter")
        url = query.get("encoding-type") == "url"
        max_keys = int(query.get("max-keys", "1000"))
        token = query.get("continuation-token")
        start_after = query.get("start-after")
        i = bisect.bisect_left(keys, prefix)
        if token:
            i = max(i, int(token))
        elif start_after:
            i = max(i, bisect.bisect_right(keys, start_after))
        entries: list[str] = []
        folders: list[str] = []
        while (
            i < len(keys) and keys[i].startswith(prefix) and len(entries) + len(folders) < max_keys
        ):
            key = keys[i]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if delimiter and cut >= 0:
                folders.append(key[: cut + len(delimiter)])
                i = bisect.bisect_left(keys, folders[-1] + "\U0010ffff")
                continue
            entries.append(key)
            i += 1
        more = i < len(keys) and keys[i].startswith(prefix)

        def enc(value: str) -> str:
            return quote(value) if url else escape(value)

        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{bucket}</Name><Prefix>{enc(prefix)}</Prefix>"
        ]
        if start_after and not token:
            out.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
        out.append(f"<KeyCount>{len(entries) + len(folders)}</KeyCount>")
        out.append(f"<MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            out.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        out.append(f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>")
        owner = ""
        if query.get("fetch-owner") == "true":
            owner = "<Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078e</ID></Owner>"
        for n, key in enumerate(entries):
            out.append(
                f"<Contents><Key>{enc(key)}</Key>"
                f"<LastModified>2026-11-{1 + n % 28:02d}T12:{n % 60:02d}:00.000Z</LastModified>"
                f"<ETag>&quot;{n:032x}&quot;</ETag><Size>{n * 7}</Size>{owner}"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        for folder in folders:
            out.append(f"<CommonPrefixes><Prefix>{enc(folder)}</Prefix></CommonPrefixes>")
        if url:
            out.append("<EncodingType>url</EncodingType>")
        if token:
            out.append(f"<ContinuationToken>{token}</ContinuationToken>")
        if more:
            out.append(f"<NextContinuationToken>{i}</NextContinuationToken>")
        out.append("</ListBucketResult>")
        return "".join(out).encode()

    async def handler(request: web.Request) -> web.Response:
        if request.query.get("list-type") != "2":
            return web.Response(status=501, text="only ListObjectsV2")
        if latency:
            await asyncio.sleep(latency)
        body = cache.get(request.query_string)
        if body is None:
            body = cache[request.query_string] = render(request.query)
        return web.Response(body=body, content_type="application/xml")

    app = web.Application()
    app.router.add_get(f"/{bucket}", handler)
    app.router.add_get(f"/{bucket}/", handler)
    return app


# -- the comparisons --------------------------------------------------------------------------


@contextmanager
def comparisons(smoke: bool) -> Iterator[list[Comparison]]:
    n_fast = 300 if smoke else 20_000
    n_moto = 200 if smoke else 20_000
    here = "benchmarks.scenarios.s3"
    specs = [
        ("s3", {"n_objects": n_fast, "bucket": S3_BUCKET, "latency": latency})
        for latency in (0, 0.02)
    ]
    moto_server = serve("moto", n_objects=n_moto, bucket=S3_BUCKET)
    with serve_all(specs) as (fast, slow), moto_server as moto:
        out: list[Comparison] = []

        def variants(endpoint: str) -> tuple[Variant, Variant, Variant]:
            p = {"endpoint": endpoint, "bucket": S3_BUCKET}
            return (
                Variant("boto3 paginator", f"{here}:boto3_list", p, ["boto3"], AWS_ENV),
                Variant("S3Objects.list()", f"{here}:asyncrepo_list", p, [MODULE], AWS_ENV),
                Variant(
                    "S3Objects.list(partitions=8)",
                    f"{here}:asyncrepo_list",
                    {**p, "partitions": 8},
                    [MODULE],
                    AWS_ENV,
                ),
            )

        p = {"endpoint": fast, "bucket": S3_BUCKET}
        boto3, subject, parted = variants(fast)
        name = f"s3 list ({n_fast:,} objects, fast server)"
        out.append(Comparison(name, boto3, subject, [Target("wall", 0.3)], show=["cpu"]))
        aiobotocore = Variant(
            "aiobotocore paginator", f"{here}:raw_list", p, ["aiobotocore.session"], AWS_ENV
        )
        out.append(Comparison(name, aiobotocore, subject, [], show=["wall", "cpu"]))
        http = Variant(
            "aiohttp + ElementTree (unsigned)",
            f"{here}:http_list",
            p,
            ["aiohttp", "xml.etree.ElementTree"],
            AWS_ENV,
        )
        out.append(Comparison(name, http, subject, [], show=["wall", "cpu"]))
        if not smoke:
            out.append(Comparison(name, boto3, parted, [], show=["wall", "cpu"]))
            # The same behind 20 ms a request: what partitions are for.
            boto3, subject, parted = variants(slow)
            name = f"s3 list ({n_fast:,} objects, fast server, 20 ms)"
            out.append(Comparison(name, boto3, subject, [], show=["wall", "cpu"]))
            out.append(Comparison(name, boto3, parted, [], show=["wall", "cpu"]))

        p = {"endpoint": moto, "bucket": S3_BUCKET}
        name = f"s3 list ({n_moto:,} objects, moto)"
        subject = Variant("S3Objects.list()", f"{here}:asyncrepo_list", p, [MODULE], AWS_ENV)
        aiobotocore = Variant(
            "aiobotocore paginator", f"{here}:raw_list", p, ["aiobotocore.session"], AWS_ENV
        )
        out.append(
            Comparison(
                name, aiobotocore, subject, [Target("wall", 1.1), Target("cpu", 1.1)], show=[]
            )
        )
        if not smoke:
            botocore = Variant(
                'S3Objects(parser="botocore")',
                f"{here}:asyncrepo_list",
                {**p, "parser": "botocore"},
                [MODULE],
                AWS_ENV,
            )
            out.append(
                Comparison(name, botocore, subject, [Target("wall", 1.0), Target("cpu", 1.0)])
            )
        yield out
