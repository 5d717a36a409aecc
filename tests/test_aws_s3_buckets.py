"""aws.s3_buckets against moto in server mode (see tests/aws_moto.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from asyncrepo import InvalidQuery, ItemNotFound, MalformedResponse
from asyncrepo.repositories.aws.s3_buckets import S3Buckets
from tests.aws_moto import (  # noqa: F401 (fixtures)
    SECRET_KEY,
    MotoS3,
    aws_env_fixture,
    moto_server_fixture,
    s3_fixture,
)

NAMES = ["alpha-one", "alpha-two", "beta-one", "gamma-eu"]


def buckets(s3: MotoS3, **kwargs: Any) -> S3Buckets:
    return S3Buckets(client_kwargs=s3.client_kwargs, **kwargs)


def make(s3: MotoS3) -> None:
    for name in NAMES:
        s3.create_bucket(name, "eu-west-1" if name.endswith("-eu") else "us-east-1")


async def test_list_buckets_in_pages(s3: MotoS3) -> None:
    make(s3)
    async with buckets(s3) as repo:
        items = [item async for item in repo.list()]
        assert sorted(item.identifier for item in items) == NAMES
        item = next(item for item in items if item.identifier == "alpha-one")
        assert item.title == "alpha-one"
        assert item.url == "s3://alpha-one"
        assert item.kind == "bucket"
        assert item.created_at is not None and item.created_at.tzinfo is not None
        assert isinstance(item.raw["CreationDate"], str)
        orjson.dumps(item.to_dict())
        pages = [[i.identifier for i in page] async for page in repo.list_pages(page_size=3)]
        assert [len(page) for page in pages] == [3, 1]
        first = await anext(repo.list_pages(page_size=1))
    async with buckets(s3) as fresh:  # a cursor resumes in a fresh repository
        rest = [i.identifier async for i in fresh.list(cursor=first.cursor)]
    assert sorted([first[0].identifier, *rest]) == NAMES


async def test_get_bucket_with_region_and_creation_date(s3: MotoS3) -> None:
    make(s3)
    async with buckets(s3) as repo:
        home = await repo.get("alpha-one")
        assert home.identifier == "alpha-one"
        assert home.raw["BucketRegion"] == "us-east-1"
        assert home.created_at is not None
        assert home.raw["CreationDate"] == home.created_at.isoformat()
        abroad = await repo.get("gamma-eu")
        assert abroad.raw["BucketRegion"] == "eu-west-1"
        with pytest.raises(ItemNotFound) as info:
            await repo.get("no-such-bucket")
        assert info.value.identifier == "no-such-bucket"
        assert info.value.method == "HeadBucket"
        assert info.value.url == "s3://no-such-bucket"
        with pytest.raises(ItemNotFound):
            await repo.get("a/b")


async def test_search_prefix_and_contains(s3: MotoS3) -> None:
    make(s3)
    async with buckets(s3) as repo:
        assert sorted([i.identifier async for i in repo.search("alpha")]) == [
            "alpha-one",
            "alpha-two",
        ]
        assert [i.identifier async for i in repo.search("one")] == []  # not a prefix
        contains = sorted([i.identifier async for i in repo.search("one", mode="contains")])
        assert contains == ["alpha-one", "beta-one"]
        with pytest.raises(InvalidQuery):
            repo.list(mode="contains")
        with pytest.raises(InvalidQuery):
            repo.search("x", mode="regex")


async def test_since_filters_on_creation_date(s3: MotoS3) -> None:
    make(s3)
    old = datetime.now(UTC) - timedelta(days=30)
    s3.backend.buckets["beta-one"].creation_date = old
    s3.backend.buckets["gamma-eu"].creation_date = old
    async with buckets(s3) as repo:
        recent = sorted([i.identifier async for i in repo.list(since=old + timedelta(days=1))])
    assert recent == ["alpha-one", "alpha-two"]


class StubClient:
    """Stands in for the AWS client: answers ListBuckets from canned pages."""

    def __init__(self, pages: dict[str | None, dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert method == "list_buckets"
        self.calls.append(params)
        return self.pages[params.get("ContinuationToken")]


def bucket(name: str) -> dict[str, Any]:
    return {"Name": name, "CreationDate": datetime(2024, 1, 1, tzinfo=UTC)}


async def test_continuation_tokens_are_followed() -> None:
    """moto returns no ContinuationToken, so the token path is checked with canned pages
    shaped like AWS's answers."""
    stub = StubClient(
        {
            None: {"Buckets": [bucket("a1"), bucket("a2")], "ContinuationToken": "t1"},
            "t1": {"Buckets": [bucket("b1")], "ContinuationToken": "t2"},
            "t2": {"Buckets": [bucket("c1")]},
        }
    )
    repo = S3Buckets()
    repo.client = stub  # type: ignore[assignment]
    assert [i.identifier async for i in repo.list()] == ["a1", "a2", "b1", "c1"]
    assert [call.get("ContinuationToken") for call in stub.calls] == [None, "t1", "t2"]
    assert all(call["MaxBuckets"] == 10_000 for call in stub.calls)
    pages = [[i.identifier for i in page] async for page in repo.list_pages(page_size=3)]
    assert pages == [["a1", "a2", "b1"], ["c1"]]


async def test_repeated_token_and_ignored_prefix() -> None:
    looping = StubClient({None: {"Buckets": [bucket("a")], "ContinuationToken": "t"}})
    looping.pages["t"] = looping.pages[None]
    repo = S3Buckets()
    repo.client = looping  # type: ignore[assignment]
    with pytest.raises(MalformedResponse, match="repeated"):
        _ = [i async for i in repo.list()]
    # A server that ignores Prefix still gives a right prefix search.
    ignoring = StubClient({None: {"Buckets": [bucket("logs-a"), bucket("web"), bucket("logs-b")]}})
    repo.client = ignoring  # type: ignore[assignment]
    assert [i.identifier async for i in repo.search("logs")] == ["logs-a", "logs-b"]
    assert ignoring.calls[0]["Prefix"] == "logs"


def test_capabilities_and_repr() -> None:
    caps = S3Buckets.capabilities
    assert (caps.get, caps.search, caps.since, caps.options) == (
        "native",
        "prefix",
        "client",
        frozenset({"mode"}),
    )
    repo = S3Buckets(
        session_kwargs={"aws_access_key_id": "AKIA1", "aws_secret_access_key": SECRET_KEY},
        client_kwargs={"endpoint_url": "http://127.0.0.1:9"},
    )
    assert SECRET_KEY not in repr(repo)
    assert "127.0.0.1:9" in repr(repo)
