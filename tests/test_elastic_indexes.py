"""elastic.indexes against osmem-server and the fake Elasticsearch; the URIs of both
elastic sources."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import asyncrepo
from asyncrepo import ConfigurationError, InvalidQuery, ItemNotFound, RetryPolicy
from asyncrepo.repositories.elastic.documents import Documents
from asyncrepo.repositories.elastic.indexes import Indexes
from tests.fakes._common import serve
from tests.fakes.elastic import ElasticState, make_app
from tests.osmem_server import bulk_index, osmem_base_url

__all__ = ["osmem_base_url"]

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0)
_names = itertools.count()


async def test_osmem_indexes_leave_hidden_and_system_ones_out(osmem_base_url: str) -> None:
    base = osmem_base_url
    prefix = f"ix{next(_names)}"
    await bulk_index(base, f"{prefix}-a", [("1", {"title": "x"}), ("2", {"title": "y"})])
    await bulk_index(base, f"{prefix}-b", [("1", {"title": "z"})])
    await bulk_index(base, f".{prefix}-system", [("1", {"title": "s"})])
    await bulk_index(
        base, f"{prefix}-hidden", [("1", {"t": "h"})], settings={"index": {"hidden": True}}
    )
    async with Indexes(base, retry=FAST) as repo:
        names = {i.identifier async for i in repo.list()}
        assert {f"{prefix}-a", f"{prefix}-b"} <= names
        assert f".{prefix}-system" not in names
        assert f"{prefix}-hidden" not in names
        found = [i.identifier async for i in repo.search(f"{prefix}-a")]
        assert found == [f"{prefix}-a"]
        item = await repo.get(f"{prefix}-a")
        assert item.identifier == item.title == f"{prefix}-a"
        assert "mappings" in item.raw and "settings" in item.raw
        assert item.created_at is not None
        with pytest.raises(ItemNotFound):
            await repo.get(f"{prefix}-missing")
    async with Indexes(base, include_hidden=True, retry=FAST) as repo:
        names = {i.identifier async for i in repo.list()}
        assert {f".{prefix}-system", f"{prefix}-hidden"} <= names
    async with Indexes(base, f"{prefix}-*", retry=FAST) as repo:
        rows = [i async for i in repo.list()]
        assert [i.identifier for i in rows] == [f"{prefix}-a", f"{prefix}-b"]
        assert rows[0].raw["docs.count"] == "2"
        assert rows[0].url == f"{base}/{prefix}-a"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[str, ElasticState]]:
    state = ElasticState()
    state.add("logs-1", "a", {"message": "m"})
    state.add("logs-2", "b", {"message": "m"})
    state.add_index(".security-7")
    state.add_index("hidden-one", hidden=True)
    state.indexes["logs-1"].aliases.append("logs")
    state.indexes["logs-2"].aliases.append("both")
    state.indexes["logs-1"].aliases.append("both")
    async with serve(make_app(state)) as base:
        yield base, state


async def test_fake_indexes(fake: tuple[str, ElasticState]) -> None:
    base, state = fake
    async with Indexes(base, retry=FAST) as repo:
        assert [i.identifier async for i in repo.list()] == ["logs-1", "logs-2"]
        item = await repo.get("logs")  # an alias of one index gives the index
        assert item.identifier == "logs-1"
        with pytest.raises(InvalidQuery):
            await repo.get("both")  # an alias of two
        with pytest.raises(ItemNotFound):
            await repo.get("logs-*")
    request = next(r for r in state.controls.requests if r.path == "/_cat/indices")
    assert request.query["format"] == "json"
    assert request.query["expand_wildcards"] == "open,closed"
    async with Indexes(base, include_hidden=True, retry=FAST) as repo:
        names = [i.identifier async for i in repo.list()]
    assert names == [".security-7", "hidden-one", "logs-1", "logs-2"]


async def test_flavour_detection(fake: tuple[str, ElasticState], osmem_base_url: str) -> None:
    base, _ = fake
    async with Indexes(base) as repo:
        assert await repo.flavour() == "elasticsearch"
    async with Indexes(osmem_base_url) as repo:
        # osmem sends X-Elastic-Product: Elasticsearch too: the body decides
        assert await repo.flavour() == "opensearch"
    async with aiohttp.ClientSession() as session, session.get(osmem_base_url) as response:
        assert response.headers.get("X-Elastic-Product") == "Elasticsearch"
    async with Indexes(base, flavour="opensearch") as repo:
        assert await repo.flavour() == "opensearch"


def test_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ELASTIC_API_KEY", "ELASTIC_USERNAME", "ELASTIC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ELASTIC_BEARER_TOKEN", "OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    repo: Any = asyncrepo.open("es+https://search.example.com:9200/logs-*")
    assert isinstance(repo, Documents)
    assert repo.base_url == "https://search.example.com:9200"
    assert repo.index == "logs-*" and repo.qualify_ids
    assert repo.client.known_flavour is None
    repo = asyncrepo.open("elasticsearch+http://127.0.0.1:9200/proxy/es/books")
    assert isinstance(repo, Documents)
    assert (repo.base_url, repo.index, repo.qualify_ids) == (
        "http://127.0.0.1:9200/proxy/es",
        "books",
        False,
    )
    repo = asyncrepo.open("opensearch+https://os.example.com")
    assert isinstance(repo, Indexes) and repo.pattern is None
    assert repo.client.known_flavour == "opensearch"
    repo = asyncrepo.open("es+http://h/logs-*?resource=indexes&include_hidden=true")
    assert isinstance(repo, Indexes) and repo.pattern == "logs-*" and repo.include_hidden
    repo = asyncrepo.open("es+http://h/books?flavour=opensearch", point_in_time=False)
    assert repo.client.known_flavour == "opensearch" and repo.point_in_time is False
    monkeypatch.setenv("ELASTIC_API_KEY", "id:secret-key")
    repo = asyncrepo.open("es+https://h/books")
    assert repo.client.auth.scheme == "ApiKey"
    monkeypatch.delenv("ELASTIC_API_KEY")
    monkeypatch.setenv("OPENSEARCH_USERNAME", "admin")
    monkeypatch.setenv("OPENSEARCH_PASSWORD", "pw-secret")
    repo = asyncrepo.open("opensearch+https://h/books")
    assert repo.client.auth.username == "admin"
    assert "pw-secret" not in repr(repo) + repr(repo.client)
    for bad in (
        "es+https://user:pw@h/books",
        "es+https://h/books?nope=1",
        "es+https://h/books?resource=things",
        "es+https://h/books?include_hidden=true",
        "es+https://",
    ):
        with pytest.raises(ConfigurationError):
            asyncrepo.open(bad)
