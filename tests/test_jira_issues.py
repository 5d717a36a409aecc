"""jira.issues against the fake Jira, in Cloud and Data Center modes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asyncrepo
from asyncrepo import (
    AuthenticationError,
    ConfigurationError,
    InvalidQuery,
    ItemNotFound,
    RetryPolicy,
    SourceUnavailable,
)
from asyncrepo.convert import adf_to_text
from asyncrepo.repositories.jira._client import jql_string
from asyncrepo.repositories.jira.issues import Issues
from asyncrepo.repository import PageRequest
from tests.fakes._common import serve
from tests.fakes.jira import (
    And,
    Clause,
    JiraState,
    Value,
    clauses,
    iter_project_issues,
    jira_ts_to_ms,
    make_app,
    make_dataset,
)

USER, TOKEN = "me@example.com", "api-token-123"
FAST = RetryPolicy(backoff=0.01, max_backoff=0.05, jitter=0.0)
N_ISSUES = 2000
SMALL = 40
# The endpoints Jira Cloud removed in 2025 (they answer 410 Gone).
REMOVED_SEARCH = re.compile(r"^/rest/api/(2|3|latest)/search/?$")


class Site:
    def __init__(self, base: str, state: JiraState) -> None:
        self.base, self.state = base, state

    def issues(self, **kwargs: Any) -> Issues:
        kwargs.setdefault("retry", FAST)
        return Issues(self.base, USER, TOKEN, **kwargs)

    @property
    def requests(self) -> list[Any]:
        return self.state.controls.requests

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def dataset(deployment: Literal["cloud", "datacenter"]) -> JiraState:
    """2,000 issues over AS, ENG and OPS, and a small project SM (40 issues) whose issues
    share their creation times in pairs (the key must break the tie) and were updated in
    another order."""
    state = make_dataset(N_ISSUES, deployment=deployment)
    start = datetime(2025, 2, 1, tzinfo=UTC)
    for n in range(SMALL):
        created = start + timedelta(hours=n // 2)
        updated = created + timedelta(hours=(n * 7919) % SMALL)  # another order
        state.add_issue("SM", f"Small issue {n}", created=created, updated=updated)
    return state


@pytest.fixture(scope="module")
def cloud_state() -> JiraState:
    return dataset("cloud")


@pytest.fixture(scope="module")
def dc_state() -> JiraState:
    return dataset("datacenter")


async def _site(state: JiraState) -> AsyncIterator[Site]:
    state.controls.requests.clear()
    state.controls.injections.clear()
    async with serve(make_app(state)) as base:
        yield Site(base, state)


@pytest.fixture
async def cloud(cloud_state: JiraState) -> AsyncIterator[Site]:
    async for site in _site(cloud_state):
        yield site


@pytest.fixture
async def dc(dc_state: JiraState) -> AsyncIterator[Site]:
    async for site in _site(dc_state):
        yield site


@pytest.fixture(params=["cloud", "datacenter"])
async def site(request: pytest.FixtureRequest, cloud: Site, dc: Site) -> Site:
    return cloud if request.param == "cloud" else dc


def project_ids(state: JiraState, key: str = "AS") -> list[str]:
    """The project's issue ids in the default order (created, then key)."""
    issues = sorted(
        iter_project_issues(state, key),
        key=lambda i: (jira_ts_to_ms(i["fields"]["created"]), int(i["key"].split("-")[1])),
    )
    return [i["id"] for i in issues]


async def collect(repo: Issues, **kwargs: Any) -> list[list[str]]:
    return [[item.identifier for item in page] async for page in repo.list_pages(**kwargs)]


def flat(pages: list[list[str]]) -> list[str]:
    return [identifier for page in pages for identifier in page]


# ------------------------------------------------------------------------------- listing


@pytest.mark.parametrize(("page_size", "project"), [(1, "SM"), (7, "SM"), (7, "AS"), (100, "AS")])
async def test_pages_lose_nothing_and_repeat_nothing(
    site: Site, page_size: int, project: str
) -> None:
    async with site.issues(project=project) as repo:
        pages = await collect(repo, page_size=page_size)
    ids = flat(pages)
    expected = project_ids(site.state, project)
    assert len(ids) == len(set(ids)) == len(expected)
    assert ids == expected  # the default order: created, then key
    assert all(len(page) == page_size for page in pages[:-1])
    assert 0 < len(pages[-1]) <= page_size


