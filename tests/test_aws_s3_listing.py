"""aws.s3_objects listing paths: the fast parser against botocore's (item by item, byte for
byte, on tricky keys, against moto), partitioned listing (no key lost or repeated, cursors),
and lying S3 servers (a small ListObjectsV2 fake on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import orjson
import pytest
from aiohttp import web

from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    Item,
    MalformedResponse,
    PermissionDenied,
    SourceUnavailable,
)
from asyncrepo.repositories.aws import _listing
from asyncrepo.repositories.aws.s3_objects import S3Objects, _before
from tests.aws_moto import (  # noqa: F401 (fixtures)
    MotoS3,
    aws_env_fixture,
    moto_server_fixture,
    s3_fixture,
)
from tests.fakes._common import serve

TRICKY = [
    "plain.txt",
    "with space.txt",
    "two  spaces /and trailing ",
    "a+b=c&d;e,f",
    "100%",
    "%41%2F%zz",
    "percent%20encoded+plus",
    "caf\u00e9/na\u00efve.txt",
    "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb.md",
    "emoji \U0001f600/\U0001f680.bin",
    "ctrl\x01\x02\x1f.bin",
    "tab\tnew\nline\rreturn",
    "del\x7fchar",
    "xml <tag> & \"quotes\" 'apos'",
    "cdata ]]> end",
    "&amp; already escaped &lt;",
    "dir/",
    "dir/sub/",
    "dir/sub/deep.json",
    "dir/sub2/x",
    "dir0",
    "dir-",
    "dir.",
    "back\\slash",
    "?query#fragment",
    "~tilde*star!bang'(paren)",
    "l" * 1000 + ".long",  # S3's cap is 1,024 bytes of UTF-8
    "\u00e9" * 500 + "/k",  # 1,002 bytes, 502 characters
]


def fill(s3: MotoS3, bucket: str, keys: list[str]) -> None:
    s3.create_bucket(bucket)
    for i, key in enumerate(keys):
        s3.put(bucket, key, b"x" * (i % 7), last_modified=datetime(2024, 1, 1 + i % 28, tzinfo=UTC))


def objects(s3: MotoS3, bucket: str, **kwargs: Any) -> S3Objects:
    return S3Objects(bucket, client_kwargs=s3.client_kwargs, **kwargs)


def facts(item: Item) -> bytes:
    """Everything an item says, as bytes (key order of raw included)."""
    return orjson.dumps(
        [
            item.identifier,
            item.title,
            item.url,
            item.kind,
            item.updated_at.isoformat() if item.updated_at else None,
            item.raw,
        ]
    )


async def both(s3: MotoS3, bucket: str, call: Callable[[S3Objects], Any], **kwargs: Any) -> Any:
    out = []
    for parser in ("fast", "botocore"):
        async with objects(s3, bucket, parser=parser, **kwargs) as repo:
            out.append([facts(item) async for item in call(repo)])
    return out


# -- equivalence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda repo: repo.list(),
        lambda repo: repo.list(page_size=3),  # continuation tokens between the paths
        lambda repo: repo.list(delimiter="/"),
        lambda repo: repo.list(delimiter="/", page_size=2),
        lambda repo: repo.search("dir/"),
        lambda repo: repo.search("\u00e9", mode="contains"),
    ],
    ids=["list", "pages-of-3", "delimiter", "delimiter-pages-of-2", "prefix", "contains"],
)
async def test_fast_and_botocore_paths_give_identical_items(
    s3: MotoS3, call: Callable[[S3Objects], Any]
) -> None:
    fill(s3, "tricky", TRICKY)
    fast, botocore = await both(s3, "tricky", call)
    assert fast == botocore
    assert fast  # something was compared


async def test_every_tricky_key_comes_back_decoded(s3: MotoS3) -> None:
    fill(s3, "tricky", TRICKY)
    async with objects(s3, "tricky") as repo:
        keys = [item.identifier async for item in repo.list()]
    assert keys == sorted(TRICKY)


async def test_owner_storage_class_and_checksums_are_identical(s3: MotoS3) -> None:
    s3.create_bucket("rich")
    s3.backend.put_object("rich", "cold/archive.bin", b"zzz", storage="GLACIER")
    s3.put("rich", "warm/plain.txt", b"hello")
    async with objects(s3, "rich") as repo:  # one object with a checksum, through the API
        client = await repo.client.get()
        await client.put_object(
            Bucket="rich", Key="warm/summed.txt", Body=b"sum", ChecksumAlgorithm="SHA256"
        )
    for owner in (False, True):
        fast, botocore = await both(s3, "rich", lambda repo: repo.list(), fetch_owner=owner)
        assert fast == botocore
        raws = [orjson.loads(line)[5] for line in fast]
        assert ("Owner" in raws[0]) is owner
        assert raws[0]["StorageClass"] == "GLACIER"
        assert raws[2]["ChecksumAlgorithm"] == ["SHA256"]


async def test_the_fast_path_really_skips_botocores_parser(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botocore.handlers

    checks: list[int] = []
    real_check = botocore.handlers._looks_like_special_case_error

    def counting(status_code: int, body: bytes) -> bool:
        checks.append(status_code)
        return bool(real_check(status_code, body))

    monkeypatch.setattr(botocore.handlers, "_looks_like_special_case_error", counting)
    fill(s3, "raw", ["a", "b"])
    async with objects(s3, "raw") as repo:
        body, response = await repo.client.call_raw(
            "list_objects_v2", url="s3://raw/", Bucket="raw", EncodingType="url"
        )
        assert isinstance(body, Element) and body.tag.endswith("ListBucketResult")
        assert "Contents" not in response  # botocore parsed an empty body
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert checks == []  # one XML parse: botocore's 200 check was ours for this call
        # A call that did not ask is parsed (and checked) by botocore, on the same client.
        plain = await repo.client.call("list_objects_v2", url="s3://raw/", Bucket="raw")
        assert [c["Key"] for c in plain["Contents"]] == ["a", "b"]
        assert _listing.RAW_BODY not in plain
        assert checks == [200]


def test_shape_parser_matches_botocores_on_a_crafted_body() -> None:
    """Members the moto server never sends: RestoreStatus, ChecksumType, empty elements,
    unknown elements, no namespace."""
    import botocore.session
    from botocore.parsers import RestXMLParser

    from asyncrepo.repositories.aws._client import parse_timestamp

    shape = (
        botocore.session.get_session()
        .get_service_model("s3")
        .operation_model("ListObjectsV2")
        .output_shape
    )
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b"<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount>"
        b"<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Unknown>x</Unknown>"
        b"<Contents><Key>k1</Key><LastModified>2024-02-29T23:59:59.123Z</LastModified>"
        b"<ETag>&quot;abc&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
        b"<ChecksumAlgorithm>SHA1</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>"
        b"<Size>0</Size><StorageClass>GLACIER</StorageClass>"
        b"<RestoreStatus><IsRestoreInProgress>true</IsRestoreInProgress>"
        b"<RestoreExpiryDate>2025-01-01T00:00:00Z</RestoreExpiryDate></RestoreStatus>"
        b"<Owner><ID>id</ID><DisplayName></DisplayName></Owner></Contents>"
        b"<Contents><Size>12345678901234</Size><Key>k2</Key><ETag/></Contents>"
        b"</ListBucketResult>"
    )
    expected = RestXMLParser(timestamp_parser=parse_timestamp).parse(
        {"body": body, "headers": {}, "status_code": 200}, shape
    )
    expected.pop("ResponseMetadata")
    got = _listing.ShapeParser(shape, parse_timestamp).parse(body)
    assert got == expected
    assert list(got) == list(expected)
    assert [list(c) for c in got["Contents"]] == [list(c) for c in expected["Contents"]]


# -- partitions -------------------------------------------------------------------------------

#: Keys made to straddle the boundaries partition discovery picks: folder markers equal to
#: a boundary, keys just below and above a folder, objects between folders, deep folders.
STRADDLING = sorted(
    {
        *(f"data/{a:02d}/{b:03d}.json" for a in range(12) for b in range(0, 40, 3)),
        *(f"data/{a:02d}/" for a in range(0, 12, 4)),  # folder markers
        *(f"data/{a:02d}" for a in range(12)),  # objects named like the folders
        *(f"data/{a:02d}.{x}" for a in range(12) for x in ("a", "z")),
        *(f"data/{a:02d}/sub/{b}" for a in range(3) for b in range(5)),
        "data",
        "data-",
        "data.",
        "data/",
        "data0",
        "top.txt",
        "zz/last",
        "\u00e9t\u00e9/\u00e9",
        "data/05\U0010ffff",
        "data/05.\U0010ffff\U0010ffff",
    }
)


@pytest.mark.parametrize("partitions", [2, 3, 8, 64])
async def test_partitioned_listing_loses_and_repeats_nothing(s3: MotoS3, partitions: int) -> None:
    fill(s3, "parts", STRADDLING)
    async with objects(s3, "parts") as repo:
        sequential = [facts(item) async for item in repo.list()]
        parallel = [facts(item) async for item in repo.list(partitions=partitions)]
        bounds = await repo._boundaries("", partitions)
    assert parallel == sequential
    assert len(sequential) == len(STRADDLING)
    assert 1 <= len(bounds) <= partitions - 1  # it did split


async def test_partitioned_search_and_a_partition_count_of_one(s3: MotoS3) -> None:
    fill(s3, "parts", STRADDLING)
    async with objects(s3, "parts") as repo:
        wanted = [k for k in STRADDLING if k.startswith("data/0")]
        assert [i.identifier async for i in repo.search("data/0", partitions=4)] == wanted
        assert [i.identifier async for i in repo.list(partitions=1)] == STRADDLING
        found = [i.identifier async for i in repo.search("sub", mode="contains", partitions=3)]
        assert found == [k for k in STRADDLING if "sub" in k]


async def test_a_flat_bucket_splits_on_keys(s3: MotoS3) -> None:
    keys = [f"k{i:04d}" for i in range(2100)]  # no folder: discovery pages hold only keys
    fill(s3, "flat", keys)
    async with objects(s3, "flat") as repo:
        listed = [item.identifier async for item in repo.list(partitions=4)]
    assert listed == keys


@pytest.mark.parametrize("page_size", [5, 100])
async def test_partitioned_cursors_resume_at_the_next_key(s3: MotoS3, page_size: int) -> None:
    fill(s3, "parts", STRADDLING)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        async with objects(s3, "parts") as repo:  # a fresh repository for every page
            stream = repo.list_pages(page_size=page_size, partitions=3, cursor=cursor)
            page = await anext(stream)
            await stream.aclose()
        seen.extend(item.identifier for item in page)
        pages += 1
        cursor = page.cursor
        if cursor is None or pages > 400:
            break
    assert seen == STRADDLING
    async with objects(s3, "parts") as repo:
        with pytest.raises(InvalidCursor):  # a sequential cursor is not a partitioned one
            stream = repo.list_pages(page_size=5)
            first = await anext(stream)
            await stream.aclose()
            assert first.cursor is not None
            _ = [i async for i in repo.list(partitions=3, cursor=first.cursor)]


async def test_boundary_keys_are_just_below(s3: MotoS3) -> None:
    for key in ["data/", "a", "\u00e9", "\ue000x", "x\x00"]:
        below = _before(key)
        assert below < key
        below.encode("utf-8")  # a valid key: no surrogate


async def test_partitioned_errors_are_ours(s3: MotoS3) -> None:
    async with objects(s3, "missing-bucket") as repo:
        with pytest.raises(ConfigurationError):
            _ = [item async for item in repo.list(partitions=4)]


async def test_abandoned_partitioned_listing_stops_its_partitions(s3: MotoS3) -> None:
    fill(s3, "parts", STRADDLING)
    repo = objects(s3, "parts")
    stream = repo.list(partitions=8)
    await anext(stream)
    await stream.aclose()
    assert not [task for task in repo.background_tasks if not task.done()]
    stream = repo.list(partitions=8)
    await anext(stream)
    await repo.aclose()  # without closing the stream
    assert not [task for task in repo.background_tasks if not task.done()]
    await stream.aclose()


# -- lying servers ----------------------------------------------------------------------------


def listing(keys: list[str], token: str | None, *, truncated: bool | None = None) -> str:
    contents = "".join(
        f"<Contents><Key>{escape(k)}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
        f"<ETag>&quot;e&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>"
        for k in keys
    )
    more = token is not None if truncated is None else truncated
    next_token = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>b</Name><Prefix></Prefix><KeyCount>{len(keys)}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><IsTruncated>{str(more).lower()}</IsTruncated>"
        f"{contents}{next_token}</ListBucketResult>"
    )


def s3_error(code: str, status: int) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{code} says no</Message>"
        "<RequestId>r</RequestId></Error>"
    )
    return web.Response(status=status, body=body, content_type="application/xml")


CALLS = web.AppKey("calls", dict[str, int])


def lying_app(mode: str) -> web.Application:
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        token = request.query.get("continuation-token")
        xml = "application/xml"
        if mode == "repeat":
            return web.Response(text=listing(["k"], "again"), content_type=xml)
        if mode == "no-token":
            return web.Response(text=listing(["k"], None, truncated=True), content_type=xml)
        if mode == "pages":  # three honest pages
            seen = calls.setdefault(f"token={token}", 0)
            calls[f"token={token}"] = seen + 1
            following = {None: "p2", "p2": "p3", "p3": None}[token]
            keys = [f"{token or 'p1'}-{i}" for i in range(3)]
            return web.Response(text=listing(keys, following), content_type=xml)
        if mode == "cycle":
            following = {None: "A", "A": "B", "B": "A"}[token]
            return web.Response(text=listing([f"k{calls['n']}"], following), content_type=xml)
        if mode == "not-xml":
            return web.Response(text='{"Contents": []}', content_type="application/json")
        if mode == "truncated-xml":
            return web.Response(text=listing(["k"], None)[:-40], content_type=xml)
        if mode == "bad-size":
            body = listing(["k"], None).replace("<Size>1</Size>", "<Size>lots</Size>")
            return web.Response(text=body, content_type=xml)
        if mode == "denied":
            return s3_error("AccessDenied", 403)
        if mode == "down":
            return s3_error("InternalError", 500)
        raise AssertionError(mode)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    app[CALLS] = calls
    return app


_LIES: list[tuple[str, type[Exception], str | None]] = [
    ("repeat", MalformedResponse, "repeated"),
    ("no-token", MalformedResponse, "gave no token"),
    # botocore's own check of S3's 200 answers takes a body that is not XML for a
    # disrupted answer: retried, then SourceUnavailable, on both paths.
    ("not-xml", SourceUnavailable, "500"),
    ("truncated-xml", SourceUnavailable, "500"),
    ("bad-size", MalformedResponse, None),
    ("denied", PermissionDenied, "AccessDenied"),
    ("down", SourceUnavailable, "InternalError"),
]


@pytest.mark.parametrize(
    ("parser", "mode", "error", "match"),
    [
        (parser, mode, error, match)
        for parser in ("fast", "botocore")
        for mode, error, match in _LIES
        # The retried answers go through the same botocore retries on both paths: once (on
        # the fast path) is enough, they are slow.
        if not (error is SourceUnavailable and parser == "botocore")
    ],
)
async def test_a_lying_server_ends_in_our_exception(
    aws_env: None, parser: str, mode: str, error: type[Exception], match: str | None
) -> None:
    retried = error is SourceUnavailable
    app = lying_app(mode)
    async with serve(app) as url:
        repo = S3Objects("b", parser=parser, client_kwargs={"endpoint_url": url})
        async with repo:
            with pytest.raises(error, match=match) as info:
                _ = [item async for item in repo.list()]
            assert info.value.source == "aws.s3_objects"  # type: ignore[attr-defined]
            if not retried:
                with pytest.raises(error, match=match):
                    _ = [item async for item in repo.list(partitions=4)]
    if retried:
        assert app[CALLS]["n"] >= 3  # botocore's retries still apply on the fast path


async def test_a_cyclic_token_ends_in_our_exception(aws_env: None) -> None:
    async with serve(lying_app("cycle")) as url:
        repo = S3Objects("b", client_kwargs={"endpoint_url": url})
        async with repo:
            with pytest.raises(MalformedResponse):
                _ = [item async for item in repo.list()]


def test_botocore_models_read_with_orjson_are_the_same() -> None:
    from botocore.loaders import JSONFileLoader, create_loader

    from asyncrepo.repositories.aws import _client

    loader = create_loader()
    found = [
        p for p in loader.search_paths if JSONFileLoader().exists(f"{p}/s3/2006-03-01/service-2")
    ]
    assert found
    base = f"{found[0]}/s3/2006-03-01/service-2"
    fast = _client._OrjsonFileLoader().load_file(base)
    slow = JSONFileLoader().load_file(base)
    assert fast == slow and list(fast["shapes"]) == list(slow["shapes"])
    endpoints = f"{found[0]}/endpoints"
    if JSONFileLoader().exists(endpoints):
        assert _client._OrjsonFileLoader().load_file(endpoints) == JSONFileLoader().load_file(
            endpoints
        )


async def test_read_ahead_asks_for_every_page_once(aws_env: None) -> None:
    """The next page is asked for as soon as a page's tree is there (read-ahead), and the
    listing then uses that answer: no page is requested twice."""
    app = lying_app("pages")
    async with serve(app) as url:
        repo = S3Objects("b", client_kwargs={"endpoint_url": url})
        used: list[Any] = []

        class Ahead(dict[Any, Any]):
            def pop(self, key: Any, default: Any = None) -> Any:
                found = super().pop(key, default)
                used.append(found is not None)
                return found

        repo._ahead = Ahead()
        async with repo:
            keys = [item.identifier async for item in repo.list()]
            assert not repo._ahead  # every read-ahead was used
        assert used == [False, True, True]  # pages 2 and 3 came from read-aheads
    assert keys == [f"{page}-{i}" for page in ("p1", "p2", "p3") for i in range(3)]
    calls = app[CALLS]
    assert calls["n"] == 3
    assert (calls["token=None"], calls["token=p2"], calls["token=p3"]) == (1, 1, 1)


def test_parse_xml_holds_the_collector_off_only_while_it_parses() -> None:
    import gc
    from xml.etree.ElementTree import ParseError

    seen: list[bool] = []
    body = b"<a><b>1</b></a>"
    try:
        gc.enable()
        root = _listing.parse_xml(body)
        assert root.findtext("b") == "1" and gc.isenabled()
        with pytest.raises(ParseError):
            _listing.parse_xml(b"<a><b>")
        assert gc.isenabled()
        gc.disable()  # an application that runs without the collector keeps it off
        _listing.parse_xml(body)
        seen.append(gc.isenabled())
    finally:
        gc.enable()
    assert seen == [False]
