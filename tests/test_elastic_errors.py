"""elastic.documents against the fake Elasticsearch: what is pushed down, authentication,
error mapping, retries, fallbacks and hostile answers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asyncrepo import (
    AsyncRepoError,
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    MalformedResponse,
    RateLimited,
    RetryPolicy,
    SourceUnavailable,
    UnsupportedOption,
)
from asyncrepo.repositories.elastic.documents import Documents
from tests.fakes._common import serve
from tests.fakes.elastic import ElasticState, make_app, make_dataset

FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0, rate_limit_floor=0.01)
N = 30


class Site:
    def __init__(self, base: str, state: ElasticState) -> None:
        self.base, self.state = base, state

    def docs(self, index: str = "docs", **kwargs: Any) -> Documents:
        kwargs.setdefault("retry", FAST)
        return Documents(self.base, index, **kwargs)

    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, _, body in self.state.searches]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = make_dataset(N)
    async with serve(make_app(state)) as base:
        yield Site(base, state)


async def ids(stream: Any) -> list[str]:
    return [item.identifier async for item in stream]


# -- pushdown -------------------------------------------------------------------------------


async def test_list_walks_a_point_in_time_on_shard_doc(site: Site) -> None:
    async with site.docs(keep_alive="2m") as repo:
        assert len(await ids(repo.list(page_size=10))) == N
    opened = [r for r in site.state.controls.requests if r.path == "/docs/_pit"]
    assert len(opened) == 1 and opened[0].method == "POST"
    assert opened[0].query["keep_alive"] == "2m"
    paths = {path for path, _, _ in site.state.searches}
    assert paths == {"/_search"}  # a PIT search names no index
    bodies = site.bodies()
    assert all(b["sort"] == [{"_shard_doc": "asc"}] for b in bodies)
    assert all(b["pit"]["keep_alive"] == "2m" for b in bodies)
    assert all(b["track_total_hits"] is False for b in bodies)
    assert "search_after" not in bodies[0]
    assert all("search_after" in b for b in bodies[1:])
    # every search uses the id the previous answer gave (the fake hands out a new one)
    assert len({b["pit"]["id"] for b in bodies}) == len(bodies)
    assert all(q.get("allow_partial_search_results") == "false" for _, q, _ in site.state.searches)
    assert not [r for r in site.state.controls.requests if "scroll" in r.query]
    assert site.state.controls.count("/_pit", method="DELETE") == 1


async def test_search_since_and_order_go_in_the_query(site: Site) -> None:
    since = datetime(2024, 1, 1, 10, tzinfo=UTC)
    async with site.docs() as repo:
        found = await ids(repo.search("cats", since=since, order="-created", page_size=4))
    assert found == [f"doc-{n:05d}" for n in range(N - 1, 9, -1) if n % 3 == 0]
    body = site.bodies()[0]
    assert body["query"] == {
        "bool": {
            "must": [
                {"simple_query_string": {"query": "cats", "default_operator": "and"}},
            ],
            "filter": [
                {
                    "range": {
                        "@timestamp": {
                            "gte": "2024-01-01T10:00:00.000Z",
                            "format": "strict_date_optional_time",
                        }
                    }
                }
            ],
        }
    }
    assert body["sort"][0] == {
        "@timestamp": {"order": "desc", "missing": "_last", "unmapped_type": "date"}
    }
    assert body["sort"][1] == {"_shard_doc": "asc"}


async def test_relevance_search_pages_on_score(site: Site) -> None:
    async with site.docs() as repo:
        found = await ids(repo.search("cats", page_size=3))
    assert sorted(found) == [f"doc-{n:05d}" for n in range(N) if n % 3 == 0]
    assert site.bodies()[0]["sort"] == [{"_score": "desc"}, {"_shard_doc": "asc"}]


async def test_query_string_syntax_and_fields_options(site: Site) -> None:
    async with site.docs(query_syntax="query_string", since_field="updated") as repo:
        await ids(repo.search("title:cats", fields=["title"]))
        with pytest.raises(InvalidQuery) as caught:
            await ids(repo.search("title:(cats"))
        assert "query_shard_exception" in str(caught.value)
    assert site.bodies()[0]["query"] == {
        "query_string": {"query": "title:cats", "default_operator": "and", "fields": ["title"]}
    }
    async with site.docs() as repo:
        await ids(repo.search("cats", query_syntax="query_string"))
        assert "query_string" in site.bodies()[-1]["query"]
        with pytest.raises(InvalidQuery):
            await ids(repo.search("cats", query_syntax="sql"))
        with pytest.raises(UnsupportedOption):
            await ids(repo.list(highlight=True))


async def test_field_mapping_is_configurable(site: Site) -> None:
    site.state.add(
        "custom",
        "x1",
        {
            "meta": {"headline": "Nested title", "link": "https://example.com/x1"},
            "summary": "the summary",
            "modified": 1_704_067_200_000,  # epoch milliseconds
            "who": ["ann", "bob"],
            "when": "not a date",
        },
    )
    async with site.docs(
        "custom",
        title_field="meta.headline",
        text_field=["missing", "summary"],
        url_field="meta.link",
        updated_field="modified",
        created_field="when",
        author_field="who",
    ) as repo:
        item = await repo.get("x1")
    assert item.title == "Nested title"
    assert item.text == "the summary"
    assert item.url == "https://example.com/x1"
    assert item.updated_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert item.created_at is None  # user data in another format is no date, not an error
    assert item.author == "ann bob"


# -- fallbacks ------------------------------------------------------------------------------


async def test_without_a_pit_api_the_walk_sorts_on_id(site: Site) -> None:
    site.state.pit_api = False
    async with site.docs() as repo:
        found = await ids(repo.list(page_size=7))
        again = await ids(repo.list(page_size=7))
    assert found == again == [f"doc-{n:05d}" for n in range(N)]
    assert {path for path, _, _ in site.state.searches} == {"/docs/_search"}
    assert all(b["sort"] == [{"_id": "asc"}] and "pit" not in b for b in site.bodies())
    # the missing API is asked about once per repository
    assert site.state.controls.count("/docs/_pit") == 1


async def test_point_in_time_true_requires_one(site: Site) -> None:
    site.state.pit_api = False
    async with site.docs(point_in_time=True) as repo:
        with pytest.raises(InvalidQuery):
            await ids(repo.list())


async def test_point_in_time_false_sorts_on_the_configured_field(site: Site) -> None:
    async with site.docs(point_in_time=False, sort_field="n") as repo:
        found = await ids(repo.list(page_size=8))
    assert found == [f"doc-{n:05d}" for n in range(N)]
    assert site.state.pits_opened == 0
    assert all(b["sort"] == [{"n": "asc"}] for b in site.bodies())


async def test_an_expired_point_in_time_is_reopened_once(site: Site) -> None:
    site.state.expire_pits = 1
    async with site.docs() as repo:
        assert len(await ids(repo.list(page_size=10))) == N
    assert site.state.pits_opened == 2
    assert not site.state.pits
    site.state.expire_pits = 2
    async with site.docs() as repo:
        with pytest.raises(SourceUnavailable) as caught:
            await ids(repo.list(page_size=10))
    assert "search_context_missing_exception" in str(caught.value)
    assert "keep_alive" in str(caught.value)
    assert not site.state.pits


# -- errors ---------------------------------------------------------------------------------


async def test_missing_index(site: Site) -> None:
    async with site.docs("nope") as repo:
        with pytest.raises(ConfigurationError) as caught:
            await ids(repo.list())
        assert "nope" in str(caught.value)
        with pytest.raises(ItemNotFound):
            await repo.get("doc-00001")


async def test_api_key_basic_and_bearer(site: Site) -> None:
    encoded = base64.b64encode(b"key-id:key-secret").decode()
    site.state.api_key = encoded
    async with site.docs(api_key="key-id:key-secret") as repo:
        assert (await repo.get("doc-00001")).identifier == "doc-00001"
    async with site.docs(api_key=encoded) as repo:
        assert (await repo.get("doc-00001")).identifier == "doc-00001"
    async with site.docs(api_key=("key-id", "key-secret")) as repo:
        assert (await repo.get("doc-00001")).identifier == "doc-00001"
    site.state.api_key, site.state.basic = None, ("elastic", "changeme")
    async with site.docs(username="elastic", password="changeme") as repo:
        assert (await repo.get("doc-00001")).identifier == "doc-00001"
    site.state.basic, site.state.bearer = None, "tok-123"
    async with site.docs(token="tok-123") as repo:
        assert len(await ids(repo.list())) == N
    with pytest.raises(ConfigurationError):
        site.docs(token="a", api_key="b")


async def test_bad_credentials_are_an_authentication_error_without_secrets(site: Site) -> None:
    site.state.api_key = "the-right-one"
    async with site.docs(api_key="wrong-id:wrong-secret-value") as repo:
        with pytest.raises(AuthenticationError) as caught:
            await ids(repo.list())
        with pytest.raises(AuthenticationError):
            await repo.get("doc-00001")
    text = str(caught.value) + repr(caught.value) + repr(repo) + repr(repo.client)
    assert "security_exception" in text
    assert "wrong-secret-value" not in text
    assert base64.b64encode(b"wrong-id:wrong-secret-value").decode() not in text


async def test_429_and_rejected_execution_are_retried(site: Site) -> None:
    site.state.controls.inject(
        429,
        body={
            "error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of search",
            },
            "status": 429,
        },
        path_prefix="/_search",
    )
    rejected_in_503 = {
        "error": {
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "root_cause": [{"type": "es_rejected_execution_exception", "reason": "queue full"}],
        },
        "status": 503,
    }
    site.state.controls.inject(503, body=rejected_in_503, path_prefix="/_search")
    site.state.controls.inject(500, body=rejected_in_503, path_prefix="/_search")
    async with site.docs() as repo:
        assert len(await ids(repo.list(page_size=10))) == N
    statuses = [r.status for r in site.state.controls.requests if r.path == "/_search"]
    assert statuses[:4] == [429, 503, 500, 200]


async def test_rejections_that_do_not_stop_end_in_rate_limited(site: Site) -> None:
    body = {"error": {"type": "es_rejected_execution_exception", "reason": "busy"}, "status": 429}
    site.state.controls.inject(429, body=body, path_prefix="/_search", times=10)
    async with site.docs(retry=RetryPolicy(attempts=3, backoff=0.01, rate_limit_floor=0.01)) as r:
        with pytest.raises(RateLimited) as caught:
            await ids(r.list())
    assert "es_rejected_execution_exception" in str(caught.value)
    assert not site.state.pits  # closed even though the walk failed


# -- hostile servers ------------------------------------------------------------------------


async def test_sort_values_that_do_not_advance(site: Site) -> None:
    site.state.stuck_sort = True
    async with site.docs() as repo:
        with pytest.raises(AsyncRepoError) as caught:
            await ids(repo.list(page_size=5))
    assert isinstance(caught.value, MalformedResponse)
    assert "did not advance" in str(caught.value)
    assert not site.state.pits
    assert len(site.state.searches) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"hits": {"hits": {"a": 1}}}',
        b'{"hits": {"hits": [{"_index": "docs", "_source": {}}]}}',
        b'{"hits": {"hits": [{"_id": "x", "_source": {}}]}}',
        b'{"_shards": {"failed": 1}, "hits": {"hits": []}}',
        b'{"timed_out": true, "hits": {"hits": []}}',
        b"[]",
    ],
)
async def test_malformed_search_answers(site: Site, body: bytes) -> None:
    site.state.controls.inject(
        200, body=body, headers={"Content-Type": "application/json"}, path_prefix="/_search"
    )
    async with site.docs() as repo:
        with pytest.raises(MalformedResponse):
            await ids(repo.list())
    assert not site.state.pits


async def test_a_pit_answer_without_an_id(site: Site) -> None:
    site.state.controls.inject(200, body={"_shards": {}}, path_prefix="/docs/_pit")
    async with site.docs() as repo:
        with pytest.raises(MalformedResponse):
            await ids(repo.list())


async def test_hour_offsets_are_sent_in_utc(site: Site) -> None:
    from datetime import timezone

    since = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    async with site.docs() as repo:
        found = await ids(repo.list(since=since))
    assert found == [f"doc-{n:05d}" for n in range(10, N)]
    assert "2024-01-01T10:00:00.000Z" in str(site.bodies()[0]["query"])