@pytest.mark.parametrize(
    ("project", "page_size", "id_page_size"), [("AS", 7, 45), ("AS", 100, 250), ("SM", 3, 3)]
)
async def test_cloud_id_pages_and_bulk_fetch_chunks_do_not_line_up(
    cloud: Site, project: str, page_size: int, id_page_size: int
) -> None:
    async with cloud.issues(project=project) as repo:
        repo.id_page_size = id_page_size
        ids = flat(await collect(repo, page_size=page_size))
    assert ids == project_ids(cloud.state, project)
    searches = [r for r in cloud.requests if r.path == "/rest/api/3/search/jql"]
    assert len(searches) == -(-len(ids) // id_page_size)


async def test_cloud_listing_uses_enhanced_search_and_bulk_fetch(cloud: Site) -> None:
    async with cloud.issues(project="AS") as repo:
        ids = [item.identifier async for item in repo.list()]
        assert len(ids) == len(project_ids(cloud.state))
        await repo.get(ids[0])
        assert [i.identifier async for i in repo.search("zebra-never-seen")] == []
    paths = cloud.paths()
    assert paths[0] == "/rest/api/2/serverInfo"
    assert paths.count("/rest/api/3/search/jql") == 2  # 631 ids in one id page; the search
    assert paths.count("/rest/api/3/issue/bulkfetch") == -(-len(ids) // 100)
    assert not [p for p in paths if REMOVED_SEARCH.match(p)]
    assert all(r.status != 410 for r in cloud.requests)
    search = next(r for r in cloud.requests if r.path == "/rest/api/3/search/jql")
    assert search.method == "POST"


@pytest.mark.parametrize("deployment", ["cloud", "datacenter"])
async def test_listing_everything_needs_a_bounded_query_on_cloud(
    deployment: Literal["cloud", "datacenter"],
) -> None:
    state = make_dataset(300, deployment=deployment)
    async for site in _site(state):
        async with site.issues() as repo:
            ids = [item.identifier async for item in repo.list()]
        assert sorted(ids, key=int) == [i["id"] for i in state.issues]
        where = clauses(state.last_jql_ast)
        if deployment == "cloud":
            assert where == [Clause("created", ">=", Value("-36500d"))]
        else:
            assert where == []  # Data Center takes an unbounded query


async def test_fetch_page_walks_the_listing_too(cloud: Site) -> None:
    async with cloud.issues(project="SM", deployment="cloud") as repo:
        repo.id_page_size = 10
        request = PageRequest(query=None, page_size=4)
        state: Any = None
        ids: list[str] = []
        while True:
            batch = await repo.fetch_page(request, state)
            ids += [item.identifier for item in batch.items]
            state = batch.next_state
            if state is None:
                break
            assert isinstance(state, list) and state[1] in (0, 4, 8)
    assert ids == project_ids(cloud.state, "SM")


@pytest.mark.parametrize("page_size", [7, 100])
async def test_cursor_resumes_in_a_fresh_repository(site: Site, page_size: int) -> None:
    expected = project_ids(site.state)
    async with site.issues(project="AS") as first:
        first.id_page_size = 10  # Cloud: the cursor lands inside a later id page
        async with aclosing(first.list_pages(page_size=page_size)) as pages:
            head: list[list[str]] = []
            async for page in pages:
                head.append([item.identifier for item in page])
                if len(head) == 2:
                    cursor = page.cursor
                    break
    assert cursor is not None
    site.state.controls.requests.clear()
    async with site.issues(project="AS") as second:
        rest = await collect(second, page_size=page_size, cursor=cursor)
    assert flat(head) + flat(rest) == expected
    assert len(rest[0]) == page_size


async def test_a_cursor_is_refused_by_another_project(cloud: Site) -> None:
    async with (
        cloud.issues(project="AS") as repo,
        aclosing(repo.list_pages(page_size=5)) as pages,
    ):
        cursor = (await anext(pages)).cursor
    assert cursor is not None
    async with cloud.issues(project="ENG") as other:
        with pytest.raises(asyncrepo.InvalidCursor):
            await collect(other, page_size=5, cursor=cursor)


@pytest.mark.parametrize("is_last", ["never", "sometimes"])
async def test_is_last_is_not_needed(is_last: Literal["never", "sometimes"]) -> None:
    state = make_dataset(120)
    state.is_last = is_last
    async for site in _site(state):
        async with site.issues(project="AS") as repo:
            repo.id_page_size = 7
            ids = flat(await collect(repo, page_size=5))
        assert ids == project_ids(state)


@pytest.mark.parametrize("tokens", [["AAA=", "AAA="], ["AAA=", "BBB/", "AAA="]])
async def test_a_repeated_page_token_fails_instead_of_looping(
    cloud: Site, tokens: list[str]
) -> None:
    first = next(iter_project_issues(cloud.state, "AS"))["id"]
    for token in tokens:
        cloud.state.controls.inject(
            200,
            body={"issues": [{"id": first}], "nextPageToken": token},
            path_prefix="/rest/api/3/search/jql",
        )
    async with cloud.issues(project="AS", deployment="cloud") as repo:
        with pytest.raises(asyncrepo.MalformedResponse, match="token"):
            await collect(repo)
    assert len([p for p in cloud.paths() if p == "/rest/api/3/search/jql"]) == len(tokens)


async def test_aclose_cancels_the_requests_of_an_abandoned_stream(site: Site) -> None:
    import asyncio

    deployment = "cloud" if site.state.deployment == "cloud" else "server"
    repo = site.issues(project="AS", deployment=deployment)
    stream = repo.list_pages(page_size=10)
    await anext(stream)  # the next searches / bulk fetches are in flight now
    site.state.controls.latency = 0.1
    try:
        await repo.aclose()  # the caller never closes the stream
        await asyncio.sleep(0.3)  # what was in flight would have finished by now
        assert repo.client._session is None  # cancelled, so nothing reopened a session
    finally:
        site.state.controls.latency = 0.0
        await stream.aclose()


# ------------------------------------------------------------------------------- items


async def test_common_fields(site: Site) -> None:
    raw = next(i for i in site.state.issues if i["fields"]["description"] is not None)
    async with site.issues() as repo:
        item = await repo.get(raw["key"])
    fields = raw["fields"]
    assert item.identifier == raw["id"]
    assert item.raw["key"] == raw["key"]
    assert item.title == fields["summary"]
    assert item.url == f"{site.base}/browse/{raw['key']}"
    assert item.author == fields["reporter"]["displayName"]
    assert item.kind == "issue"
    assert item.created_at is not None and item.updated_at is not None
    assert int(item.created_at.timestamp() * 1000) == jira_ts_to_ms(fields["created"])
    assert int(item.updated_at.timestamp() * 1000) == jira_ts_to_ms(fields["updated"])
    assert item.text
    if site.state.deployment == "cloud":
        assert item.text == adf_to_text(fields["description"])  # ADF as plain text
    else:
        assert item.text == item.raw["fields"]["description"]  # v2: wiki markup string


async def test_get_by_id_and_by_key(site: Site) -> None:
    raw = next(iter_project_issues(site.state, "ENG"))
    async with site.issues() as repo:
        by_id = await repo.get(raw["id"])
        by_key = await repo.get(raw["key"].lower())
    assert by_id.identifier == by_key.identifier == raw["id"]
    assert by_key.raw["key"] == raw["key"]


@pytest.mark.parametrize("identifier", ["99999", "AS-99999", "NOPE-1", "../project/AS", " "])
async def test_get_not_found(site: Site, identifier: str) -> None:
    async with site.issues() as repo:
        with pytest.raises(ItemNotFound) as caught:
            await repo.get(identifier)
    assert caught.value.identifier == identifier.strip()


async def test_get_outside_the_project_is_not_found(site: Site) -> None:
    raw = next(iter_project_issues(site.state, "ENG"))
    async with site.issues(project="AS") as repo:
        with pytest.raises(ItemNotFound):
            await repo.get(raw["key"])
        inside = next(iter_project_issues(site.state, "AS"))
        assert (await repo.get(inside["key"])).identifier == inside["id"]


# ------------------------------------------------------------------------------- deployment


async def test_data_center_is_detected_once_per_repository(dc: Site) -> None:
    raw = next(iter_project_issues(dc.state, "AS"))
    async with dc.issues(project="AS") as repo:
        assert await repo.deployment() == "server"
        ids = [item.identifier async for item in repo.list()]
        await repo.get(raw["id"])
        assert [i.identifier async for i in repo.search(raw["fields"]["summary"])]
    assert ids == project_ids(dc.state)
    paths = dc.paths()
    assert paths.count("/rest/api/2/serverInfo") == 1
    assert "/rest/api/2/search" in paths
    assert not [p for p in paths if p.startswith("/rest/api/3/")]
    # another repository asks again; a forced deployment never asks
    async with dc.issues(project="AS") as again:
        await again.get(raw["id"])
    async with dc.issues(project="AS", deployment="server") as forced:
        await forced.get(raw["id"])
        assert [i.identifier async for i in forced.search(raw["fields"]["summary"])]
    assert dc.paths().count("/rest/api/2/serverInfo") == 2


async def test_concurrent_first_calls_share_one_detection(cloud: Site) -> None:
    import asyncio

    async with cloud.issues(project="AS") as repo:
        ids = await asyncio.gather(
            *(repo.get(raw["id"]) for raw in list(iter_project_issues(cloud.state, "AS"))[:5])
        )
    assert len(ids) == 5
    assert cloud.paths().count("/rest/api/2/serverInfo") == 1


async def test_data_center_trusts_the_capped_max_results(dc: Site) -> None:
    assert dc.state.max_results_cap == 50
    async with dc.issues(project="AS", deployment="server") as repo:
        ids = flat(await collect(repo, page_size=100))
    assert ids == project_ids(dc.state)
    searches = [r for r in dc.requests if r.path == "/rest/api/2/search"]
    assert sorted(int(r.query["startAt"]) for r in searches) == list(range(0, len(ids), 50))


def test_fields() -> None:
    base = "https://example.atlassian.net"
    assert Issues(base, USER, TOKEN).fields == ["*navigable"]
    assert Issues(base, USER, TOKEN, fields=["-comment"]).fields == ["*navigable", "-comment"]
    assert Issues(base, USER, TOKEN, fields="*all,-comment").fields == ["*all", "-comment"]
    custom = Issues(base, USER, TOKEN, fields=["labels", "summary"]).fields
    assert custom[:2] == ["labels", "summary"]
    assert set(custom) == {
        "labels",
        "summary",
        "description",
        "created",
        "updated",
        "reporter",
        "project",
    }


async def test_custom_fields_reach_jira(site: Site) -> None:
    async with site.issues(project="SM", fields=["labels"]) as repo:
        items = [item async for item in repo.list(page_size=50)]
    assert len(items) == SMALL
    assert set(items[0].raw["fields"]) == {
        "labels",
        "summary",
        "description",
        "created",
        "updated",
        "reporter",
        "project",
    }
    assert items[0].title and items[0].created_at and items[0].author


def test_deployment_must_be_known() -> None:
    with pytest.raises(ConfigurationError):
        Issues("https://example.atlassian.net", USER, TOKEN, deployment="onprem")


# ------------------------------------------------------------------------------- search


async def test_search_finds_issues_with_quotes_and_backslashes(site: Site) -> None:
    summary = 'Parser sees a "quoted" \\ backslash zebra'
    issue = site.state.add_issue("AS", summary)
    try:
        async with site.issues(project="AS") as repo:
            found = [item async for item in repo.search(summary)]
        assert [item.identifier for item in found] == [issue["id"]]
        assert clauses(site.state.last_jql_ast)[-1] == Clause("text", "~", Value(summary, True))
    finally:
        site.state.issues.remove(issue)


_FUZZ_CHARS = st.one_of(
    st.sampled_from([*"\"'\\\n\r\t ()=~!*&|,;[]{}%+#?/", "AND", "OR", " ORDER BY ", "\\u0041"]),
    st.characters(exclude_categories=["Cs"]),
)
_FUZZ_QUERIES = st.lists(_FUZZ_CHARS, min_size=1, max_size=12).map("".join)


@pytest.mark.parametrize("deployment", ["cloud", "datacenter"])
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_FUZZ_QUERIES)
async def test_no_query_changes_the_jql_structure(
    fuzz_sites: dict[str, Site], deployment: str, query: str
) -> None:
    if not query.strip():
        return  # refused before any request (the core wants a non-empty query)
    fuzz = fuzz_sites[deployment]
    forced = "cloud" if deployment == "cloud" else "server"
    async with (
        fuzz.issues(project="AS", deployment=forced) as repo,
        aclosing(repo.search_pages(query, page_size=5)) as pages,
    ):
        await anext(pages)
    ast = fuzz.state.last_jql_ast
    assert ast is not None
    assert isinstance(ast.where, And) and len(ast.where.children) == 2
    assert clauses(ast) == [
        Clause("project", "=", Value("AS", quoted=True)),
        Clause("text", "~", Value(query, quoted=True)),
    ]
    assert ast.order_by == (("created", "ASC"), ("key", "ASC"))


@pytest.fixture
async def fuzz_sites() -> AsyncIterator[dict[str, Site]]:
    """One server per deployment for every example of the fuzz test."""
    cloud_state, dc_state = make_dataset(60), make_dataset(60, deployment="datacenter")
    async with serve(make_app(cloud_state)) as cloud_base, serve(make_app(dc_state)) as dc_base:
        yield {"cloud": Site(cloud_base, cloud_state), "datacenter": Site(dc_base, dc_state)}


def test_jql_string_escapes() -> None:
    assert jql_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert jql_string("x\ny\r\tz\x00") == '"x\\ny\\r\\tz\\u0000"'
    assert jql_string("it's") == '"it\'s"'


# ------------------------------------------------------------------------------- since, order


@pytest.mark.parametrize("deployment", ["cloud", "datacenter"])
async def test_since_is_epoch_millis_whatever_the_user_time_zone(
    deployment: Literal["cloud", "datacenter"],
) -> None:
    state = JiraState(deployment=deployment, time_zone="America/New_York")
    if deployment == "datacenter":
        state.users = {USER: TOKEN}
    since = datetime(2024, 6, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    created = since - timedelta(days=3)
    state.add_issue("AS", "before", created=created, updated=since - timedelta(seconds=1))
    just_after = state.add_issue(
        "AS", "just after", created=created, updated=since + timedelta(seconds=1)
    )
    # 12:00 New York is 16:00 UTC: a date literal would lose both of these
    later = state.add_issue("AS", "later", created=created, updated=since + timedelta(hours=3))
    state.add_issue("ENG", "other project", created=created, updated=since + timedelta(hours=1))
    async for site in _site(state):
        async with site.issues(project="AS") as repo:
            found = [item async for item in repo.list(since=since)]
        assert [item.identifier for item in found] == [just_after["id"], later["id"]]
        millis = int(since.timestamp() * 1000)
        assert clauses(state.last_jql_ast) == [
            Clause("project", "=", Value("AS", True)),
            Clause("updated", ">=", Value(str(millis))),
        ]


ORDERS: dict[str, tuple[str, bool]] = {
    "created": ("created", False),
    "-created": ("created", True),
    "updated": ("updated", False),
    "-updated": ("updated", True),
}


@pytest.mark.parametrize("order", sorted(ORDERS))
async def test_order(site: Site, order: str) -> None:
    field, descending = ORDERS[order]
    expected = [
        i["id"]
        for i in sorted(
            iter_project_issues(site.state, "SM"),
            key=lambda i: (jira_ts_to_ms(i["fields"][field]), int(i["key"].split("-")[1])),
            reverse=descending,
        )
    ]
    async with site.issues(project="SM") as repo:
        ids = [item.identifier async for item in repo.list(order=order, page_size=7)]
    assert ids == expected
    if order != "created":
        assert ids != sorted(ids, key=int)  # bulk fetch answers in id order: re-ordered here
    assert site.state.last_jql_ast is not None
    direction = "DESC" if descending else "ASC"
    assert site.state.last_jql_ast.order_by == ((field, direction), ("key", direction))


async def test_unsupported_order_is_refused(cloud: Site) -> None:
    async with cloud.issues() as repo:
        with pytest.raises(asyncrepo.UnsupportedOption):
            repo.list(order="priority")


# ------------------------------------------------------------------------------- bulk fetch


def _middleware(action: Callable[[web.Request], None]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        action(request)
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


async def test_bulk_fetch_keeps_the_search_order_and_skips_deleted_issues() -> None:
    state = make_dataset(300)
    expected = [
        i["id"]
        for i in sorted(
            iter_project_issues(state, "AS"),
            key=lambda i: jira_ts_to_ms(i["fields"]["created"]),
            reverse=True,
        )
    ]
    victims = [state.issue(expected[3]), state.issue(expected[150 % len(expected)])]

    def delete_after_the_search(request: web.Request) -> None:
        if request.path.endswith("/issue/bulkfetch"):
            for victim in victims:
                if victim in state.issues:
                    state.issues.remove(victim)

    app = make_app(state)
    app.middlewares.append(_middleware(delete_after_the_search))
    async with serve(app) as base, Issues(base, USER, TOKEN, project="AS") as repo:
        ids = flat(await collect(repo, page_size=20, order="-created"))
    gone = {v["id"] for v in victims if v is not None}
    assert len(gone) == 2
    assert ids == [i for i in expected if i not in gone]


async def test_bulk_fetch_asks_again_for_issue_errors(cloud: Site) -> None:
    expected = project_ids(cloud.state)
    # the first bulk fetch answers no issue, and reports the second id as a retriable error
    cloud.state.controls.inject(
        200,
        body={"issues": [], "issueErrors": [{"id": expected[1], "errorMessage": "try again"}]},
        path_prefix="/rest/api/3/issue/bulkfetch",
    )
    async with cloud.issues(project="AS", deployment="cloud", concurrency=1) as repo:
        ids = flat(await collect(repo, page_size=3))
    # ids 0 and 2 were not returned (as for deleted issues: skipped); id 1 was asked again
    assert ids == [expected[1], *expected[3:]]
    bulk = [r for r in cloud.requests if r.path == "/rest/api/3/issue/bulkfetch"]
    assert len(bulk) == -(-len(expected) // 3) + 1


async def test_bulk_fetch_gives_up_on_persistent_issue_errors(cloud: Site) -> None:
    first = next(iter_project_issues(cloud.state, "AS"))
    cloud.state.controls.inject(
        200,
        body={"issues": [], "issueErrors": [{"id": first["id"], "errorMessage": "busy"}]},
        path_prefix="/rest/api/3/issue/bulkfetch",
        times=10,
    )
    async with cloud.issues(project="AS", deployment="cloud") as repo:
        with pytest.raises(SourceUnavailable, match=first["id"]):
            await collect(repo, page_size=1)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("detect", [True, False])
async def test_wrong_password(site: Site, detect: bool) -> None:
    deployment = "auto" if detect else "cloud" if site.state.deployment == "cloud" else "server"
    secret = "hunter2-secret-token"
    repo = Issues(site.base, USER, secret, project="AS", deployment=deployment, retry=FAST)
    async with repo:
        with pytest.raises(AuthenticationError) as caught:
            await collect(repo)
        with pytest.raises(AuthenticationError):
            await repo.get("AS-1")
    error = caught.value
    for text in (str(error), repr(error), repr(repo), repr(repo.client)):
        assert secret not in text
        assert "<html" not in text.lower()
    assert error.status == 401
    assert site.requests and all(r.status == 401 for r in site.requests)


async def test_unknown_project_is_a_configuration_error(site: Site) -> None:
    async with site.issues(project="NOPE") as repo:
        with pytest.raises(ConfigurationError, match="'NOPE'"):
            await collect(repo)


async def test_a_rejected_query_is_invalid_query(cloud: Site) -> None:
    cloud.state.controls.inject(
        400,
        body={"errorMessages": ["Error in the JQL Query: something"], "errors": {}},
        path_prefix="/rest/api/3/search/jql",
    )
    async with cloud.issues(project="AS") as repo:
        with pytest.raises(InvalidQuery, match="something"):
            await collect(repo)


async def test_rate_limits_and_server_errors_are_retried(site: Site) -> None:
    search = "/rest/api/3/search/jql" if site.state.deployment == "cloud" else "/rest/api/2/search"
    site.state.controls.inject(429, headers={"Retry-After": "0"}, path_prefix=search)
    site.state.controls.inject(503, path_prefix=search)
    async with site.issues(project="AS", deployment="auto") as repo:
        ids = flat(await collect(repo, page_size=100))
    assert ids == project_ids(site.state)
    statuses = [r.status for r in site.requests]
    assert statuses.count(429) == 1 and statuses.count(503) == 1
    pages = -(-len(ids) // (100 if site.state.deployment == "cloud" else 50))
    data_calls = pages + (1 if site.state.deployment == "cloud" else 0)  # + the id search
    assert len(site.requests) == 1 + data_calls + 2  # serverInfo, data, two retries


async def test_persistent_server_errors_give_up(cloud: Site) -> None:
    cloud.state.controls.inject(503, path_prefix="/rest/api/3/search/jql", times=10)
    policy = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)
    async with cloud.issues(project="AS", deployment="cloud", retry=policy) as repo:
        with pytest.raises(SourceUnavailable):
            await collect(repo)
    assert len(cloud.requests) == 3


# ------------------------------------------------------------------------------- open()


async def test_open_a_uri(cloud: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = cloud.base.replace("http://", "jira+http://") + "?project=AS"
    async with asyncrepo.open(uri, username=USER, password=TOKEN) as repo:
        assert isinstance(repo, Issues) and repo.project == "AS"
        ids = [item.identifier async for item in repo.list()]
    assert ids == project_ids(cloud.state)
    async with asyncrepo.open(uri, username=USER, api_token=TOKEN, deployment="cloud") as repo:
        assert (await repo.get("AS-1")).raw["key"] == "AS-1"
    monkeypatch.setenv("JIRA_USERNAME", USER)
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    async with asyncrepo.open(uri + "&deployment=cloud") as repo:
        assert (await repo.get("AS-2")).raw["key"] == "AS-2"


def test_open_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIRA_USERNAME", raising=False)
    monkeypatch.delenv("JIRA_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        asyncrepo.open("jira+https://example.atlassian.net?project=AS")
    assert "JIRA_USERNAME" in str(caught.value) and "JIRA_API_TOKEN" in str(caught.value)
    with pytest.raises(ConfigurationError):
        asyncrepo.open("jira+https://example.atlassian.net", username=USER)


def test_open_shapes() -> None:
    repo = asyncrepo.open(
        "jira+https://example.atlassian.net/?project=AS", username=USER, password="s3cret!"
    )
    assert isinstance(repo, Issues)
    assert repo.base_url == "https://example.atlassian.net"
    assert "s3cret" not in repr(repo)
    dc = asyncrepo.open("jira+http://jira.local:8080/jira", username="u", password="p")
    assert isinstance(dc, Issues) and dc.base_url == "http://jira.local:8080/jira"
    assert dc.project is None
    with pytest.raises(ConfigurationError, match="not in the URI"):
        asyncrepo.open("jira+https://me:pw@example.atlassian.net", username="u", password="p")
    with pytest.raises(ConfigurationError, match="unknown Jira URI parameter 'jql'"):
        asyncrepo.open("jira+https://example.atlassian.net?jql=x", username="u", password="p")
    with pytest.raises(ConfigurationError, match="resource"):
        asyncrepo.open(
            "jira+https://example.atlassian.net?resource=boards", username="u", password="p"
        )


def test_capabilities() -> None:
    caps = Issues.capabilities
    assert caps.get == "native" and caps.search == "native" and caps.since == "native"
    assert caps.orders == {"created", "-created", "updated", "-updated"}
    assert caps.options == frozenset() and caps.max_page_size == 100
    assert asyncrepo.registry.get_class("jira.issues") is Issues
