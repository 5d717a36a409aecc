"""aws.s3_objects against moto in server mode (see tests/aws_moto.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asyncrepo
from asyncrepo import (
    ConfigurationError,
    InvalidCursor,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    Page,
    UnsupportedOption,
)
from asyncrepo.repositories.aws.s3_buckets import S3Buckets
from asyncrepo.repositories.aws.s3_objects import S3Objects
from tests.aws_moto import (  # noqa: F401 (fixtures)
    SECRET_KEY,
    MotoS3,
    aws_env_fixture,
    moto_server_fixture,
    s3_fixture,
)

BIG = 2500


def big_keys(count: int = BIG) -> list[str]:
    return [f"data/{i:05d}.bin" for i in range(count)]


def fill(s3: MotoS3, bucket: str, keys: list[str]) -> None:
    s3.create_bucket(bucket)
    for key in keys:
        s3.put(bucket, key)


def objects(s3: MotoS3, bucket: str, prefix: str | None = None, **kwargs: Any) -> S3Objects:
    return S3Objects(bucket, prefix, client_kwargs=s3.client_kwargs, **kwargs)


async def collect_pages(repo: S3Objects, **kwargs: Any) -> list[list[str]]:
    return [[item.identifier for item in page] async for page in repo.list_pages(**kwargs)]


# -- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [100, 1000, 2500])
async def test_pagination_over_many_vendor_pages(s3: MotoS3, page_size: int) -> None:
    keys = big_keys()
    fill(s3, "big", keys)
    async with objects(s3, "big") as repo:
        pages = await collect_pages(repo, page_size=page_size)
    listed = [key for page in pages for key in page]
    assert listed == keys  # every key once, in order: the 0.0.9 bug returned page 1 forever
    assert len(pages) == math.ceil(BIG / page_size)
    assert all(len(page) == page_size for page in pages[:-1])


async def test_page_size_7_across_the_1000_key_boundary(s3: MotoS3) -> None:
    keys = big_keys(1010)
    fill(s3, "seven", keys)
    async with objects(s3, "seven") as repo:
        pages = await collect_pages(repo, page_size=7)
    assert [key for page in pages for key in page] == keys
    assert [len(page) for page in pages] == [7] * 144 + [2]


async def test_page_size_1_and_cursor_chain(s3: MotoS3) -> None:
    keys = [f"k{i:02d}" for i in range(12)]
    fill(s3, "ones", keys)
    seen: list[str] = []
    cursor = None
    async with objects(s3, "ones") as repo:
        for _ in range(20):
            page = await anext(repo.list_pages(page_size=1, cursor=cursor))
            seen.extend(item.identifier for item in page)
            cursor = page.cursor
            if cursor is None:
                break
    assert seen == keys


async def test_next_page_walks_the_live_stream(s3: MotoS3) -> None:
    fill(s3, "walk", big_keys(30))
    async with objects(s3, "walk") as repo:
        page: Page | None = await anext(repo.list_pages(page_size=8))
        sizes = []
        while page is not None:
            sizes.append(len(page))
            page = await page.next_page()
    assert sizes == [8, 8, 8, 6]


async def test_cursor_resumes_in_a_fresh_repository_with_another_page_size(s3: MotoS3) -> None:
    keys = big_keys(1200)
    fill(s3, "resume", keys)
    async with objects(s3, "resume") as first:
        stream = first.list_pages(page_size=1100)
        page = await anext(stream)
        await stream.aclose()
    assert [item.identifier for item in page] == keys[:1100]
    assert page.cursor is not None
    # The cursor points 100 keys into the second 1000-key vendor page; resuming with a
    # page size of 7 must not fetch a 7-key page and skip past its end.
    async with objects(s3, "resume") as second:
        rest = second.list_pages(page_size=7, cursor=page.cursor)
        next_page = await anext(rest)
        await rest.aclose()
        assert [item.identifier for item in next_page] == keys[1100:1107]
        remaining = [item.identifier async for item in second.list(cursor=page.cursor)]
    assert remaining == keys[1100:]


async def test_cursor_of_another_prefix_is_refused(s3: MotoS3) -> None:
    fill(s3, "scoped", ["a/1", "a/2", "a/3", "b/1"])
    async with objects(s3, "scoped", "a/") as repo:
        page = await anext(repo.list_pages(page_size=1))
    assert page.cursor is not None
    async with objects(s3, "scoped", "b/") as other:
        with pytest.raises(InvalidCursor):
            await anext(other.list_pages(cursor=page.cursor))


async def test_empty_bucket_gives_one_empty_page(s3: MotoS3) -> None:
    s3.create_bucket("empty")
    async with objects(s3, "empty") as repo:
        pages = [page async for page in repo.list_pages()]
    assert len(pages) == 1
    assert len(pages[0]) == 0
    assert pages[0].cursor is None


async def test_a_repeated_continuation_token_stops_with_an_error(s3: MotoS3) -> None:
    """The loop the 0.0.9 connector fell into is detected, not repeated forever."""
    repo = objects(s3, "loop")

    async def same_page(method: str, **kwargs: Any) -> dict[str, Any]:
        return {
            "Contents": [{"Key": "k", "Size": 1}],
            "IsTruncated": True,
            "NextContinuationToken": "again",
        }

    repo.client.call = same_page  # type: ignore[method-assign]
    with pytest.raises(MalformedResponse, match="repeated"):
        _ = [item async for item in repo.list()]


# -- items, delimiter, get -------------------------------------------------------------------


async def test_delimiter_lists_folders_as_their_own_kind(s3: MotoS3) -> None:
    fill(s3, "tree", ["a/1.txt", "a/2.txt", "b/x/1.txt", "b/y.txt", "c.txt", "d/"])
    async with objects(s3, "tree") as repo:
        items = [item async for item in repo.list(delimiter="/")]
        assert [(i.identifier, i.kind) for i in items] == [
            ("a/", "prefix"),
            ("b/", "prefix"),
            ("c.txt", "object"),
            ("d/", "prefix"),
        ]
        folder = items[0]
        assert folder.title == "a"
        assert folder.url == "s3://tree/a/"
        assert folder.raw == {"Bucket": "tree", "Prefix": "a/"}
        pages = await collect_pages(repo, page_size=1, delimiter="/")
        assert pages == [["a/"], ["b/"], ["c.txt"], ["d/"]]
    async with objects(s3, "tree", "b/") as repo:
        nested = [(i.identifier, i.kind) async for i in repo.list(delimiter="/")]
        assert nested == [("b/x/", "prefix"), ("b/y.txt", "object")]
        folder_item = await repo.get("b/x/")
        assert folder_item.kind == "prefix"
        everything = [i.identifier async for i in repo.list()]
        assert everything == ["b/x/1.txt", "b/y.txt"]


async def test_list_items_carry_common_fields_and_json_raw(s3: MotoS3) -> None:
    s3.create_bucket("fields")
    s3.put("fields", "reports/2024/q1.csv", b"a,b\n1,2\n")
    async with objects(s3, "fields") as repo:
        [item] = [item async for item in repo.list()]
    assert item.identifier == "reports/2024/q1.csv"
    assert item.title == "q1.csv"
    assert item.url == "s3://fields/reports/2024/q1.csv"
    assert item.kind == "object"
    assert item.updated_at is not None and item.updated_at.tzinfo is not None
    assert item.raw["Size"] == 8
    assert item.raw["Bucket"] == "fields"
    assert isinstance(item.raw["LastModified"], str)
    assert item.source == "aws.s3_objects"
    import orjson

    orjson.dumps(item.to_dict())  # JSON-serialisable all the way down


async def test_get_returns_full_metadata(s3: MotoS3) -> None:
    s3.create_bucket("meta")
    async with objects(s3, "meta") as repo:
        client = await repo.client.get()
        await client.put_object(
            Bucket="meta",
            Key="docs/readme.md",
            Body=b"# hello\n",
            ContentType="text/markdown",
            Metadata={"owner": "ana", "project": "asyncrepo"},
        )
        item = await repo.get("docs/readme.md")
    assert item.identifier == "docs/readme.md"
    assert item.title == "readme.md"
    assert item.url == "s3://meta/docs/readme.md"
    assert item.kind == "object"
    assert item.text is None  # text=False by default
    raw = item.raw
    assert raw["Size"] == 8
    assert raw["ContentType"] == "text/markdown"
    assert raw["Metadata"] == {"owner": "ana", "project": "asyncrepo"}
    assert raw["ETag"].strip('"')
    assert raw["StorageClass"] == "STANDARD"
    assert isinstance(raw["LastModified"], str)
    assert "ResponseMetadata" not in raw
    assert item.updated_at is not None
    assert item.updated_at.isoformat() == raw["LastModified"]


async def test_get_not_found(s3: MotoS3) -> None:
    fill(s3, "present", ["a/b.txt"])
    async with objects(s3, "present") as repo:
        with pytest.raises(ItemNotFound) as missing_key:
            await repo.get("a/nope.txt")
        assert missing_key.value.identifier == "a/nope.txt"
        assert missing_key.value.method == "HeadObject"
        assert missing_key.value.url == "s3://present/a/nope.txt"
        assert missing_key.value.source == "aws.s3_objects"
        folder = await repo.get("a/")  # no such object, but keys start with it
        assert (folder.kind, folder.title) == ("prefix", "a")
        with pytest.raises(ItemNotFound):
            await repo.get("zzz/")  # no key under it either
    async with objects(s3, "absent-bucket") as repo:
        with pytest.raises(ItemNotFound):
            await repo.get("a/b.txt")
    async with objects(s3, "present", "other/") as repo:
        with pytest.raises(ItemNotFound, match="outside the prefix"):
            await repo.get("a/b.txt")


async def test_listing_a_missing_bucket_is_a_configuration_error(s3: MotoS3) -> None:
    async with objects(s3, "no-such-bucket", "logs/") as repo:
        with pytest.raises(ConfigurationError) as info:
            _ = [item async for item in repo.list()]
    error = info.value
    assert error.method == "ListObjectsV2"
    assert error.url == "s3://no-such-bucket/logs/"
    assert error.status == 404
    assert error.vendor_message
    assert "ListObjectsV2 s3://no-such-bucket/logs/" in str(error)


# -- search, since ---------------------------------------------------------------------------


async def test_search_is_a_key_prefix_under_the_configured_prefix(s3: MotoS3) -> None:
    fill(
        s3,
        "searchable",
        ["logs/2024/app.log", "logs/2024/db.log", "logs/2025/app.log", "other/2024/x"],
    )
    async with objects(s3, "searchable", "logs/") as repo:
        found = [item.identifier async for item in repo.search("2024/")]
        assert found == ["logs/2024/app.log", "logs/2024/db.log"]
        assert [item.identifier async for item in repo.search("app")] == []  # not a prefix
        folders = [item.identifier async for item in repo.search("20", delimiter="/")]
        assert folders == ["logs/2024/", "logs/2025/"]
        pages = [
            [item.identifier for item in page] async for page in repo.search_pages("2", page_size=2)
        ]
        assert pages == [["logs/2024/app.log", "logs/2024/db.log"], ["logs/2025/app.log"]]


async def test_search_contains_mode_scans_and_matches(s3: MotoS3) -> None:
    keys = [f"logs/{i:04d}-{'app' if i % 3 == 0 else 'db'}.log" for i in range(40)]
    fill(s3, "contains", [*keys, "elsewhere/app.log"])
    async with objects(s3, "contains", "logs/") as repo:
        found = [item.identifier async for item in repo.search("APP", mode="contains")]
        assert found == [key for key in keys if "app" in key]
        pages = [
            [item.identifier for item in page]
            async for page in repo.search_pages("app", mode="contains", page_size=5)
        ]
        assert [key for page in pages for key in page] == found
        assert all(len(page) == 5 for page in pages[:-1])
        # A cursor from a contains-search resumes it in a fresh repository.
        page = await anext(repo.search_pages("app", mode="contains", page_size=5))
    async with objects(s3, "contains", "logs/") as fresh:
        resumed = [
            item.identifier
            async for item in fresh.search("app", mode="contains", cursor=page.cursor)
        ]
    assert resumed == found[5:]


async def test_option_checks(s3: MotoS3) -> None:
    async with objects(s3, "whatever") as repo:
        with pytest.raises(InvalidQuery):
            repo.list(mode="contains")
        with pytest.raises(InvalidQuery):
            repo.search("x", mode="fuzzy")
        with pytest.raises(InvalidQuery):
            repo.list(delimiter="")
        with pytest.raises(UnsupportedOption):
            repo.list(order="-updated")
        with pytest.raises(UnsupportedOption):
            repo.list(recursive=True)
        for bad in (0, -1, 65, True, 2.0, "4"):
            with pytest.raises(InvalidQuery, match="partitions"):
                repo.list(partitions=bad)
        with pytest.raises(InvalidQuery, match="delimiter"):
            repo.list(partitions=4, delimiter="/")
    with pytest.raises(ConfigurationError, match="parser"):
        objects(s3, "whatever", parser="lxml")
    caps = S3Objects.capabilities
    assert (caps.get, caps.search, caps.since) == ("native", "prefix", "client")
    assert caps.options == {"delimiter", "mode", "partitions"}
    assert caps.max_page_size == 1000


async def test_since_filters_on_last_modified(s3: MotoS3) -> None:
    s3.create_bucket("dated")
    now = datetime.now(UTC)
    for day in range(10):
        s3.put("dated", f"day-{day}", last_modified=now - timedelta(days=day))
    async with objects(s3, "dated") as repo:
        recent = [item.identifier async for item in repo.list(since=now - timedelta(days=3.5))]
        assert recent == ["day-0", "day-1", "day-2", "day-3"]
        pages = await collect_pages(repo, since=now - timedelta(days=5.5), page_size=2)
        assert pages == [["day-0", "day-1"], ["day-2", "day-3"], ["day-4", "day-5"]]
        dates = [item.updated_at async for item in repo.list()]
    assert all(stamp is not None for stamp in dates)


# -- content ---------------------------------------------------------------------------------


async def test_read_whole_and_with_max_bytes(s3: MotoS3) -> None:
    s3.create_bucket("content")
    s3.put("content", "blob", bytes(range(256)) * 4)
    s3.put("content", "empty", b"")
    async with objects(s3, "content") as repo:
        assert await repo.read("blob") == bytes(range(256)) * 4
        assert await repo.read("blob", max_bytes=10) == bytes(range(10))
        assert await repo.read("blob", max_bytes=5000) == bytes(range(256)) * 4
        assert await repo.read("blob", max_bytes=0) == b""
        assert await repo.read("empty") == b""
        assert await repo.read("empty", max_bytes=10) == b""
        with pytest.raises(ItemNotFound) as info:
            await repo.read("missing", max_bytes=3)
        assert info.value.method == "GetObject"
        with pytest.raises(ItemNotFound):
            await repo.read("missing", max_bytes=0)
        with pytest.raises(InvalidQuery):
            await repo.read("blob", max_bytes=-1)


async def test_open_stream_yields_chunks(s3: MotoS3) -> None:
    payload = bytes(range(256)) * 12_289  # ~3 MiB, not a multiple of the chunk size
    s3.create_bucket("streams")
    s3.put("streams", "large.bin", payload, content_type="application/octet-stream")
    async with objects(s3, "streams") as repo:
        async with repo.open_stream("large.bin", chunk_size=1 << 20) as stream:
            assert stream.size == len(payload)
            assert stream.content_type == "application/octet-stream"
            chunks = [chunk async for chunk in stream]
        assert all(0 < len(chunk) <= 1 << 20 for chunk in chunks)
        assert len(chunks) >= 3
        assert b"".join(chunks) == payload
        # Used directly as an async iterator, it opens and releases the response itself.
        direct = b"".join([chunk async for chunk in repo.open_stream("large.bin")])
        assert direct == payload
        # Leaving early releases the response on exit.
        async with repo.open_stream("large.bin", chunk_size=1000) as stream:
            first = await stream.read(1000)
        assert first == payload[:1000]
        with pytest.raises(ValueError, match="closed"):
            await stream.read(10)
        with pytest.raises(ItemNotFound):
            async with repo.open_stream("nope"):
                pass


async def test_text_option_fills_text_for_text_like_objects(s3: MotoS3) -> None:
    s3.create_bucket("texts")
    s3.put("texts", "notes/a.txt", b"plain text", content_type="text/plain")
    s3.put("texts", "notes/b.md", "caf\u00e9 \u2615".encode(), content_type="text/markdown")
    s3.put("texts", "notes/c.bin", b"\x00\x01binary", content_type="application/octet-stream")
    s3.put("texts", "notes/d.json", b'{"k": 1}' + b" " * 200, content_type="application/json")
    s3.put("texts", "notes/noext", b"typed as text", content_type="text/plain; charset=utf-8")
    s3.put("texts", "notes/latin.txt", "na\u00efve".encode("latin-1"))
    async with objects(s3, "texts", text=True, text_max_bytes=100) as repo:
        listed = {item.identifier: item.text async for item in repo.list()}
        assert listed == {
            "notes/a.txt": "plain text",
            "notes/b.md": "caf\u00e9 \u2615",
            "notes/c.bin": None,  # binary
            "notes/d.json": None,  # over text_max_bytes
            "notes/latin.txt": None,  # not UTF-8 and no charset: not read as text
            "notes/noext": None,  # no extension: the listing cannot tell it is text
        }
        assert (await repo.get("notes/noext")).text == "typed as text"  # get knows the type
        assert (await repo.get("notes/a.txt")).text == "plain text"
        assert (await repo.get("notes/c.bin")).text is None
        assert (await repo.get("notes/d.json")).text is None
    async with objects(s3, "texts", text=True, text_max_bytes=1000) as repo:
        assert (await repo.get("notes/d.json")).text == '{"k": 1}' + " " * 200
    async with objects(s3, "texts") as repo:
        assert all([item.text is None async for item in repo.list()])


# -- URIs, configuration, lifecycle ----------------------------------------------------------


async def test_open_uri(s3: MotoS3) -> None:
    fill(s3, "uri-bucket", ["logs/a", "logs/b", "other/c"])
    repo = asyncrepo.open("s3://uri-bucket/logs/", client_kwargs=s3.client_kwargs)
    async with repo:
        assert isinstance(repo, S3Objects)
        assert (repo.bucket_name, repo.prefix) == ("uri-bucket", "logs/")
        assert [item.identifier async for item in repo.list()] == ["logs/a", "logs/b"]
    whole = asyncrepo.open("s3://uri-bucket", client_kwargs=s3.client_kwargs)
    async with whole:
        assert isinstance(whole, S3Objects)
        assert [item.identifier async for item in whole.list()] == [
            "logs/a",
            "logs/b",
            "other/c",
        ]
    buckets = asyncrepo.open("s3://", client_kwargs=s3.client_kwargs)
    async with buckets:
        assert isinstance(buckets, S3Buckets)
    with pytest.raises(ConfigurationError):
        asyncrepo.open("s3://bucket/prefix?region=eu-west-1")
    with pytest.raises(ConfigurationError):
        asyncrepo.open("s3://key:secret@bucket/prefix")


async def test_endpoint_and_credentials_from_the_environment(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(s3, "env-bucket", ["k"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    async with S3Objects("env-bucket") as repo:
        assert [item.identifier async for item in repo.list()] == ["k"]


async def test_session_kwargs_and_the_old_alias(s3: MotoS3) -> None:
    fill(s3, "kw-bucket", ["k"])
    credentials = {
        "aws_access_key_id": "AKIAOTHERKEY",
        "aws_secret_access_key": "another-secret-value",
        "region_name": "us-east-1",
    }
    async with S3Objects(
        "kw-bucket", session_kwargs=credentials, client_kwargs=s3.client_kwargs
    ) as repo:
        assert [item.identifier async for item in repo.list()] == ["k"]
        assert "another-secret-value" not in repr(repo)
        assert "another-secret-value" not in repr(repo.client)
    async with S3Objects(
        "kw-bucket", aioboto_session_kwargs=credentials, client_kwargs=s3.client_kwargs
    ) as repo:
        assert [item.identifier async for item in repo.list()] == ["k"]
    with pytest.raises(ConfigurationError, match="not both"):
        S3Objects("kw-bucket", session_kwargs=credentials, aioboto_session_kwargs=credentials)
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        S3Objects("kw-bucket", session_kwargs={"endpoint_url": s3.endpoint})


async def test_missing_profile_is_a_configuration_error(s3: MotoS3) -> None:
    async with S3Objects("kw-bucket", session_kwargs={"profile_name": "no-such-profile"}) as repo:
        with pytest.raises(ConfigurationError, match="no-such-profile"):
            _ = [item async for item in repo.list()]


async def test_client_is_lazy_reused_and_closed(s3: MotoS3) -> None:
    fill(s3, "lazy", ["a", "b"])
    repo = objects(s3, "lazy")
    assert repo.client._client is None  # nothing created before first use
    first = await repo.client.get()
    _ = [item async for item in repo.list()]
    await repo.get("a")
    assert await repo.client.get() is first  # one client, reused
    await repo.aclose()
    assert repo.client._client is None
    await repo.aclose()  # twice is fine


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        S3Objects("")
    with pytest.raises(ConfigurationError):
        S3Objects("bucket/with/slash")
    with pytest.raises(ConfigurationError):
        S3Objects("bucket", text_max_bytes=-1)
    with pytest.raises(ConfigurationError, match="AioConfig"):
        S3Objects("bucket", client_kwargs={"config": {"retries": 1}})


def test_repr_never_shows_the_secret() -> None:
    repo = S3Objects(
        "bucket",
        "prefix/",
        session_kwargs={"aws_access_key_id": "AKIA1", "aws_secret_access_key": SECRET_KEY},
    )
    assert SECRET_KEY not in repr(repo)
    assert SECRET_KEY not in repr(repo.client)
    assert "s3://bucket/prefix/" in repr(repo)


async def test_aclose_cancels_the_prefetch_of_an_abandoned_stream(s3: MotoS3) -> None:
    fill(s3, "abandoned", big_keys())
    repo = objects(s3, "abandoned")
    stream = repo.list_pages(page_size=1000)
    await anext(stream)  # the next page is being prefetched now
    await repo.aclose()  # the caller never closes the stream
    assert not [task for task in repo.background_tasks if not task.done()]
    assert repo.client._client is None  # no client reopened behind our back
    await stream.aclose()
